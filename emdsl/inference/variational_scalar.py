"""Variational factors of scalar global latents, derived with sympy (mean-field CAVI).

For a global latent v drawn from a scalar family F (``rate[k] ~ Gamma(a0, b0)``), q(v) is
in F, written in F's own parameters P (shape, rate).  From F's log density alone:

    log F(v | P) = eta(P) . T(v) - A(P) + log h(v)        (``decompose``)
    E_q[T] = (d eta / dP)^-T  dA/dP                      (the mean map, by the chain rule)
    P = eta^-1(H)                                         (sympy solve: natural -> own)
    KL(q || p) = (eta(P_q) - eta(P_p)) . E_q[T] - A(P_q) + A(P_p)

A scalar emission's part of the expected complete-data log likelihood of one cell,
Q = sum_i eta_i(theta) S_i - A(theta) N, must be linear in T(v) (conjugacy) and, in the
other latents, multilinear in their statistics (mean-field: then E[product] = product of
E's).  Its coefficients are v's messages, and q(v)'s natural parameters are the prior's
plus the messages summed over the cells v appears in (Blei et al. 2017, CAVI; Winn &
Bishop 2005).  The E-step reads E_q[eta_i(theta)] and E_q[A(theta)]: the same expressions
with each latent's statistics replaced by their expectations.  Each check names the term
that breaks it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import sympy as sp

from ..errors import NonConjugateError
from ..families.scalar import NotExponentialFamily, decompose, tidy
from .forms import family_args


@dataclass
class ScalarQ:
    """q(v) in the family of v's prior, in that family's own parameters."""
    var: str
    symbol: sp.Symbol             # v's symbol in the emission forms
    family: str
    names: tuple                  # q's parameters by the family's names ('shape', 'rate')
    kinds: tuple                  # and their type kinds ('pos', 'real', ...)
    P: tuple                      # their sympy symbols (q_<var>_<name>)
    T: tuple                      # statistics T(v)
    eta: tuple                    # eta(P)
    A: sp.Expr                    # A(P)
    E: tuple                      # symbols E[T_j] (E_<var>_<j>)
    mean_map: tuple               # E[T_j] as expressions of P
    H: tuple                      # symbols of q's natural parameters
    inverse: tuple                # P as expressions of H
    prior: tuple                  # P of the prior (sympy in hypers)
    location: int | None = None   # index in P of the family's location parameter
    messages: list = field(default_factory=list)   # (EmissionForm, coefficients c_j)
    parents: list = field(default_factory=list)    # ScalarQs of latents in its prior's args
    prior_messages: list = field(default_factory=list)  # (child ScalarQ, coefficients c_j)
    centred: sp.Symbol | None = None   # v - shift, where a form writes it so (E-step)
    EC: tuple = ()                # symbols E[T_j(v - shift)]

    def centred_mean_map(self, shift) -> tuple:
        """E[T_j(v - shift)]: the mean map with the location parameter moved by -shift
        (a location family: v - shift is in the same family)."""
        loc = self.P[self.location]
        return tuple(m.subs(loc, loc - shift) for m in self.mean_map)

    def kl(self) -> sp.Expr:
        """KL(q || prior) in P and the prior's arguments; with latents among those, its
        expectation under their q (E_q(parents)[KL(q || p(. | parents))], in their E
        symbols)."""
        sub = dict(zip(self.P, self.prior))
        out = sum((e - e.subs(sub)) * m for e, m in zip(self.eta, self.mean_map))
        out = out - self.A + self.A.subs(sub)
        return expected(sp.expand(out), self.parents) if self.parents else out

    def prior_natural(self, j: int) -> sp.Expr:
        """The prior's natural parameter of T_j (its expectation over latent arguments)."""
        e = self.eta[j].subs(dict(zip(self.P, self.prior)))
        return expected(sp.expand(e), self.parents) if self.parents else e


def scalar_q(cm, var: str, prior, symbols: dict) -> ScalarQ:
    """The q factor of scalar latent ``var`` with prior factor ``prior``."""
    fam = prior.family
    v = symbols[var]
    P = tuple(sp.Symbol(f"q_{var}_{p.name}", **p_assumptions(s))
              for p, s in zip(fam.params, fam.symbols))
    try:
        ef, mean_map, H, inverse = _family_form(fam.log_density(v, *P), v, P, var)
    except NotExponentialFamily as exc:  # pragma: no cover - prelude families are regular
        raise _err(cm, prior, f"{fam.name} is not an exponential family in '{var}' "
                   f"(term {exc.term})") from None
    except ValueError as exc:
        raise _err(cm, prior, f"a variational factor in {fam.name}: {exc}") from None
    args = family_args(cm, prior, symbols)
    E = tuple(sp.Symbol(f"E_{var}_{j}", real=True) for j in range(len(P)))
    names = tuple(p.name for p in fam.params)
    location = names.index(fam.location) if fam.location in names else None
    q = ScalarQ(var, v, fam.name, names, tuple(p.kind for p in fam.params), P, ef.t, ef.eta, ef.A, E, mean_map, H, inverse,
                tuple(args), location)
    if location is not None:
        q.centred = sp.Dummy(f"{var}_centred", real=True)
        q.EC = tuple(sp.Symbol(f"EC_{var}_{j}", real=True) for j in range(len(P)))
    return q


@functools.lru_cache(maxsize=64)
def _family_form(logq: sp.Expr, v: sp.Symbol, P: tuple, var: str) -> tuple:
    """(exponential-family form, mean map, natural-parameter symbols, inverse map) of q's
    log density ``logq`` in v with parameters P (cached: the same family and latent name
    give the same symbols, so a compile reuses the derivation)."""
    ef = decompose(logq, v, set(P))
    if len(ef.t) != len(P):
        raise ValueError(f"its {len(ef.t)} statistics do not match its {len(P)} parameters")
    J = sp.Matrix(ef.eta).jacobian(sp.Matrix(P))
    grad = sp.Matrix([ef.A.diff(p) for p in P])
    mean_map = tuple(tidy(m) for m in J.T.LUsolve(grad))
    H = tuple(sp.Symbol(f"H_{var}_{j}", real=True) for j in range(len(P)))
    sol = _triangular_solve([e - h for e, h in zip(ef.eta, H)], P)
    if sol is None:
        sols = sp.solve([e - h for e, h in zip(ef.eta, H)], P, dict=True, check=False,
                        simplify=False)
        if len(sols) != 1:
            raise ValueError("its natural parameters do not give back its own parameters "
                             "in closed form (sympy)")
        sol = sols[0]
    return ef, mean_map, H, tuple(tidy(sol[p]) for p in P)


def _triangular_solve(eqs: list, unknowns: tuple) -> dict | None:
    """{p: value} solving eqs = 0 one equation at a time, each with one unknown left once
    the solved ones are substituted, linear in it or in its reciprocal (eta(P) = H of the
    prelude's families); None otherwise (then sympy's solve, whose checks import
    sympy.physics: ~0.5 s of a cold compile)."""
    solved: dict = {}
    todo = list(eqs)
    while todo:
        for i, eq in enumerate(todo):
            e = sp.expand(eq.xreplace(solved))
            free = [p for p in unknowns if p not in solved and e.has(p)]
            if len(free) == 1:
                value = _linear_root(e, free[0])
                if value is None:
                    return None
                solved[free[0]] = value
                del todo[i]
                break
        else:
            return None
    return solved if set(solved) == set(unknowns) else None


def _linear_root(e: sp.Expr, p: sp.Symbol):
    """The root in p of e = a p + b, or of e = a / p + b (numerator linear in 1/p), else None."""
    slope = e.diff(p)
    if slope != 0 and not slope.has(p):
        return sp.cancel(-e.xreplace({p: 0}) / slope)
    r = sp.Dummy("r")
    num = sp.expand(sp.together(e.xreplace({p: 1 / r})).as_numer_denom()[0])
    slope = num.diff(r)
    if slope != 0 and not slope.has(r):
        root = sp.cancel(-num.xreplace({r: 0}) / slope)
        if root != 0:
            return sp.cancel(1 / root)
    return None


def p_assumptions(sym: sp.Symbol) -> dict:
    return {k: True for k in ("positive", "real") if getattr(sym, f"is_{k}")}


def linear_in(expr: sp.Expr, q: ScalarQ, var: sp.Symbol | None = None) -> tuple:
    """(c, rest) with expr = sum_j c_j T_j(v) + rest, rest free of v (``var``: the symbol
    standing for v, e.g. its centred copy); raises NotExponentialFamily naming a term that
    is not of that form."""
    var = q.symbol if var is None else var
    kappa = sp.Dummy("kappa")
    others = (expr.free_symbols - {var}) | {kappa}
    ef = decompose(kappa * expr, var, others)
    coeffs = [sp.Integer(0)] * len(q.T)
    for t, c in zip(ef.t, ef.eta):
        for j, T in enumerate(q.T):
            ratio = tidy(t / T.xreplace({q.symbol: var}))
            if ratio.is_number:
                coeffs[j] += c * ratio / kappa
                break
        else:
            raise NotExponentialFamily(t)
    return tuple(sp.expand(c) for c in coeffs), sp.expand(-ef.A / kappa)


def expected(expr: sp.Expr, qs: list, shift: sp.Symbol | None = None) -> sp.Expr:
    """E_q[expr] under the mean-field q of the latents ``qs`` (expr multilinear in their
    statistics: each latent's statistics replaced by their expectation symbols).  Where a
    centred form writes a location latent as (v - shift), the statistics of v - shift are
    used (symbols EC_*), so the E-step keeps subtracting the two large numbers first."""
    for q in qs:
        if shift is not None and q.centred is not None:
            expr = expr.xreplace({sp.UnevaluatedExpr(q.symbol - shift): q.centred})
            if q.centred in expr.free_symbols:
                c, rest = linear_in(expr, q, q.centred)
                expr = sum(cj * Ej for cj, Ej in zip(c, q.EC)) + rest
    expr = expr.doit()
    for q in qs:
        if q.symbol not in expr.free_symbols:
            continue
        c, rest = linear_in(expr, q)
        expr = sum(cj * Ej for cj, Ej in zip(c, q.E)) + rest
    return expr


def attach_messages(cm, qs: list, forms: list) -> None:
    """Each q's messages: the coefficients of its statistics in the emissions' Q of one
    cell, with the other latents' statistics replaced by their expectations."""
    for q in qs:
        for fm in forms:
            eta = [e for e in fm.eta]
            if q.symbol not in set().union(*[e.free_symbols for e in (*eta, fm.A)]):
                continue
            others = [o for o in qs if o is not q]
            Q = sum(e * s for e, s in zip(eta, fm.ess)) - fm.A * fm.count
            if fm.shift is not None:  # the others' locations stay centred (no cancellation)
                Q = Q.xreplace({sp.UnevaluatedExpr(o.symbol - fm.shift): o.centred
                                for o in others if o.centred is not None})
            try:
                c, _ = linear_in(sp.expand(sp.expand_log(Q.doit(), force=True)), q)
                c = tuple(sp.factor_terms(sp.expand(expected(cj, others, fm.shift)))
                          for cj in c)
            except NotExponentialFamily as exc:
                f = fm.emission.factor
                raise NonConjugateError(
                    f"not supported yet: '{f.text.strip()}' is not conjugate to the "
                    f"{q.family} factor of latent '{q.var}': the term {exc.term} is not a "
                    f"multiple of its statistics ({', '.join(map(str, q.T))})", f.span,
                    f"give '{q.var}' the conjugate prior of this family, or declare it a "
                    "`param`", cm.model.source) from None
            q.messages.append((fm, c))


def _err(cm, prior, what: str) -> NonConjugateError:
    return NonConjugateError(f"not supported yet: {what}", prior.span, None, cm.model.source)
