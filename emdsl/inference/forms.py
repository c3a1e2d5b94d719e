"""Scalar emissions in exponential-family form over their cells (part of stage 4).

``log p(x | theta) = eta(theta) . t(x) - A(theta) + log h(x)`` for the params (and the
indexed hypers) of one statement, found by sympy from the family's log density
(``families.scalar.decompose``); real data with polynomial statistics are written in the
centred variable x - shift so that nothing cancels far from 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import NonConjugateError
from ..families.scalar import ASSUMPTIONS, NotExponentialFamily, decompose, to_sympy
from ..frontend import ast
from ..frontend.check import CheckedModel
from .conjugacy import Emission


@dataclass
class EmissionForm:
    """A scalar emission in exponential-family form over its param grid."""
    emission: Emission
    x: sp.Symbol
    t: tuple
    eta: tuple
    A: sp.Expr
    logh: sp.Expr
    ess: tuple            # S symbols, one per statistic
    count: sp.Symbol      # N symbol
    axes: tuple           # the cell grid: the union of its params' axes
    shift: sp.Symbol | None = None  # c when the statistics are of the centred data x - c
    ref_axes: dict = field(default_factory=dict)  # param / indexed hyper -> its axes
    summed: tuple = ()    # inner loop variables no param depends on (summed in t(x))
    shift_shared: tuple = ()  # inner loops on the cells across which the shift is one value
    # variational globals in the params: E_q[eta] and E_q[A] in their expectation symbols
    q_eta: tuple = ()
    q_A: sp.Expr | None = None
    # a point params' view (variational EM): the refs of the q factors it reads
    q_refs: tuple = ()


# ----------------------------------------------------------------------------- symbols
def known_symbols(cm: CheckedModel) -> dict:
    # no integer=True: sympy would turn loggamma(M + 1) into log(gamma(M + 1))
    syms = {d: sp.Symbol(d, positive=True) for d in cm.dims}
    for v in cm.vars.values():
        if v.role in ("hyper", "param"):
            syms[v.name] = sp.Symbol(v.name, **ASSUMPTIONS.get(v.kind, {}))
    return syms


def priors_reading(priors: dict, name: str, among=None) -> list:
    """The prior factors (of ``priors``: latent -> factor; those of the latents ``among``
    only, when given) with ``name`` in their arguments."""
    return [pf for var, pf in priors.items() if (among is None or var in among) and any(
        isinstance(sub, ast.Name) and sub.id == name for _, e in pf.args
        for sub in ast.walk_expr(e))]


def arg_sympy(cm, e: ast.Expr, symbols):
    def on_index(node):
        base = node.base.id
        if cm.role(base) == "param" or (cm.role(base) == "hyper" and not all(
                isinstance(i, ast.Num) for i in node.indices)):
            return symbols[base]
        raise NonConjugateError(f"not supported yet: '{ast.show(node)}' in a scalar argument",
                                node.span, None, cm.model.source)
    return to_sympy(e, symbols, on_index)


def family_args(cm, f, symbols, rewrite=None) -> list:
    """The sympy arguments of statement ``f`` in its family's canonical parameters
    (``prec=`` and ``sd=`` mapped to the variance); ``rewrite`` edits each argument's AST
    first (a linear predictor standing for ``dot(w, X[n])``)."""
    out = []
    for name, expr in f.args:
        val = arg_sympy(cm, rewrite(expr) if rewrite else expr, symbols)
        kw = dict(f.keywords).get(name)
        if kw and kw in f.family.alternatives:
            val = f.family.alternatives[kw][1](val)
        out.append(val)
    return out


def emission_form(cm, e: Emission, symbols, priors=()) -> EmissionForm:
    f = e.factor
    fam = f.family
    x = sp.Symbol(f.target, **ASSUMPTIONS.get(cm.vars[f.target].kind, {}))
    args = family_args(cm, f, symbols)
    logp = fam.log_density(x, *args)
    # indexed hypers vary over the cells like params: they belong in eta and A, not log h
    unknowns = {symbols[r.param] for r in (*e.refs, *e.knowns)}
    try:
        ef = decompose(logp, x, unknowns)
    except NotExponentialFamily as exc:
        raise NonConjugateError(
            f"not supported yet: {fam.name} is not an exponential family in "
            f"{', '.join(sorted(r.param for r in e.refs))} here: the term {exc.term} mixes "
            f"'{f.target}' and a param", f.span, "write the parameter where the family is "
            "exponential (e.g. a Binomial's n must be known)", cm.model.source)
    grid = cell_grid(e)
    on_grid = {a.name for a in grid if a.kind == "loop"}
    summed = tuple(lp.var for lp in e.inner if lp.var not in on_grid)
    shift, shared = None, ()
    if fam.support == "real" and ef.t and all(t.is_polynomial(x) for t in ef.t):
        # real data with polynomial statistics (x, x^2): derive in the centred variable
        # x - c (c = the data mean, in the generated code) so that neither the E-step's
        # eta . t(x) - A nor the M-step's S2/N - (S1/N)^2 cancels when the data are far
        # from 0 (the same centring as the MvNormal's)
        shift = sp.Symbol(f"shift_{f.target}", real=True)
        locations = [sym for sym in sorted(set().union(*[a.free_symbols for a in args]), key=str)
                     if sym.is_real and not sym.is_positive]
        ef, centred = _centred(fam.log_density(x + shift, *args), x, shift, unknowns,
                               locations)
        # a location param shared across an inner loop needs one shift across that loop
        # (else u - shift would vary where u does not, and its M-step would not separate)
        for u in centred:
            axes = {a.name for a in e_axes(e, str(u)) if a.kind == "loop"}
            if cm.role(str(u)) == "param":
                shared += tuple(v for v in sorted(on_grid) if v not in axes and v not in shared)
    if not any(r.param in priors for r in e.refs):  # a prior makes the MAP identifiable
        _identifiable(cm, e, ef, [symbols[r.param] for r in e.refs])
    ess = tuple(sp.Symbol(f"S_{f.target}_{i}", real=True) for i in range(len(ef.t)))
    count = sp.Symbol(f"N_{f.target}", positive=True)
    ref_axes = {r.param: r.axes for r in (*e.refs, *e.knowns)}
    return EmissionForm(e, x, ef.t, ef.eta, ef.A, ef.logh, ess, count, grid, shift,
                        ref_axes, summed, tuple(lp.var for lp in e.inner if lp.var in shared))


def e_axes(e: Emission, name: str) -> tuple:
    """The axes of the reference to ``name`` in an emission (() when it has none)."""
    return next((r.axes for r in (*e.refs, *e.knowns) if r.param == name), ())


def _identifiable(cm, e: Emission, ef, params) -> None:
    """The params of one statement must be identifiable from its data: the map from them to
    (eta, A) must have full rank (checked at a random point).  ``Poisson(a[k] + b[k])``
    depends on a and b only through a + b, so no data can tell them apart."""
    if len(params) < 2:
        return
    rng = np.random.default_rng(12345)
    point = {}
    for sym in set().union(*[q.free_symbols for q in (*ef.eta, ef.A)]):
        lo, hi = (0.2, 0.8) if sym.is_positive and str(sym) in cm.vars and \
            cm.vars[str(sym)].kind == "unit" else (0.5, 2.0)
        point[sym] = rng.uniform(lo, hi)
    rows = []
    for q in (*ef.eta, ef.A):
        q = q.doit()
        rows.append([float(sp.diff(q, u).subs(point).evalf()) for u in params])
    J = np.array(rows)
    if not np.all(np.isfinite(J)):
        return
    _, sv, vt = np.linalg.svd(J)
    rank = int(np.sum(sv > 1e-9 * max(sv[0], 1e-300)))
    if rank < len(params):
        null = vt[rank:]   # directions the data cannot see: the params that move along them
        tied = [u for j, u in enumerate(params) if np.abs(null[:, j]).max() > 1e-6]
        names = ", ".join(str(u) for u in (tied if len(tied) >= 2 else params))
        raise NonConjugateError(
            f"the params {names} cannot be identified from the data: '{e.factor.text.strip()}' "
            f"depends on them only through fewer combinations than there are params",
            e.factor.span, "keep one of them, or give the others a prior (MAP) or a "
            "fixed value (a hyper)", cm.model.source)


def cell_grid(e: Emission) -> tuple:
    """The cells of an emission: the union of its params' (and indexed hypers') axes,
    those of the most-indexed reference first.  Statistics are summed per cell."""
    refs = sorted((*e.refs, *e.knowns), key=lambda r: -len(r.axes))
    grid: list = []
    for r in refs:
        grid += [a for a in r.axes if a not in grid]
    return tuple(grid)


def _centred(logp, x, shift, unknowns, candidates):
    """The exponential-family form of ``logp`` (a log density in the centred datum x, that
    is x + shift in the data's units) with every location symbol u (a param or a hyper)
    written as (u - shift), so that numpy subtracts the two large numbers first instead of
    cancelling u^2 - 2 u shift + shift^2 afterwards (in A, and in log h for a known mean).

    u is a location when substituting u -> v + shift removes ``shift`` from ``logp``."""
    back, centred = {}, []
    for u in candidates:
        v = sp.Dummy(f"{u}_centred", real=True)
        moved = sp.expand(sp.expand_log(logp.xreplace({u: v + shift}), force=True))
        if shift in moved.free_symbols:
            continue
        logp = moved
        centred.append(u)
        back[v] = sp.UnevaluatedExpr(u - shift)
        if u in unknowns:
            unknowns = (unknowns - {u}) | {v}
    ef = decompose(logp, x, unknowns)
    return type(ef)(ef.t, tuple(e.xreplace(back) for e in ef.eta), ef.A.xreplace(back),
                    ef.logh.xreplace(back)), centred


