"""Stage 4: derive the EM / MAP-EM updates with sympy -> :class:`UpdateSet`.

E-step (Linderman eq. 14/39): r[n, k] is proportional to p(z_n = k | P) prod_f p(x_f | theta_k).
Every scalar emission is put in exponential-family form on its cells (``forms.py``), so
log p(x | theta_c) = eta(theta_c) . t(x) - A(theta_c) + log h(x) and the expected complete
data log likelihood is  Q = sum_c [sum_s eta_s S_s,c - A N_c] (+ log prior), with
S_s,c = sum_n r[n, k] t_s(x_n) over the items of cell c (eq. 49-50).  Params with the same
axes that share a statement are solved together; a group whose params miss some of the
cells' axes (a tied variance) sums its part of Q over them (aggregate symbols).  Groups are
updated one after another (ECM), each solving dQ/dtheta = 0 with sympy under a time limit
(``solve.py``), or numerically from the sympy gradient and Hessian (generalized EM).
Simplex params use a Lagrange multiplier; MvNormal params the modes of their messages
(``derive_vector``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from ..cachefiles import cache_dir, read_sealed, write_sealed
from ..errors import NonConjugateError
from ..frontend import ast
from ..frontend.check import CheckedModel
from .conjugacy import Axis, ConjugacyReport
from .forms import EmissionForm, emission_form, family_args, known_symbols, priors_reading
from .plan import VARIATIONAL
from .solve import TIMED_OUT, edge_conditions, simplify_within, unique_solution


@dataclass
class ScalarGroup:
    """Scalar params solved together (they share emissions)."""
    params: tuple
    axes: tuple
    forms: list
    Q: sp.Expr                          # expected complete-data log lik (+ log prior)
    equations: dict                     # param -> dQ/dparam
    closed: dict = field(default_factory=dict)    # param -> closed form
    numeric: tuple = ()                 # params solved by Newton
    profile: sp.Expr | None = None      # Q with the closed forms substituted
    grad: list = field(default_factory=list)
    hess: list = field(default_factory=list)
    priors: dict = field(default_factory=dict)    # param -> log prior expression
    # forms whose cells the group's params do not all vary over (a tied variance): Q is
    # written with aggregate symbols B = sum over the other cell axes of an expression
    aggregates: dict = field(default_factory=dict)  # B symbol -> (form, expression)
    others: tuple = ()                  # params of other groups that its updates read
    timed_out: tuple = ()               # params whose symbolic solve hit SOLVE_SECONDS
    edge_checks: list = field(default_factory=list)  # (param, edge, c): prior unbounded if c < 0


@dataclass
class SimplexUpdate:
    """p = c / sum(c), c = expected counts (+ alpha - 1 under a Dirichlet prior)."""
    param: str
    axes: tuple                  # index axes of the param (its plate)
    source: object               # 'assign' or an Emission
    prior_alpha: ast.Expr | None
    lagrange: str                # the sympy-derived solution, as text
    lagrange_tex: str = ""       # the same in LaTeX


@dataclass
class UpdateSet:
    report: ConjugacyReport
    checked: CheckedModel
    forms: list
    groups: list
    simplex: list
    gaussian: list
    symbols: dict
    plan: object = None         # the inference Plan the updates were derived from
    variational: frozenset = frozenset()  # global latents with a q factor (seen as params)
    qfactors: list = field(default_factory=list)  # their QFactors (variational.py)
    scalar_qs: list = field(default_factory=list)  # ScalarQs (variational_scalar.py)
    prior_params: dict = field(default_factory=dict)  # param -> variational priors it is in

    def q(self, var: str):
        """The QFactor of variational global ``var``, else None."""
        return next((q for q in self.qfactors if q.var == var), None)

    def local_factors(self) -> tuple:
        """The variational factors of a group of items (LDA's theta[d], selected by the
        items' covariate doc[t]): updated with the items' q, before the global ones."""
        refs = [self.report.assign_ref] + [r for e in self.report.emissions for r in e.refs]
        return tuple(dict.fromkeys(
            r.param for r in refs if r.param in self.variational
            and any(a.kind == "covariate" for a in r.axes)))

    def grouped_weights(self) -> bool:
        """Whether the only local factor is the Dirichlet of the latent's groups,
        z[n] ~ Categorical(theta[g[n]]) (then the groups are fitted by restarts to
        convergence before each global update: the generated ``local_fit``)."""
        ref = self.report.assign_ref
        q = self.q(ref.param)
        return (self.local_factors() == (ref.param,) and len(ref.axes) == 1
                and ref.axes[0].kind == "covariate" and q is not None
                and q.family == "Dirichlet")

    @property
    def ecm_cycle(self) -> bool:
        """Whether a param group reads a group updated after it (then the first M-step,
        from no previous values, is repeated a few times)."""
        seen: set = set()
        for g in self.groups:
            if set(g.others) - seen:
                return True
            seen |= set(g.params)
        return False


def analyse_plan(plan) -> tuple:
    """(ConjugacyReport, the model it describes, the variational globals) of a plan: with
    variational factors, the global latents are seen as params by the analysis and the
    derivation (``variational.py``) and get q factors instead of point updates."""
    from .conjugacy import analyse
    plan.require_supported()
    if not any(t.kind in VARIATIONAL for t in plan.treatments.values()):
        return analyse(plan.graph), plan.graph.model, frozenset()
    from ..graph import build_graph
    from .variational import global_view, variational_view
    every = global_view(plan)
    if every is not None:   # no discrete latent: CAVI over global latents only
        return None, every[0], every[1]
    view, names = variational_view(plan)
    report = dataclasses.replace(analyse(build_graph(view)), algorithm=plan.algorithm)
    return report, view, names


def derive_plan(plan, analysed: tuple | None = None) -> UpdateSet:
    """The updates of a plan (``analysed``: what :func:`analyse_plan` returned for it)."""
    report, cm, names = analysed or analyse_plan(plan)
    if report is None:
        from .global_cavi import derive_global
        return derive_global(plan, cm, names)
    structured = {t.var: t.partner for t in plan.treatments.values()
                  if t.kind == "structured" and t.given}
    us = derive(report, cm, names, structured)
    if names:
        from .variational import variational_factors
        us.qfactors = variational_factors(us, names)
    us.plan = plan
    return us


def derive(report: ConjugacyReport, cm: CheckedModel, variational=frozenset(),
           structured=None) -> UpdateSet:
    """The updates of ``report`` (``variational``: globals with q factors; ``structured``:
    child -> partner of the plan's structured pairs)."""
    from .derive_vector import gaussian_updates  # vector families' inverse mean maps
    symbols = known_symbols(cm)
    forms = [emission_form(cm, e, symbols, report.priors) for e in report.emissions if e.kind == "scalar"]
    vforms = [fm for fm in forms if any(r.param in variational for r in fm.emission.refs)]
    scalar_qs = _scalar_qs(cm, report, vforms, variational, symbols, structured)
    point_views = [_point_view(fm, scalar_qs, variational) for fm in vforms
                   if any(r.param not in variational for r in fm.emission.refs)]
    groups = _scalar_groups(cm, report, [fm for fm in forms if fm not in vforms] + point_views,
                            symbols, variational)
    simplex = _simplex_updates(cm, report)
    gaussian = gaussian_updates(cm, report)
    covered = {p for g in groups for p in g.params} | {s.param for s in simplex}
    covered |= {q.var for q in scalar_qs}
    prior_params = _prior_params(cm, report, variational, covered)
    covered |= set(prior_params)
    covered |= {p for gu in gaussian for p in gu.params}
    for name, v in report.params.items():
        inside = next(iter(priors_reading(report.priors, name, variational)), None) \
            if name not in covered else None
        if inside is not None:   # (a Dirichlet's concentration is a prior param: covered)
            raise NonConjugateError(f"not supported yet: param '{name}' in the prior of "
                                    f"latent '{inside.target}' (type-II maximum likelihood "
                                    f"of a {inside.family.name} prior's argument)",
                                    inside.span, f"declare '{name}' a latent with a conjugate "
                                    "prior, or give it as a hyper", cm.model.source)
        if name not in covered:
            raise NonConjugateError(f"not supported yet: an M-step for param '{name}' "
                                    f"({v.kind}) in this position", v.span,
                                    "params must be arguments of a scalar family, a "
                                    "Categorical or an MvNormal", cm.model.source)
    return UpdateSet(report, cm, forms, groups, simplex, gaussian, symbols,
                     variational=frozenset(variational), scalar_qs=scalar_qs,
                     prior_params=prior_params)


def _prior_params(cm, report: ConjugacyReport, variational, covered) -> dict:
    """Params that appear only in the priors of variational factors (a learned Dirichlet
    concentration): param -> the prior factors; each is set to the maximiser of its ELBO
    terms, sum E_q[log p(v | param)] (type-II maximum likelihood, numerically)."""
    out: dict = {}
    for name, v in report.params.items():
        if name in covered or name in variational:
            continue
        uses = priors_reading(report.priors, name, variational)
        fam = uses[0].family if uses else None
        if not uses or fam.numerics is None or not fam.numerics.EXPECTED_LOGPDF or any(
                pf.family is not fam for pf in uses):
            continue
        if any(not isinstance(e, ast.Name) for pf in uses for _, e in pf.args
               if any(isinstance(sub, ast.Name) and sub.id == name for sub in ast.walk_expr(e))):
            raise NonConjugateError(f"not supported yet: param '{name}' inside an expression "
                                    f"in the prior '{uses[0].text.strip()}'", uses[0].span,
                                    f"use '{name}' itself as the argument", cm.model.source)
        out[name] = uses
    return out


def _scalar_qs(cm, report: ConjugacyReport, vforms, variational, symbols,
               structured=None) -> list:
    """The q factors of the scalar latents of the statements ``vforms`` (every unknown in
    them variational), their messages, and each statement's E_q[eta], E_q[A]; latents in
    their priors' arguments are linked (``variational_links.py``)."""
    from .variational_links import finish_pair, hierarchical, pair_up
    from .variational_scalar import attach_messages, expected, scalar_q
    names = [n for n in cm.vars if n in variational and any(
        r.param == n for fm in vforms for r in fm.emission.refs)]   # (point params: M-step)
    qs = [scalar_q(cm, n, report.priors[n], symbols) for n in names]
    latent = {symbols[n] for n in variational if n in symbols}
    pair_up(cm, report.priors, qs, structured or {}, symbols)
    hierarchical(cm, report.priors, qs, latent, symbols)
    children = [q for q in qs if q.given is not None]
    attach_messages(cm, qs, vforms, only=children)   # functions of their partners
    for q in children:
        finish_pair(cm, report.priors, q)
    attach_messages(cm, qs, vforms, only=[q for q in qs if q.given is None])
    for fm in vforms:
        fm.q_eta = tuple(expected(e, qs, fm.shift) for e in fm.eta)
        fm.q_A = expected(fm.A, qs, fm.shift)
    return qs


# ----------------------------------------------------------------------------- scalar M-steps
def _point_view(fm, qs, variational):
    """Statement ``fm`` (variational latents and point params in its arguments) as the
    point params' M-step sees it: its natural parameters and log-normaliser in expectation
    under the q factors (variational EM), whose expected statistics vary over the cells as
    the latents they belong to do."""
    axes = dict(fm.ref_axes)
    for q in qs:
        if q.var in fm.ref_axes:
            for E in (*q.E, *q.EC, *((q.located,) if q.located is not None else ())):
                axes[str(E)] = fm.ref_axes[q.var]
    return dataclasses.replace(fm, eta=fm.q_eta, A=fm.q_A, ref_axes=axes,
                               q_refs=tuple(r for r in fm.emission.refs
                                            if r.param in variational))


def _scalar_groups(cm, report: ConjugacyReport, forms, symbols, variational=()) -> list:
    """Params solved together: those with the same axes that share a statement.  Groups
    are solved one after another (expectation conditional maximisation), each given the
    newest values of the others, in an order where a group follows the groups it reads
    when there is one (a tied variance after the means). ``variational``: latents with q
    factors, whose expectations the point params' statements read (not params here)."""
    ref_axes: dict = {}
    for fm in forms:
        for r in fm.emission.refs:
            if r.param in variational:
                continue
            ref_axes.setdefault(r.param, []).append((r.axes, fm))
    for p, uses in ref_axes.items():
        if len({a for a, _ in uses}) > 1:
            raise NonConjugateError(
                f"not supported yet: param '{p}' indexed differently in different "
                "statements", uses[1][1].emission.factor.span, None, cm.model.source)
    axes_of = {p: uses[0][0] for p, uses in ref_axes.items()}
    parent = {p: p for p in axes_of}

    def find(p):
        while parent[p] != p:
            p = parent[p]
        return p
    for fm in forms:
        ps = [r.param for r in fm.emission.refs if r.param not in variational]
        for a in ps:
            for b in ps:
                if axes_of[a] == axes_of[b]:
                    parent[find(b)] = find(a)
    comps: dict = {}
    order = list(cm.vars)
    for p in sorted(axes_of, key=order.index):
        comps.setdefault(find(p), []).append(p)
    groups = []
    for members in comps.values():
        gforms = [fm for fm in forms if any(r.param in members for r in fm.emission.refs)]
        groups.append(_solve_group(cm, report, tuple(members), axes_of[members[0]], gforms,
                                   symbols))
    return _ecm_order(groups)


def _ecm_order(groups: list) -> list:
    """Groups whose updates read no other group first, then those that read them."""
    done: set = set()
    out, todo = [], list(groups)
    while todo:
        ready = next((g for g in todo if set(g.others) <= done), todo[0])
        todo.remove(ready)
        out.append(ready)
        done |= set(ready.params)
    return out


def _aggregate(cm, Qf, fm: EmissionForm, members, axes, symbols, aggregates: dict):
    """Q_f summed over the cell axes that the group's params do not have.

    Every term of the expanded Q_f is split into a factor constant over those axes (it may
    hold the group's params) times a factor that varies over them (statistics, other
    params); the sum of the latter over the axes becomes a symbol B, computed numerically.
    A factor that both holds a group param and varies over the axes cannot be split."""
    group = {symbols[p] for p in members}
    summed = [a for a in fm.axes if a not in axes]

    def varies(sym) -> bool:
        name = str(sym)
        if name in fm.ref_axes:
            return any(a in summed for a in fm.ref_axes[name])
        if sym == fm.shift:
            return any(a.kind == "loop" and a.name not in fm.shift_shared for a in summed)
        return sym in fm.ess or sym == fm.count
    # a centred location (u - shift) is kept whole: expanding it would cancel digits
    atoms = {}
    for ue in Qf.atoms(sp.UnevaluatedExpr):
        atoms[ue] = sp.Dummy(f"c{len(atoms)}", real=True)
    inside = {d: ue.free_symbols for ue, d in atoms.items()}
    body = Qf.xreplace(atoms).doit()
    back = {d: ue for ue, d in atoms.items()}
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(body)):
        if not term.free_symbols & (group | set(d for d in inside if inside[d] & group)):
            continue
        a, b = sp.Integer(1), sp.Integer(1)
        for f in sp.Mul.make_args(term):
            syms = set().union(*[inside.get(x, {x}) for x in f.free_symbols])
            f = f.xreplace(back)
            if any(varies(x) for x in syms):
                if syms & group:
                    raise NonConjugateError(
                        f"not supported yet: the M-step of {', '.join(members)} needs the "
                        f"sum over components of {f}, which does not separate",
                        fm.emission.factor.span, "index the params the same way",
                        cm.model.source)
                b *= f
            else:
                a *= f.doit()
        B = next((k for k, (form, e) in aggregates.items() if form is fm and e == b), None)
        if B is None:
            B = sp.Symbol(f"B_{fm.emission.factor.target}_{len(aggregates)}", real=True)
            aggregates[B] = (fm, b)
        out += a * B
    return out


def _solve_group(cm, report, members, axes, gforms, symbols) -> ScalarGroup:
    Q = sp.Integer(0)
    aggregates: dict = {}
    for fm in gforms:
        Qf = sum(e * s for e, s in zip(fm.eta, fm.ess)) - fm.A * fm.count
        if set(axes) == set(fm.axes):
            Q += Qf.doit()
        else:
            Q += _aggregate(cm, Qf, fm, members, axes, symbols, aggregates)
    priors = {}
    for p in members:
        pf = report.priors.get(p)
        if pf is None:
            continue
        if not pf.family.scalar:   # p's emissions factorise into scalars per element
            v = cm.vars[p]
            decl = ", ".join([ast.show(e) for e in v.shape + v.elem_dims])
            raise NonConjugateError(
                f"not supported yet: a {pf.family.name} prior on '{p}', which a diagonal "
                "or spherical covariance splits into one scalar Normal per element",
                pf.span, f"give each element a scalar prior: declare `param {p}[{decl}] : "
                f"{v.kind}` and write `{p}[k, d] ~ Normal(...)` in a loop over its elements",
                cm.model.source)
        for _, e in pf.args:
            for sub in ast.walk_expr(e):   # (a param of the group itself: solved jointly,
                # as a scalar Normal-Gamma prior's mean and precision)
                if isinstance(sub, ast.Name) and cm.role(sub.id) == "param" and \
                        sub.id not in members:
                    raise NonConjugateError(
                        f"not supported yet: a prior on '{p}' that depends on '{sub.id}' "
                        "(hierarchical priors)", sub.span,
                        "scalar prior arguments may use hypers, dims and numbers; a mean "
                        "prior scaled by the precision is derived in the vector form "
                        "(`mu[k] ~ MvNormal(m0, prec=beta0 * Lambda[k])`, Normal-Wishart)",
                        cm.model.source)
        lp = pf.family.log_density(symbols[p], *family_args(cm, pf, symbols))
        priors[p] = lp
        Q += lp
    eqs = {p: simplify_within(sp.diff(Q, symbols[p])) for p in members}
    group = ScalarGroup(members, axes, gforms, Q, eqs, priors=priors, aggregates=aggregates)
    group.edge_checks = [(p, edge, c) for p, lp in priors.items()
                         for edge, c in edge_conditions(lp, symbols[p], cm.vars[p].kind)]
    closed: dict = {}
    remaining = list(members)
    progress = True
    while progress and remaining:
        progress = False
        for p in list(remaining):
            if p in group.timed_out:
                continue
            eq = eqs[p].subs({symbols[q]: v for q, v in closed.items()})
            sol = unique_solution(eq, symbols[p], cm.vars[p].kind)
            if sol is TIMED_OUT:
                group.timed_out += (p,)
                continue
            if sol is not None:
                closed = {q: v.subs(symbols[p], sol) for q, v in closed.items()}
                closed[p] = sol
                remaining.remove(p)
                progress = True
                break
    group.closed = {p: simplify_within(v) for p, v in closed.items()}
    group.numeric = tuple(remaining)
    if remaining:
        subs = {symbols[q]: v for q, v in group.closed.items()}
        prof = Q.subs(subs)
        group.profile = prof
        us = [symbols[p] for p in remaining]
        group.grad = [simplify_within(sp.diff(prof, u)) for u in us]
        group.hess = [[simplify_within(sp.diff(g, u)) for u in us] for g in group.grad]
    used = set().union(*[e.free_symbols for e in (*group.closed.values(), *group.grad,
                                                  *[h for row in group.hess for h in row])],
                       *[b.free_symbols for _, b in aggregates.values()])
    if group.profile is not None:
        used |= group.profile.free_symbols
    group.others = tuple(sorted(str(u) for u in used if cm.role(str(u)) == "param"
                                and str(u) not in members))
    return group


# ----------------------------------------------------------------------------- simplex M-steps
def _simplex_updates(cm, report: ConjugacyReport) -> list:
    out = []
    sources = [("assign", report.assign_ref)] if report.assign_ref.param else []
    sources += [(e, e.refs[0]) for e in report.emissions if e.kind == "categorical"]
    for src, ref in sources:
        v = report.params[ref.param]
        if v.kind != "simplex":  # pragma: no cover - the checker enforces it
            continue
        prior = report.priors.get(ref.param)
        alpha = None
        if prior is not None:
            user = report.assign if src == "assign" else src.factor
            conj = user.family.numerics.MESSAGES["p"][0]  # the conjugate form of p
            if prior.family.name != conj:
                raise NonConjugateError(f"not supported yet: a {prior.family.name} prior on "
                                        f"simplex '{ref.param}'", prior.span, f"use {conj}",
                                        cm.model.source)
            alpha = prior.arg["alpha"]
        if any(s.param == ref.param for s in out):
            raise NonConjugateError(f"not supported yet: simplex '{ref.param}' used by two "
                                    "statements", cm.vars[ref.param].span, None,
                                    cm.model.source)
        out.append(SimplexUpdate(ref.param, ref.axes, src, alpha, *_lagrange()))
    return out


@functools.lru_cache(maxsize=1)
def _lagrange() -> tuple[str, str]:
    """Solve max_p sum_j c_j log p_j  s.t. sum_j p_j = 1 with sympy (a Lagrange multiplier).

    The derivation does not depend on the model: it is kept in the (sealed) cache, so
    sympy's solver runs once per installation, not once per compile."""
    key = f"lagrange v2 sympy {sp.__version__}"
    path = cache_dir() / f"derivation-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    payload = read_sealed(path, key)
    if payload is not None:
        try:
            plain, tex = json.loads(payload.decode("utf-8"))
            return plain, tex
        except (ValueError, TypeError):
            pass
    plain, tex = _derive_lagrange()
    write_sealed(path, key, json.dumps([plain, tex]).encode("utf-8"))
    return plain, tex


def _derive_lagrange() -> tuple[str, str]:
    j, K = sp.symbols("j K", integer=True, positive=True)
    c, p = sp.IndexedBase("c"), sp.IndexedBase("p")
    lam = sp.Symbol("lambda", positive=True)
    stationary = sp.diff(c[j] * sp.log(p[j]) - lam * p[j], p[j])
    pj = sp.solve(stationary, p[j])[0]
    # sum_j p_j = (sum_j c_j) * (p_j / c_j), since p_j / c_j does not depend on j
    lam_sol = sp.solve(sp.Eq(sp.Sum(c[j], (j, 1, K)) * simplify_within(pj / c[j]), 1), lam)[0]
    plain = f"d/dp_j: {plain_str(stationary)} = 0  =>  p_j = {plain_str(pj)};  " \
            f"sum_j p_j = 1  =>  lambda = {plain_str(lam_sol)}"
    tex = rf"\frac{{\partial}}{{\partial p_j}}: {sp.latex(stationary)} = 0 \;\Rightarrow\; " \
          rf"p_j = {sp.latex(pj)}, \quad \sum_j p_j = 1 \;\Rightarrow\; " \
          rf"\lambda = {sp.latex(lam_sol)}"
    return plain, tex


class _PlainPrinter(StrPrinter):
    """sympy's str printer in the language's words: sums written ``sum_{j=1..K} c[j]`` (not
    ``Sum(c[j], (j, 1, K))``), ``lgamma`` and ``digamma`` / ``trigamma``."""

    def _print_loggamma(self, e):
        return f"lgamma({self._print(e.args[0])})"

    def _print_polygamma(self, e):
        n, x = e.args
        name = {0: "digamma", 1: "trigamma"}.get(n)
        return f"{name}({self._print(x)})" if name else f"polygamma({self._print(n)}, " \
            f"{self._print(x)})"

    def _print_Sum(self, e):
        limits = ", ".join(f"{self._print(v)}={self._print(a)}..{self._print(b)}"
                           for v, a, b in e.limits)
        return f"sum_{{{limits}}} {self.parenthesize(e.function, PRECEDENCE['Mul'])}"


def plain_str(e) -> str:
    """A sympy expression as plain text (the derivation's text forms, code comments)."""
    return _PlainPrinter().doprint(e)


def axes_text(axes: tuple[Axis, ...]) -> str:
    return ", ".join({"latent": "k"}.get(a.kind, a.name) for a in axes)
