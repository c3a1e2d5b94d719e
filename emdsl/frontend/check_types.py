"""Type rules of the checker: the kind and rank of an expression, literal values, and
whether a value fits where a family expects a given type (part of stage 2)."""
from __future__ import annotations

import math

from . import ast
from ..families import is_subtype


def expr_kind(e: ast.Expr, vars: dict, dims: dict, lets: dict):
    """(type kind, rank) of an expression, or (None, None) when unknown.

    ``vars`` maps declared names to :class:`~emdsl.check.Var`, ``lets`` names to their
    inlined definitions; rank is 0 scalar, 1 vector, 2 matrix."""
    if isinstance(e, ast.Num):
        return ("pos" if e.value > 0 else "real"), 0
    if isinstance(e, ast.Name):
        if e.id in lets:
            return expr_kind(lets[e.id], vars, dims, lets)
        v = vars.get(e.id)
        if v is not None:  # declared names first: a model's own `pi` shadows the constant
            return v.kind, (len(v.shape) + v.elem_rank if v.shape else v.elem_rank)
        if e.id in dims:
            return "count", 0
        return ("pos", 0) if e.id == "pi" else ("cat", 0)  # the constant, or a loop index
    if isinstance(e, ast.Index):
        v = vars[e.base.id]
        total = len(v.shape) + v.elem_rank
        return v.kind, max(0, total - len(e.indices))
    if isinstance(e, ast.Neg):
        rank = expr_kind(e.operand, vars, dims, lets)[1]
        return _interval_kind(e, vars, dims, lets) or "real", rank
    if isinstance(e, ast.BinOp):
        (ka, ra), (kb, rb) = expr_kind(e.left, vars, dims, lets), expr_kind(e.right, vars, dims, lets)
        rank = None if ra is None or rb is None else max(ra, rb)
        narrow = _interval_kind(e, vars, dims, lets) if e.op != "@" else None
        if narrow is not None:  # elementwise arithmetic of scalars: the range decides
            return narrow, rank
        if e.op == "@":
            rank = None if rank is None else max(0, ra + rb - 2)
            return "real", rank
        pos = ka in ("pos", "unit", "count", "simplex", "spd") and \
            kb in ("pos", "unit", "count", "simplex", "spd")
        if e.op in ("*", "/") and ka == "spd" and kb in ("pos", "count", "unit"):
            return "spd", rank
        if e.op in ("*",) and kb == "spd" and ka in ("pos", "count", "unit"):
            return "spd", rank
        if e.op in ("*", "/", "+", "^") and pos:
            return "pos", rank
        if e.op == "^" and ka in ("pos",):
            return "pos", rank
        return "real", rank
    if isinstance(e, ast.Call):
        f = e.func
        sub = [expr_kind(a, vars, dims, lets) for a in e.args]
        if f in ("exp", "sqrt"):
            return _interval_kind(e, vars, dims, lets) or "pos", sub[0][1] if sub else 0
        if f in ("log", "lgamma", "digamma"):
            return "real", sub[0][1] if sub else 0
        if f == "eye":
            return "spd", 2
        if f in ("zeros",):
            return "real", 1
        if f == "ones":
            return "pos", 1
        if f == "diag":
            return ("spd" if sub and sub[0][0] in ("pos",) else "real"), 2
        if f == "dot":
            return "real", 0
        if f == "sum":
            return (sub[0][0] if sub else "real"), 0
        if f == "transpose":
            return (sub[0] if sub else ("real", 2))
    return None, None


# ----------------------------------------------------------------------------- ranges
# The range of a scalar expression as (lo, hi, lo_open, hi_open), from the ranges of the
# type kinds: `1 - q` with q : unit is in (0, 1), `1 / (1 + exp(-a))` too.
_RANGES = {"real": (-math.inf, math.inf, True, True), "pos": (0.0, math.inf, True, True),
           "unit": (0.0, 1.0, True, True), "count": (0.0, math.inf, False, True),
           "bin": (0.0, 1.0, False, False)}


def _interval_kind(e, vars, dims, lets):
    """'unit', 'pos' or 'real' from the range of ``e``; None when ``e`` is not elementwise
    arithmetic of scalar kinds (then the rank rules decide)."""
    r = _range(e, vars, dims, lets)
    if r is None:
        return None
    lo, hi, lo_open, hi_open = r
    positive = lo > 0 or (lo == 0 and lo_open)
    if positive and (hi < 1 or (hi == 1 and hi_open)):
        return "unit"
    return "pos" if positive else "real"


def _range(e, vars, dims, lets):
    inf = math.inf
    if isinstance(e, ast.Num):
        return (e.value, e.value, False, False)
    if isinstance(e, ast.Name) and e.id in lets:
        return _range(lets[e.id], vars, dims, lets)
    if isinstance(e, (ast.Name, ast.Index)):
        kind, _ = expr_kind(e, vars, dims, lets)
        if isinstance(e, ast.Name) and e.id in dims:
            return (1.0, inf, False, True)
        return _RANGES.get(kind)
    if isinstance(e, ast.Neg):
        r = _range(e.operand, vars, dims, lets)
        return None if r is None else (-r[1], -r[0], r[3], r[2])
    if isinstance(e, ast.Call) and e.func in ("exp", "log", "sqrt") and len(e.args) == 1:
        r = _range(e.args[0], vars, dims, lets)
        if r is None:
            return None
        fn = {"exp": math.exp, "sqrt": math.sqrt, "log": math.log}[e.func]
        if e.func in ("log", "sqrt") and r[0] < 0:
            return None
        lo = -inf if (e.func == "log" and r[0] == 0) else fn(r[0]) if r[0] > -inf else 0.0
        hi = inf if r[1] == inf else fn(r[1])
        return (lo, hi, r[2] or r[0] == -inf, r[3])
    if isinstance(e, ast.BinOp) and e.op in "+-*/":
        a, b = _range(e.left, vars, dims, lets), _range(e.right, vars, dims, lets)
        if a is None or b is None:
            return None
        if e.op == "+":
            return (a[0] + b[0], a[1] + b[1], a[2] or b[2], a[3] or b[3])
        if e.op == "-":
            return (a[0] - b[1], a[1] - b[0], a[2] or b[3], a[3] or b[2])
        if e.op == "/":
            if not (b[0] > 0 or (b[0] == 0 and b[2])):
                return None  # a divisor that may be 0 or negative: no range
            b = (1 / b[1] if b[1] < inf else 0.0, 1 / b[0] if b[0] > 0 else inf,
                 b[3] or b[1] == inf, b[2] or b[0] == 0)
        if a[0] < 0 or b[0] < 0:
            return (-inf, inf, True, True)  # signs mix: keep it simple
        lo = a[0] * b[0]
        hi = inf if inf in (a[1], b[1]) else a[1] * b[1]
        return (lo, hi, a[2] or b[2], a[3] or b[3])
    return None


def overlap(idx_a, loops_a, idx_b, loops_b) -> bool:
    """Whether two statements may sample a common element (the chain pattern
    ``z[1] ~ ...`` plus ``for t in 2:T { z[t] ~ ... }`` does not)."""
    def first(idx, loops):
        if not idx:
            return None
        v = literal_value(idx[0])
        if v is not None:
            return ("const", v)
        lp = {lp.var: lp for lp in loops}.get(getattr(idx[0], "id", None))
        return ("from", literal_value(lp.start)) if lp else None
    a, b = first(idx_a, loops_a), first(idx_b, loops_b)
    if a is None or b is None:
        return True
    if a[0] == "const" and b[0] == "const":
        return a[1] == b[1]
    if a[0] == "const":
        a, b = b, a
    if b[0] == "const":
        return a[1] is None or b[1] >= a[1]
    return True


def literal_value(e: ast.Expr):
    if isinstance(e, ast.Num):
        return e.value
    if isinstance(e, ast.Neg):
        v = literal_value(e.operand)
        return None if v is None else -v
    return None


def fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def kind_fits(e: ast.Expr, have: str, want: str) -> bool:
    val = literal_value(e)
    if val is not None:
        if want in ("pos",):
            return val > 0
        if want == "unit":
            return 0 < val < 1
        if want in ("count",):
            return val >= 0 and float(val).is_integer()
        return want in ("real",)
    if want == "spd" and have == "spd":
        return True
    return is_subtype(have, want)


def type_hint(kind: str) -> str:
    return {
        "simplex": "pass a param or hyper declared `simplex[K]` (non-negative, sums to 1)",
        "pos": "pass a strictly positive quantity (declared pos, or exp(...))",
        "unit": "pass a probability declared `unit`",
        "spd": "pass a covariance declared `spd[D]`, or e.g. `eye(D)`",
        "count": "pass a count (a dim, a count datum or a non-negative integer)",
    }.get(kind, f"pass a value of type {kind}")


def inline_lets(lets: dict, e: ast.Expr) -> ast.Expr:
    """``e`` with every ``let`` name replaced by its (already inlined) definition."""
    if isinstance(e, ast.Name) and e.id in lets:
        return lets[e.id]
    if isinstance(e, ast.Index):
        return ast.Index(inline_lets(lets, e.base),
                         tuple(inline_lets(lets, i) for i in e.indices), e.span)
    if isinstance(e, ast.BinOp):
        return ast.BinOp(e.op, inline_lets(lets, e.left), inline_lets(lets, e.right), e.span)
    if isinstance(e, ast.Neg):
        return ast.Neg(inline_lets(lets, e.operand), e.span)
    if isinstance(e, ast.Call):
        return ast.Call(e.func, tuple(inline_lets(lets, a) for a in e.args),
                        tuple(ast.KwArg(k.name, inline_lets(lets, k.value), k.span)
                              for k in e.kwargs), e.span, e.func_span)
    return e


def expr_size(e: ast.Expr, vars: dict, lets: dict):
    """The size expression of a vector or square matrix expression (``D`` for ``mu[k]``
    with ``mu[K] : real[D]``, for ``eye(D)``, for ``diag(s2[k])``), or None when it is
    not one or cannot be told."""
    if isinstance(e, ast.Name):
        if e.id in lets:
            return expr_size(lets[e.id], vars, lets)
        v = vars.get(e.id)
        return v.elem_dims[0] if v is not None and not v.shape and v.elem_dims else None
    if isinstance(e, ast.Index) and isinstance(e.base, ast.Name):
        v = vars.get(e.base.id)
        if v is not None and len(e.indices) == len(v.shape) and v.elem_dims \
                and v.kind != "cat":
            return v.elem_dims[0]
        return None
    if isinstance(e, ast.Call):
        if e.func in ("eye", "zeros", "ones") and len(e.args) == 1:
            return e.args[0]
        if e.func in ("diag", "transpose") and len(e.args) == 1:
            return expr_size(e.args[0], vars, lets)
        return None
    if isinstance(e, ast.Neg):
        return expr_size(e.operand, vars, lets)
    if isinstance(e, ast.BinOp) and e.op != "@":
        return expr_size(e.left, vars, lets) or expr_size(e.right, vars, lets)
    return None
