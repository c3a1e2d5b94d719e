"""Forward simulation from a checked model (``Model.sample``).

Statements are executed in source order; a statement's elements are drawn together when
its family has a batched sampler (``sample_batch.py``), else each plate element in turn;
either way indices are evaluated exactly as the model states them (1-based in the
language, 0-based in the returned arrays).  Params without a prior must be given; params with
a prior, and latents, are drawn when not given (a latent given a value is conditioned on:
the variables below it are drawn given it).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ..errors import EmmDataError
from ..families.samplers import sampler
from ..frontend import ast
from ..io.data import INT_KINDS
from .sample_batch import draw_statement

def dim_value(name: str, value, where: str = "") -> int:
    """``value`` as a dim: a positive integer (3, 3.0, np.int64(3) and np.array(3) are fine),
    else an :class:`EmmDataError` naming the dim and the value (``where`` says where it came
    from, e.g. ``" (the default J + 1)"``)."""
    val = value.item() if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0 \
        else value
    if isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val) \
            and val == int(val) and val >= 1:
        return int(val)
    raise EmmDataError(f"dim '{name}' must be a positive integer, got {name} = {val!r}{where}")


def simulate(model, params: dict, seed, values: dict) -> dict:
    """Draw every data and latent variable; returns a dict name -> numpy array.

    ``values`` holds dims, hypers and covariates (data the model conditions on but does not
    draw) by name; dims may also be read off the covariates' shapes, as in ``fit``.
    """
    from ..io.data import bind
    cm = model.checked
    rng = np.random.default_rng(seed)
    sampled = {f.target for f in cm.factors}
    covariates = [v for v in cm.vars.values() if v.role == "data" and v.name not in sampled]
    values = {k: v for k, v in values.items() if v is not None}
    for name in values:
        role = cm.role(name)
        if role is None:
            valid = list(cm.dims) + [v.name for v in cm.vars.values() if v.role == "hyper"] \
                + [v.name for v in covariates]
            raise EmmDataError(f"'{name}' is not a dim, hyper or covariate of model {cm.name}",
                               hint=f"valid names: {', '.join(valid) or 'none'}")
        if role == "param":
            raise EmmDataError(f"'{name}' is a param of model {cm.name}",
                               hint="give it with the params")
        if name in sampled:
            raise EmmDataError(f"'{name}' is a {role} of model {cm.name} that sample draws; "
                               "it cannot be given")
    for name in cm.dims:
        if name in values:
            values[name] = dim_value(name, values[name])
    for v in covariates:
        if v.name not in values:
            raise EmmDataError(f"sample needs the covariate '{v.name}' (data that the model "
                               "conditions on but does not draw)", v.span,
                               hint=f"give the covariate '{v.name}'", source=cm.model.source)
    known = set(values) & set(cm.dims)
    for v in covariates:  # dims that bind reads off the covariates' shapes
        elem = () if v.kind == "cat" else v.elem_dims
        known |= {e.id for e in (*v.shape, *elem) if isinstance(e, ast.Name)}
    pending = [d for d in cm.dims.values() if d.name not in known and d.default is not None]
    while ready := [d for d in pending if _names(d.default) <= known]:
        known |= {d.name for d in ready}
        pending = [d for d in pending if d not in ready]
    for name, d in cm.dims.items():
        if name not in known:
            raise EmmDataError(f"sample needs dim '{name}' (it has no default)", d.span,
                               hint=f"give dim '{name}' a value", source=cm.model.source)
    # bind validates dims, hypers and covariates as fit does; the data that sample draws
    # are outputs here, so they are hidden from it
    view = dataclasses.replace(cm, vars={
        k: dataclasses.replace(v, role="latent") if v.role == "data" and k in sampled else v
        for k, v in cm.vars.items()})
    bound = bind(view, values)
    env = {**bound.dims, **bound.hypers, **bound.data}
    for name in params:
        if cm.role(name) not in ("param", "latent"):
            unobserved = [v.name for v in cm.vars.values() if v.role in ("param", "latent")]
            raise EmmDataError(f"'{name}' is not a param or latent of model {cm.name}, so "
                               "it cannot be given a value", hint="give values for "
                               f"{', '.join(unobserved) or 'nothing'}; dims, hypers and "
                               "covariates go by keyword")
    for v in cm.vars.values():
        if v.role in ("param", "latent") and v.name in params:
            env[v.name] = _given(v, params[v.name], env)
        elif v.role == "param":
            if v.name not in sampled:
                raise EmmDataError(f"sample needs a value for param '{v.name}' (it has no "
                                   "prior to draw it from)", v.span,
                                   hint=f"give param '{v.name}' a value",
                                   source=cm.model.source)
    out = {}
    for f in cm.factors:
        v = cm.vars[f.target]
        if v.name in params:   # a param or latent given a value: not drawn
            continue
        if v.name not in env:
            shape = tuple(_int(s, env) for s in v.shape) + _elem_shape(v, env)
            dtype = np.int64 if v.kind in INT_KINDS else float
            env[v.name] = np.zeros(shape, dtype=dtype)
        if draw_statement(f, v, env, cm, rng, _elem_shape(v, env)):   # all at once
            out[v.name] = env[v.name]
            continue
        draw = sampler(f.family) or _InverseCdf(f.family)
        ranges = [range(_int(lp.start, env), _int(lp.stop, env) + 1) for lp in f.loops]
        # keywords with a map to the canonical parameter (Normal's prec/sd, MvNormal's prec)
        alts = [(canon, f.family.alternatives[kw][1]) for canon, kw in f.keywords
                if kw in f.family.alternatives]
        for combo in itertools.product(*ranges):
            loop = {lp.var: i for lp, i in zip(f.loops, combo)}
            args = {n: _eval(e, env, loop, cm) for n, e in f.args}
            for canon, to_canon in alts:
                args[canon] = to_canon(args[canon]) if to_canon is not None \
                    else _inverse(args[canon], f)
            for name in f.family.scalar_ok:  # a scalar stands for a constant vector
                args[name] = np.broadcast_to(args[name], _elem_shape(v, env))
            idx = tuple(int(_eval(i, env, loop, cm)) - 1 for i in f.index)
            env[v.name][idx] = draw(rng, args)
        out[v.name] = env[v.name]
    return out


def _given(v, value, env) -> np.ndarray:
    """A value given for param or latent ``v``, checked against its declared shape (a
    ``cat`` latent's values are 0-based, as ``sample`` returns them)."""
    shape = tuple(_int(s, env) for s in v.shape) + _elem_shape(v, env)
    arr = np.asarray(value, dtype=np.int64 if v.kind in INT_KINDS else float)
    if arr.shape != shape:
        raise EmmDataError(f"the value given for {v.role} '{v.name}' has shape {arr.shape}, "
                           f"but '{v.name}' is declared with shape {shape}")
    if v.kind == "cat" and arr.size:
        size = _int(v.elem_dims[0], env)
        if arr.min() < 0 or arr.max() >= size:
            raise EmmDataError(f"the values given for {v.role} '{v.name}' must lie in "
                               f"0..{size - 1} (0-based), got {arr.min()}..{arr.max()}")
    return arr


def _inverse(matrix, f):
    """A precision matrix given for MvNormal's ``cov``: its inverse."""
    a = np.asarray(matrix, dtype=float)
    try:
        return np.linalg.solve(a, np.eye(a.shape[-1]))
    except np.linalg.LinAlgError:
        raise EmmDataError(f"the precision matrix in line {f.span.line} ({f.text}) is "
                           "singular, so it has no covariance", f.span,
                           hint="a precision matrix must be positive definite") from None


def _int(e, env) -> int:
    from ..io.data import eval_const
    return int(eval_const(e, env))


def _names(e) -> set:
    return {s.id for s in ast.walk_expr(e) if isinstance(s, ast.Name)}


class _InverseCdf:
    """Draws from a scalar family known only by its log density (a ``family`` block):
    the density is tabulated on a grid over its support (first on a transformed scale that
    covers many orders of magnitude, then refined where the mass is) and inverted."""

    GRID = 20001

    def __init__(self, family):
        import sympy as sp
        self.family = family
        self.logpdf = sp.lambdify((family.var, *family.symbols), family.logpdf,
                                  modules=["scipy", "numpy"])
        self.tables: dict = {}

    def __call__(self, rng, args):
        key = tuple(float(args[p]) for p in self.family.param_names)
        if key not in self.tables:
            self.tables[key] = self._table(key)
        xs, cdf = self.tables[key]
        if xs.dtype.kind == "i":
            return xs[min(np.searchsorted(cdf, rng.random()), len(xs) - 1)]
        return float(np.interp(rng.random(), cdf, xs))

    def _density(self, x, key):
        with np.errstate(all="ignore"):
            lp = np.asarray(self.logpdf(x, *key), dtype=float) * np.ones_like(x)
        lp[~np.isfinite(lp)] = -np.inf
        return np.exp(lp - lp.max()) if np.isfinite(lp.max()) else np.zeros_like(x)

    def _table(self, key):
        support = self.family.support
        if support in ("count", "bin"):
            top = 1 if support == "bin" else 64
            while True:
                xs = np.arange(top + 1)
                p = self._density(xs.astype(float), key)
                if support == "bin" or p[-1] < 1e-16 * p.sum() or top > 2 ** 24:
                    break
                top *= 4
            return xs, np.cumsum(p) / p.sum()
        u = np.linspace(-40, 40, self.GRID)
        x = {"pos": np.exp(u), "unit": 1 / (1 + np.exp(-u)), "real": np.sinh(u)}[support]
        mass = self._density(x, key) * np.gradient(x)
        if mass.sum() <= 0:
            raise EmmDataError(f"cannot simulate from {self.family.name} with parameters {key}: "
                               "the density is zero everywhere", hint="check the parameters")
        keep = np.flatnonzero(mass > 1e-14 * mass.max())
        lo, hi = x[max(keep[0] - 1, 0)], x[min(keep[-1] + 1, len(x) - 1)]
        xs = np.linspace(lo, hi, self.GRID)
        p = self._density(xs, key)
        cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2)])
        return xs, cdf / cdf[-1]


def _elem_shape(v, env):
    from ..io.data import eval_const
    if v.kind == "cat":
        return ()
    d = tuple(int(eval_const(s, env)) for s in v.elem_dims)
    return d * 2 if v.kind == "spd" else d


def _eval(e, env, loop, cm):
    """Evaluate ``e``; loop variables and cat values are 1-based, as in the language."""
    from ..io.data import eval_const
    if isinstance(e, ast.Name) and e.id in loop:
        return loop[e.id]
    if isinstance(e, ast.Index):
        base = env[e.base.id]
        idx = tuple(int(_eval(i, env, loop, cm)) - 1 for i in e.indices)
        val = base[idx]
        v = cm.vars.get(e.base.id)
        return val + 1 if v is not None and v.kind == "cat" and np.ndim(val) == 0 else val
    if isinstance(e, ast.BinOp):
        a, b = _eval(e.left, env, loop, cm), _eval(e.right, env, loop, cm)
        if e.op == "@":
            return np.matmul(a, b)
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
                "^": np.power}[e.op](a, b)
    if isinstance(e, ast.Neg):
        return -_eval(e.operand, env, loop, cm)
    if isinstance(e, ast.Call):
        sub = [_eval(a, env, loop, cm) for a in e.args]
        consts = {f"_a{i}": s for i, s in enumerate(sub)}
        call = ast.Call(e.func, tuple(ast.Name(k, e.span) for k in consts), (), e.span)
        return eval_const(call, {**env, **consts})
    return eval_const(e, env)
