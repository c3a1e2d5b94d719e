"""Scalar latents linked through a prior (part of stage 4, variational factors).

A prior whose arguments hold another scalar latent u links the two factors:

- **hierarchical** (mean-field, ``mu[k] ~ Normal(mu0, s0)`` with ``mu0`` latent): u gets a
  factor q(u) of its own and, from each such prior, the message sum_k E_q[coefficients of
  T(u) in log p(v_k | u)]; v's prior natural parameters and KL are expectations over u
  (Winn & Bishop 2005).
- **structured** (the plan's ``structured`` pair, ``mu[k] ~ Normal(m0, prec=beta0 *
  tau[k])``): one joint factor q(v, u) = q(v | u) q(u) (Bishop 10.2 for Normal-Gamma).
  log q*(v | u) collects the terms of v in E[log p] with u kept symbolic: its natural
  parameters are H_j(u) = sum_i a_ji g_i(u) over g = (1, T(u)), with numbers a from the
  prior and the summed messages.  q's own parameters at u, P(H(u)) (the inverse map), must
  separate as P_p = f_p(a) w_p(u): f_p(a) are stored, and w_p(u) says how q(v | u) moves
  with u (a Normal-Gamma's var / tau).  Then q*(u) is p(u) times exp of the expected
  emissions under q(v | u) and of -KL(q(v | u) || p(v | u)), both linear in T(u) in a
  conjugate pair: that is the update of q(u) given q(v | .), exact for the optimal q(v | u)
  (where it equals log p(u) + R(u) + A(H(u)) of the joint conditional), and the pair's
  ELBO term is E_q(u)[-KL(q(v | u) || p(v | u))] - KL(q(u) || p(u)).
Each check names the term or statement that breaks it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import NonConjugateError
from ..families.scalar import NotExponentialFamily, tidy
from ..frontend import ast
from .variational_scalar import ScalarQ, expected, linear_in, scalar_q


@dataclass
class ScalarPair:
    """The structured factor q(v | u) q(u) of a scalar v whose prior holds scalar u."""
    child: ScalarQ
    basis: tuple                   # g_i(u): 1 and u's statistics T(u)
    coef: dict                     # (j, i) -> symbol a_<v>_<j>_<i> of T_j(v) g_i(u)
    prior: dict                    # (j, i) -> the prior's part of a_ji (hypers)
    messages: list = field(default_factory=list)  # (EmissionForm, {(j, i): per cell})
    fields: tuple = ()             # q(v | u)'s stored parameters f_p(a)
    scaling: tuple = ()            # w_p(u): q(v | u)'s parameter p is f_p(a) w_p(u)

    def form(self) -> str:
        """q(v | u) in words: ``Normal(mean, var/tau)``."""
        names = {P: sp.Symbol(n) for n, P in zip(self.child.names, self.child.P)}
        args = ", ".join(sp.sstr((P * w).xreplace(names))
                         for P, w in zip(self.child.P, self.scaling))
        return f"{self.child.family}({args})"


# ----------------------------------------------------------------------------- hierarchical
def hierarchical(cm, priors: dict, qs: list, latent: set, symbols) -> None:
    """Priors whose arguments are latents other than a structured partner: the parent gets
    a q factor of its own (appended to ``qs``) and the children's prior messages."""
    by_var = {q.var: q for q in qs}
    todo = list(qs)
    while todo:
        q = todo.pop(0)
        pf = priors[q.var]
        partner = q.given.var if q.given is not None else None
        for u in sorted({str(u) for a in q.prior for u in a.free_symbols & latent} - {partner}):
            if partner is not None:
                raise _error(cm, pf, f"the prior of the structured '{q.var}' holds latent "
                             f"'{u}' besides its partner '{partner}'",
                             f"give '{q.var}' a prior whose only latent is '{partner}'")
            if cm.vars[u].shape or cm.vars[u].elem_rank:
                raise _error(cm, pf, f"a hierarchical prior: '{pf.text.strip()}' has latent "
                             f"'{u}' with a plate or a vector value in its arguments",
                             f"give '{u}' a single scalar value per model")
            parent = _q_of(cm, priors, u, qs, by_var, symbols, todo)
            q.parents.append(parent)
            logp = sp.expand(sp.expand_log(pf.family.log_density(q.symbol, *q.prior), force=True))
            c = _coefficients(cm, pf, logp, parent, f"give '{u}' the conjugate prior of "
                              f"{pf.family.name}'s argument")
            others = [o for o in by_var.values() if o is not parent]
            parent.prior_messages.append(
                (q, tuple(sp.factor_terms(sp.expand(expected(cj, others))) for cj in c)))


def _q_of(cm, priors: dict, u: str, qs: list, by_var: dict, symbols, todo=None) -> ScalarQ:
    """u's ScalarQ, made (and appended to ``qs``) on first use."""
    if u not in by_var:
        by_var[u] = scalar_q(cm, u, priors[u], symbols)
        qs.append(by_var[u])
        if todo is not None:
            todo.append(by_var[u])
    return by_var[u]


def _coefficients(cm, pf, expr, q: ScalarQ, hint: str) -> tuple:
    """The coefficients of q's statistics in ``expr`` (a term of ``pf``), or a located error."""
    try:
        return linear_in(expr, q)[0]
    except NotExponentialFamily as exc:
        raise _error(cm, pf, f"'{pf.text.strip()}' is not conjugate to the {q.family} factor "
                     f"of latent '{q.var}': the term {exc.term} is not a multiple of its "
                     f"statistics ({', '.join(map(str, q.T))})", hint) from None


# ----------------------------------------------------------------------------- structured
def pair_up(cm, priors: dict, qs: list, children: dict, symbols) -> None:
    """Join each structured child v (``children``: v -> u) of ``qs`` with its partner's
    ScalarQ (made if u is in no statement's arguments), and put v before u."""
    by_var = {q.var: q for q in qs}
    for v, u in children.items():
        if v not in by_var:
            continue
        q, pf = by_var[v], priors[v]
        uv = cm.vars[u]
        if uv.elem_rank:
            raise _error(cm, pf, f"the structured factor q({v}, {u}) with a vector-valued "
                         f"'{u}'", "this version joins a scalar mean with a scalar precision "
                         "or variance (Normal-Gamma); use the Normal-Wishart MvNormal form")
        refs = [e for _, a in pf.args for e in ast.walk_expr(a)
                if isinstance(e, ast.Index) and e.base.id == u]
        same = all(tuple(ast.show(i) for i in r.indices) == tuple(ast.show(i) for i in pf.index)
                   for r in refs)
        if uv.shape and (not same or tuple(uv.shape) != tuple(cm.vars[v].shape)):
            raise _error(cm, pf, f"the structured factor q({v}, {u}): '{u}' must be one value "
                         f"per element of '{v}' (indexed as '{v}' is) or a single value",
                         f"write '{u}' with the indices of '{v}'")
        q.given = _q_of(cm, priors, u, qs, by_var, symbols)
    for q in [q for q in qs if q.given is not None]:
        if qs.index(q) > qs.index(q.given):
            qs.remove(q)
            qs.insert(qs.index(q.given), q)


def finish_pair(cm, priors: dict, q: ScalarQ) -> None:
    """q(v | u) of a structured ``q`` whose messages (functions of u) are attached: the
    coefficients a_ji, the stored parameters f(a) and the scalings w(u); then u's message
    from v's prior, the coefficients of T(u) in -KL(q(v | u) || p(v | u))."""
    u, pf = q.given, priors[q.var]
    basis = (sp.Integer(1),) + tuple(u.T)
    hint = (f"q({q.var} | {u.var}) is in {q.family} only when each statement's and the prior's "
            f"coefficients of {q.var}'s statistics are combinations of 1 and "
            f"{', '.join(map(str, u.T))}")

    def split(c, where) -> dict:
        """{(j, i): a} with sum_i a g_i(u) = c_j(u)."""
        out = {}
        for j, cj in enumerate(c):
            try:
                cu, rest = linear_in(sp.expand(sp.expand_log(cj, force=True)), u)
            except NotExponentialFamily as exc:
                raise _error(cm, where, f"the structured factor q({q.var} | {u.var}): the "
                             f"coefficient {cj} of {q.T[j]} has the term {exc.term} in "
                             f"'{u.var}'", hint) from None
            for i, a in enumerate((rest,) + tuple(cu)):
                if a != 0:
                    out[(j, i)] = a
        return out
    logp = sp.expand(sp.expand_log(pf.family.log_density(q.symbol, *q.prior), force=True))
    prior = split(_coefficients(cm, pf, logp, q, hint), pf)
    messages = [(fm, split(c, fm.emission.factor)) for fm, c in q.messages]
    keys = sorted(set(prior).union(*[m for _, m in messages]))
    coef = {k: sp.Symbol(f"a_{q.var}_{k[0]}_{k[1]}", real=True) for k in keys}
    H = {Hj: sum((coef[(j, i)] * basis[i] for i in range(len(basis)) if (j, i) in coef),
                 sp.Integer(0)) for j, Hj in enumerate(q.H)}
    fields, scaling = [], []
    for name, inv in zip(q.names, q.inverse):
        P = tidy(inv.xreplace(H))
        parts = sp.separatevars(P, symbols=[u.symbol], dict=True, force=True)
        w = parts.get(u.symbol) if parts else None
        if w is None or parts["coeff"].has(u.symbol) or w.free_symbols & set(coef.values()):
            raise _error(cm, pf, f"the structured factor q({q.var} | {u.var}): its {name} "
                         f"at {u.var}, {P}, is not a number times a function of '{u.var}'",
                         hint)
        fields.append(parts["coeff"])
        scaling.append(w)
    if q.location is not None and scaling[q.location] != 1:
        raise _error(cm, pf, f"the structured factor q({q.var} | {u.var}): its location "
                     f"moves with '{u.var}' ({scaling[q.location]})", hint)
    q.scaling = {P: P * w for P, w in zip(q.P, scaling)}
    q.pair = ScalarPair(q, basis, coef, prior, messages, tuple(fields), tuple(scaling))
    q.messages = []
    kl = sp.expand(sp.expand_log(-q.kl_given(), force=True))
    c = _coefficients(cm, pf, kl, u, hint)
    u.prior_messages.append((q, tuple(sp.factor(c_) for c_ in c)))


def _error(cm, f, what: str, hint) -> NonConjugateError:
    return NonConjugateError(f"not supported yet: {what}", f.span, hint, cm.model.source)
