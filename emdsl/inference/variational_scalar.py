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
    # structured (q(v, u) = q(v | u) q(u), ``variational_links.py``): u's ScalarQ, and
    # P_p -> P_p w_p(u): q(v | u)'s parameters at u from the stored ones P
    given: ScalarQ | None = None
    scaling: dict = field(default_factory=dict)
    pair: object = None           # the ScalarPair of a structured v
    located: sp.Symbol | None = None   # structured: q's location minus the shift (E-step)

    @property
    def conditioning(self) -> list:
        """The latents that q(v)'s parameters or its prior are expectations over."""
        return self.parents + ([self.given] if self.given is not None else [])

    def conditional_mean_map(self, shift=None) -> tuple:
        """E_q[T_j(v) | u] (structured), or E_q[T_j(v - shift) | u]: the mean map at the
        parameters P w(u); centred, in the symbol ``located`` = location - shift, which
        the code computes first (so nothing cancels; w of a location is 1)."""
        if shift is None:
            return tuple(m.xreplace(self.scaling) for m in self.mean_map)
        loc = self.P[self.location]
        return tuple(m.xreplace({loc: self.located}).xreplace(self.scaling)
                     for m in self.mean_map)

    def expected_statistics(self) -> dict:
        """T_j(v) -> E_q[T_j(v)] in q's parameters; for a structured v in its partner's E
        symbols too, E_q(u)[E_q[T_j(v) | u]], for the statistics where that is linear in
        u's statistics (a Normal-Gamma's E[mu^2] needs E[1 / tau]: left out)."""
        if self.given is None:
            return dict(zip(self.T, self.mean_map))
        out = {}
        for T, m in zip(self.T, self.conditional_mean_map()):
            try:
                out[T] = expected(m, [self.given])
            except NotExponentialFamily:
                continue
        return out

    def variable_mean(self):
        """E_q[v] in q's parameters P, and the conditions on P under which it is finite:
        v's statistic's expectation when v is one; where log v is a statistic T_j
        instead (Beta, InvGamma), E[v] = E[exp(log v)] = exp(A(eta + e_j) - A(eta)), the
        ratio of two normalisers (finite when eta + e_j is a natural parameter: each
        shifted parameter still in its kind, e.g. an InvGamma's shape - 1 > 0). None
        when neither is a statistic."""
        if self.symbol in self.T:
            return self.mean_map[self.T.index(self.symbol)], []
        log_v = sp.log(self.symbol)
        if log_v not in self.T:
            return None
        j = self.T.index(log_v)
        to_P = dict(zip(self.H, self.eta))
        shifted = {P: inv.xreplace({self.H[j]: self.H[j] + 1}).xreplace(to_P)
                   for P, inv in zip(self.P, self.inverse)}
        diff = (self.A.xreplace(shifted) - self.A).replace(
            sp.loggamma, lambda x: sp.log(sp.gamma(x)))   # arguments positive: P's kinds
        mean = sp.gammasimp(sp.powsimp(sp.expand_power_exp(sp.exp(sp.expand(diff)))))
        bounds = {"pos": lambda e: [e > 0], "unit": lambda e: [e > 0, e < 1]}
        conds = [c for P, kind in zip(self.P, self.kinds) if shifted[P] != P
                 for c in bounds.get(kind, lambda e: [])(shifted[P])]
        return mean, conds

    def centred_mean_map(self, shift) -> tuple:
        """E[T_j(v - shift)]: the mean map with the location parameter moved by -shift
        (a location family: v - shift is in the same family)."""
        loc = self.P[self.location]
        return tuple(m.subs(loc, loc - shift) for m in self.mean_map)

    def kl_given(self) -> sp.Expr:
        """KL(q(v | .) || p(v | .)) in P and the prior's arguments (for a structured v, at
        q's parameters P w(u): a function of u)."""
        sub = dict(zip(self.P, self.prior))
        q_at = {}
        if self.location is not None and not self.scaling:
            # a location family: KL is the same with both locations moved by -(q's), so
            # q's is 0 and the prior's is the difference - nothing of the size of the
            # locations themselves is formed (their squares over q's variance cancelled
            # to rounding before: a 1e7 offset lost the ELBO's decimals)
            loc = self.P[self.location]
            q_at = {loc: sp.Integer(0)}
            sub = {**sub, loc: self.prior[self.location] - loc}
        out = sum((e.xreplace(q_at) - e.xreplace(sub)) * m.xreplace(q_at)
                  for e, m in zip(self.eta, self.mean_map))
        out = out - self.A.xreplace(q_at) + self.A.xreplace(sub)
        if self.scaling:
            out = sp.expand_log(out.xreplace(self.scaling), force=True)
        return out

    def kl(self) -> sp.Expr:
        """KL(q || prior); with latents among the prior's arguments (or a structured
        partner), its expectation under their q (E_q(u)[KL(q(v | u) || p(v | u))], in
        their E symbols)."""
        out = self.kl_given()
        if not self.conditioning:
            return out
        out = expected(sp.expand(out), self.conditioning)
        return compact(out, [E for o in self.conditioning for E in o.E]) \
            if self.given is not None else out

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
        q.located = sp.Symbol(f"qc_{var}_{names[location]}", real=True)
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
    ef = decompose(kappa * expr, var, others, simplify=False)
    coeffs = [sp.Integer(0)] * len(q.T)
    for t, c in zip(ef.t, ef.eta):
        for j, T in enumerate(q.T):
            ratio = t / T.xreplace({q.symbol: var})
            if not ratio.is_number:
                ratio = tidy(ratio)
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
    used (symbols EC_*), so the E-step keeps subtracting the two large numbers first.  A
    structured v is taken first: its statistics become their expectations given its
    partner u (in q's parameters and u), which the expectation over u, when u is among
    ``qs``, then takes."""
    qs = sorted(qs, key=lambda q: q.given is None)
    for q in qs:
        if shift is not None and q.centred is not None:
            expr = expr.xreplace({sp.UnevaluatedExpr(q.symbol - shift): q.centred})
            if q.centred in expr.free_symbols:
                c, rest = linear_in(expr, q, q.centred)
                E = q.conditional_mean_map(shift) if q.given is not None else q.EC
                expr = sum(cj * Ej for cj, Ej in zip(c, E)) + rest
    expr = expr.doit()
    for q in qs:
        if q.symbol not in expr.free_symbols:
            continue
        c, rest = linear_in(expr, q)
        E = q.conditional_mean_map() if q.given is not None else q.E
        expr = sum(cj * Ej for cj, Ej in zip(c, E)) + rest
        if q.given is not None:
            expr = sp.expand(sp.expand_log(expr, force=True))
    return expr


def compact(expr: sp.Expr, syms: list) -> sp.Expr:
    """``expr`` collected in ``syms``, each coefficient factored: a prior's beta0 (m0 - m)^2
    stays a square (nothing cancels far from 0)."""
    parts = sp.collect(sp.expand(expr), list(syms), evaluate=False)
    return sp.Add(*[sp.factor(c) * k for k, c in parts.items()])


def attach_messages(cm, qs: list, forms: list, only: list | None = None) -> None:
    """Each q's messages (of the q factors ``only``, default all): the coefficients of its
    statistics in the emissions' Q of one cell, with the other latents' statistics
    replaced by their expectations.  A structured v's coefficients keep its partner u
    symbolic (functions of u); u's are taken after the expectation over q(v | u)."""
    for q in (qs if only is None else only):
        for fm in forms:
            eta = [e for e in fm.eta]
            if q.symbol not in set().union(*[e.free_symbols for e in (*eta, fm.A)]):
                continue
            others = [o for o in qs if o is not q and o is not q.given]
            Q = sum(e * s for e, s in zip(eta, fm.ess)) - fm.A * fm.count
            if fm.shift is not None:  # the others' locations stay centred (no cancellation)
                Q = Q.xreplace({sp.UnevaluatedExpr(o.symbol - fm.shift): o.centred
                                for o in others if o.centred is not None})
            kids = [o for o in others if o.given is q]
            if kids:
                Q = expected(Q, kids, fm.shift)
                others = [o for o in others if o not in kids]
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
