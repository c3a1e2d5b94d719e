"""Drawing all elements of a statement at once (``Model.sample``): its arguments evaluated
for every element of its plates together, then one call of the family's batched sampler
(``families.samplers.BATCHED``).

``sample.py`` draws element by element where this does not apply: a statement that reads
the variable it draws (``z[t] ~ Categorical(A[z[t-1]])``), a family without a batched
sampler, or a function or matrix product of per-element values. Values carry a leading
batch axis (B, ...) when they vary over the elements; indices are 1-based, as in the
language.
"""
from __future__ import annotations

import numpy as np

from ..families.samplers import BATCHED
from ..frontend import ast


class NotBatched(Exception):
    """This statement is drawn element by element."""


def draw_statement(f, v, env: dict, cm, rng, elem_shape: tuple) -> bool:
    """Draw every element of statement ``f`` (of variable ``v``) into ``env[v.name]`` with
    one batched draw; False (nothing drawn) when that does not apply."""
    draw = BATCHED.get(f.family.name)
    if draw is None or any(f.target in ast.names(e) for _, e in f.args):
        return False
    from ..io.data import eval_const
    ranges = [np.arange(int(eval_const(lp.start, env)), int(eval_const(lp.stop, env)) + 1)
              for lp in f.loops]
    if any(len(r) == 0 for r in ranges):
        return True
    grid = [g.ravel() for g in np.meshgrid(*ranges, indexing="ij")] if ranges else []
    total = int(np.prod([len(r) for r in ranges])) if ranges else 1
    # elements per draw: the arguments of a block (a covariance per element, say) stay
    # within ~32 MiB whatever the plate's size
    size = int(np.prod(elem_shape)) if elem_shape else 1
    step = max(1, ELEMENTS // max(1, size * size))
    for lo in range(0, total, step):
        loop = {lp.var: g[lo:lo + step] for lp, g in zip(f.loops, grid)}
        B = min(step, total - lo)
        try:
            args, idx = _arguments(f, env, loop, cm, B, elem_shape)
            with np.errstate(all="ignore"):
                values = np.asarray(draw(rng, args))
        except (NotBatched, ValueError, np.linalg.LinAlgError):
            if lo == 0:   # nothing drawn yet: element by element, whose draws say what
                return False   # is wrong (a singular precision, invalid probabilities)
            raise
        env[v.name][idx] = values.reshape((B,) + values.shape[1:]) if idx else values[0]
    return True


ELEMENTS = 1 << 22   # numbers per block of arguments (see draw_statement)


def _arguments(f, env, loop, cm, B, elem_shape):
    """(the family's arguments, each (B, ...), the target's index arrays) of a block of
    ``B`` elements whose loop variables are ``loop``."""
    args = {n: _batched(_ev(e, env, loop, cm), B) for n, e in f.args}
    for canon, kw in f.keywords:
        if kw in f.family.alternatives:
            to_canon = f.family.alternatives[kw][1]
            args[canon] = to_canon(args[canon]) if to_canon is not None \
                else np.linalg.inv(args[canon])
    for name in f.family.scalar_ok:   # a scalar stands for a constant vector
        a = args[name]
        args[name] = np.broadcast_to(a.reshape(a.shape + (1,) * (len(elem_shape) + 1 - a.ndim)),
                                     (B,) + elem_shape)
    idx = tuple(np.asarray(_batched(_ev(i, env, loop, cm), B), dtype=np.int64) - 1
                for i in f.index)
    return args, idx


def _batched(value, B: int) -> np.ndarray:
    """A (value, varies) pair as an array with the batch axis first."""
    val, varies = value
    val = np.asarray(val)
    return val if varies else np.broadcast_to(val, (B,) + val.shape)


def _ev(e, env: dict, loop: dict, cm):
    """(value, varies over the elements) of expression ``e``."""
    from ..io.data import eval_const
    if isinstance(e, ast.Name) and e.id in loop:
        return loop[e.id], True
    if isinstance(e, ast.Index):
        base = np.asarray(env[e.base.id])
        parts = [_ev(i, env, loop, cm) for i in e.indices]
        varies = any(p[1] for p in parts)
        idx = tuple(np.asarray(p[0]).astype(np.int64) - 1 for p in parts)
        if varies:
            idx = tuple(np.broadcast_arrays(*idx))
        val = base[idx]
        var = cm.vars.get(e.base.id)
        if var is not None and var.kind == "cat" and len(e.indices) == base.ndim:
            val = val + 1   # a categorical value read as an index is 1-based
        return val, varies
    if isinstance(e, ast.BinOp):
        (a, va), (b, vb) = _ev(e.left, env, loop, cm), _ev(e.right, env, loop, cm)
        if e.op == "@":
            if va or vb:
                raise NotBatched
            return np.matmul(a, b), False
        a, b = _align(np.asarray(a), va, np.asarray(b), vb)
        op = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
              "^": np.power}[e.op]
        with np.errstate(all="ignore"):
            return op(a, b), va or vb
    if isinstance(e, ast.Neg):
        val, varies = _ev(e.operand, env, loop, cm)
        return -np.asarray(val), varies
    if isinstance(e, ast.Call):
        parts = [_ev(a, env, loop, cm) for a in e.args]
        if any(p[1] for p in parts) or e.kwargs:
            raise NotBatched
        consts = {f"_a{i}": p[0] for i, p in enumerate(parts)}
        call = ast.Call(e.func, tuple(ast.Name(k, e.span) for k in consts), (), e.span)
        return eval_const(call, {**env, **consts}), False
    return eval_const(e, env), False


def _align(a, va: bool, b, vb: bool):
    """Element-wise operands with the batch axis first: each element's own axes are
    broadcast against the other's (numpy's rule per element), not against the batch."""
    ea = a.ndim - 1 if va else a.ndim
    eb = b.ndim - 1 if vb else b.ndim
    n = max(ea, eb)
    if va:
        a = a.reshape(a.shape[:1] + (1,) * (n - ea) + a.shape[1:])
    if vb:
        b = b.reshape(b.shape[:1] + (1,) * (n - eb) + b.shape[1:])
    if va and not vb:
        b = b.reshape((1,) + (1,) * (n - eb) + b.shape)
    if vb and not va:
        a = a.reshape((1,) + (1,) * (n - ea) + a.shape)
    return a, b


__all__ = ["draw_statement", "NotBatched"]
