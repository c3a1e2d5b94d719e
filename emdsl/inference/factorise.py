"""Diagonal vector emissions as scalar ones (part of stage 4).

``x[n] ~ MvNormal(mu[z[n]], diag(s2[z[n]]))`` and ``x[n] ~ MvNormal(mu[z[n]], v * eye(D))``
are products of D scalar Normals, ``x[n, e] ~ Normal(mu[z[n], e], s2[z[n], e])`` over an
element loop ``e``: the scalar derivation then handles per-element, shared (spherical) and
tied variances alike, with statistics x and x^2 per element instead of x x^T.  Which
families factorise, and how their arguments map, is the family table's ``FACTORISES``.
"""
from __future__ import annotations

from ..frontend import ast
from ..frontend.check import CheckedModel, Factor, Loop
from ..families import FACTORISES

ELEMENT = "_e"   # the element loop variable (user identifiers never start with '_')


def factorise(cm: CheckedModel, f: Factor) -> Factor | None:
    """The scalar factor over an element loop equivalent to ``f``, or None when ``f``'s
    spread is not diagonal (a full covariance) or its family does not factorise."""
    entry = FACTORISES.get(f.family.name)
    if entry is None:
        return None
    scalar, arg_map, keyword_map = entry
    spread_arg = f.family.spread
    keyword = dict(f.keywords).get(spread_arg, spread_arg)
    diagonal = _diagonal(f.arg[spread_arg])
    if diagonal is None:
        return None
    size = cm.vars[f.target].elem_dims[0]
    loop = Loop(ELEMENT, ast.Num(1, True, f.span), size, f.span)
    args, kws = [], []
    for name, e in f.args:
        value = diagonal if name == spread_arg else e
        elem = _element(cm, value)
        if elem is None:
            return None
        args.append((arg_map[name], elem))
    if keyword_map[keyword] != arg_map[spread_arg]:
        kws.append((arg_map[spread_arg], keyword_map[keyword]))
    fam = cm.families[scalar]
    index = f.index + (ast.Name(ELEMENT, f.span),)
    return Factor(f.target, index, fam, tuple(args), tuple(kws), f.loops + (loop,), f.span,
                  f.text)


def _diagonal(e: ast.Expr):
    """The vector (or scalar) on the diagonal of ``diag(v)``, ``s * eye(D)``, ``eye(D) * s``
    or ``eye(D) / s``; None for any other matrix."""
    if isinstance(e, ast.Call) and e.func == "diag" and len(e.args) == 1:
        return e.args[0]
    if isinstance(e, ast.BinOp) and e.op in "*/":
        eye = lambda x: isinstance(x, ast.Call) and x.func == "eye"  # noqa: E731
        if e.op == "*" and eye(e.right) and not eye(e.left):
            return e.left
        if eye(e.left) and not eye(e.right):
            if e.op == "*":
                return e.right
            return ast.BinOp("/", ast.Num(1, True, e.span), e.right, e.span)
    return None


def _rank(cm: CheckedModel, e: ast.Expr):
    """Rank of a reference's value (0 scalar, 1 vector), None when not a reference."""
    base = e.base if isinstance(e, ast.Index) else e
    if not isinstance(base, ast.Name) or base.id not in cm.vars:
        return 0 if isinstance(base, ast.Name) else None  # a dim or the constant pi
    v = cm.vars[base.id]
    used = len(e.indices) if isinstance(e, ast.Index) else 0
    return len(v.shape) + v.elem_rank - used


def _element(cm: CheckedModel, e: ast.Expr):
    """Element ``_e`` of a vector expression (scalars unchanged); None if not elementwise."""
    el = ast.Name(ELEMENT, e.span)
    if isinstance(e, ast.Num):
        return e
    if isinstance(e, (ast.Name, ast.Index)):
        rank = _rank(cm, e)
        if rank == 0:
            return e
        if rank != 1:
            return None
        if isinstance(e, ast.Index):
            return ast.Index(e.base, e.indices + (el,), e.span)
        return ast.Index(e, (el,), e.span)
    if isinstance(e, ast.BinOp) and e.op in "+-*/^":
        a, b = _element(cm, e.left), _element(cm, e.right)
        return None if a is None or b is None else ast.BinOp(e.op, a, b, e.span)
    if isinstance(e, ast.Neg):
        a = _element(cm, e.operand)
        return None if a is None else ast.Neg(a, e.span)
    if isinstance(e, ast.Call) and e.func in ("zeros", "ones"):
        return ast.Num(0 if e.func == "zeros" else 1, True, e.span)
    if isinstance(e, ast.Call) and e.func in ("exp", "log", "sqrt") and len(e.args) == 1:
        a = _element(cm, e.args[0])
        return None if a is None else ast.Call(e.func, (a,), (), e.span, e.func_span)
    return None
