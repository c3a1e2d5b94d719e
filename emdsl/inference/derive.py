"""Stage 5: derive the EM / MAP-EM updates with sympy -> :class:`UpdateSet`.

E-step (Linderman eq. 14/39): r[n, k] is proportional to p(z_n = k | P) prod_f p(x_f | theta_k).
Every scalar emission is put in exponential-family form (``families.decompose``), so
log p(x | theta_k) = eta(theta_k) . t(x) - A(theta_k) + log h(x) and the expected complete
data log likelihood of a param cell is  Q = sum_s eta_s S_s - A N (+ log prior), with
S_s = sum_n r[n, k] t_s(x_n) and N = sum_n r[n, k] (eq. 49-50).  Each param's M-step solves
dQ/dtheta = 0 with sympy; a param whose equation has no closed form (Gamma shape) is solved
numerically from the sympy gradient and Hessian (generalized EM).  Simplex params use a
Lagrange multiplier; MvNormal params the inverse mean map (eq. 51, see ``derive_vector``).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..frontend import ast
from ..frontend.check import CheckedModel
from .conjugacy import Axis, ConjugacyReport, Emission
from ..errors import NonConjugateError
from ..families.scalar import ASSUMPTIONS, NotExponentialFamily, decompose, to_sympy


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


def derive(report: ConjugacyReport, cm: CheckedModel) -> UpdateSet:
    from .derive_vector import gaussian_updates  # vector families' inverse mean maps
    symbols = _known_symbols(cm)
    forms = [_form(cm, e, symbols, report.priors) for e in report.emissions if e.kind == "scalar"]
    groups = _scalar_groups(cm, report, forms, symbols)
    simplex = _simplex_updates(cm, report)
    gaussian = gaussian_updates(cm, report)
    covered = {p for g in groups for p in g.params} | {s.param for s in simplex}
    covered |= {p for gu in gaussian for p in gu.params}
    for name, v in report.params.items():
        if name not in covered:
            raise NonConjugateError(f"not supported yet: an M-step for param '{name}' "
                                    f"({v.kind}) in this position", v.span,
                                    "params must be arguments of a scalar family, a "
                                    "Categorical or an MvNormal", cm.model.source)
    return UpdateSet(report, cm, forms, groups, simplex, gaussian, symbols)


# ----------------------------------------------------------------------------- symbols
def _known_symbols(cm: CheckedModel) -> dict:
    # no integer=True: sympy would turn loggamma(M + 1) into log(gamma(M + 1))
    syms = {d: sp.Symbol(d, positive=True) for d in cm.dims}
    for v in cm.vars.values():
        if v.role in ("hyper", "param"):
            syms[v.name] = sp.Symbol(v.name, **ASSUMPTIONS.get(v.kind, {}))
    return syms


def _arg_sympy(cm, e: ast.Expr, symbols):
    def on_index(node):
        base = node.base.id
        if cm.role(base) == "param" or (cm.role(base) == "hyper" and not all(
                isinstance(i, ast.Num) for i in node.indices)):
            return symbols[base]
        raise NonConjugateError(f"not supported yet: '{ast.show(node)}' in a scalar argument",
                                node.span, None, cm.model.source)
    return to_sympy(e, symbols, on_index)


def _form(cm, e: Emission, symbols, priors=()) -> EmissionForm:
    f = e.factor
    fam = f.family
    x = sp.Symbol(f.target, **ASSUMPTIONS.get(cm.vars[f.target].kind, {}))
    args = []
    for name, expr in f.args:
        val = _arg_sympy(cm, expr, symbols)
        kw = dict(f.keywords).get(name)
        if kw and kw in fam.alternatives:
            val = fam.alternatives[kw][1](val)
        args.append(val)
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
    shift = None
    if fam.support == "real" and ef.t and all(t.is_polynomial(x) for t in ef.t):
        # real data with polynomial statistics (x, x^2): derive in the centred variable
        # x - c (c = the data mean, in the generated code) so that neither the E-step's
        # eta . t(x) - A nor the M-step's S2/N - (S1/N)^2 cancels when the data are far
        # from 0 (the same centring as the MvNormal's)
        shift = sp.Symbol(f"shift_{f.target}", real=True)
        locations = [sym for sym in sorted(set().union(*[a.free_symbols for a in args]), key=str)
                     if sym.is_real and not sym.is_positive]
        ef = _centred(fam.log_density(x + shift, *args), x, shift, unknowns, locations)
    if not any(r.param in priors for r in e.refs):  # a prior makes the MAP identifiable
        _identifiable(cm, e, ef, [symbols[r.param] for r in e.refs])
    ess = tuple(sp.Symbol(f"S_{f.target}_{i}", real=True) for i in range(len(ef.t)))
    count = sp.Symbol(f"N_{f.target}", positive=True)
    ref_axes = {r.param: r.axes for r in (*e.refs, *e.knowns)}
    return EmissionForm(e, x, ef.t, ef.eta, ef.A, ef.logh, ess, count, grid, shift,
                        ref_axes, summed)


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
    sv = np.linalg.svd(J, compute_uv=False)
    if sv[-1] <= 1e-9 * max(sv[0], 1e-300) or J.shape[0] < len(params):
        names = ", ".join(str(u) for u in params)
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
    back = {}
    for u in candidates:
        v = sp.Dummy(f"{u}_centred", real=True)
        moved = sp.expand(sp.expand_log(logp.xreplace({u: v + shift}), force=True))
        if shift in moved.free_symbols:
            continue
        logp = moved
        back[v] = sp.UnevaluatedExpr(u - shift)
        if u in unknowns:
            unknowns = (unknowns - {u}) | {v}
    ef = decompose(logp, x, unknowns)
    return type(ef)(ef.t, tuple(e.xreplace(back) for e in ef.eta), ef.A.xreplace(back),
                    ef.logh.xreplace(back))


# ----------------------------------------------------------------------------- scalar M-steps
def _scalar_groups(cm, report: ConjugacyReport, forms, symbols) -> list:
    """Params solved together: those with the same axes that share a statement.  Groups
    are solved one after another (expectation conditional maximisation), each given the
    newest values of the others, in an order where a group follows the groups it reads
    when there is one (a tied variance after the means)."""
    ref_axes: dict = {}
    for fm in forms:
        for r in fm.emission.refs:
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
        ps = [r.param for r in fm.emission.refs]
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
            return any(a.kind == "loop" for a in summed)
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
        if not pf.family.scalar:
            raise NonConjugateError(f"not supported yet: a {pf.family.name} prior on scalar "
                                    f"param '{p}'", pf.span, None, cm.model.source)
        for _, e in pf.args:
            for sub in ast.walk_expr(e):
                if isinstance(sub, ast.Name) and cm.role(sub.id) == "param":
                    raise NonConjugateError(
                        f"not supported yet: a prior on '{p}' that depends on '{sub.id}' "
                        "(hierarchical priors)", sub.span,
                        "prior arguments may use hypers, dims and numbers", cm.model.source)
        args = [_arg_sympy(cm, e, symbols) for _, e in pf.args]
        kw = dict(pf.keywords)
        args = [pf.family.alternatives[kw[n]][1](a) if n in kw else a
                for (n, _), a in zip(pf.args, args)]
        lp = pf.family.log_density(symbols[p], *args)
        priors[p] = lp
        Q += lp
    eqs = {p: _simplify(sp.diff(Q, symbols[p])) for p in members}
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
            sol = _unique_solution(eq, symbols[p], cm.vars[p].kind)
            if sol is TIMED_OUT:
                group.timed_out += (p,)
                continue
            if sol is not None:
                closed = {q: v.subs(symbols[p], sol) for q, v in closed.items()}
                closed[p] = sol
                remaining.remove(p)
                progress = True
                break
    group.closed = {p: _simplify(v) for p, v in closed.items()}
    group.numeric = tuple(remaining)
    if remaining:
        subs = {symbols[q]: v for q, v in group.closed.items()}
        prof = Q.subs(subs)
        group.profile = prof
        us = [symbols[p] for p in remaining]
        group.grad = [_simplify(sp.diff(prof, u)) for u in us]
        group.hess = [[_simplify(sp.diff(g, u)) for u in us] for g in group.grad]
    used = set().union(*[e.free_symbols for e in (*group.closed.values(), *group.grad,
                                                  *[h for row in group.hess for h in row])],
                       *[b.free_symbols for _, b in aggregates.values()])
    if group.profile is not None:
        used |= group.profile.free_symbols
    group.others = tuple(sorted(str(u) for u in used if cm.role(str(u)) == "param"
                                and str(u) not in members))
    return group


SOLVE_SECONDS = 5.0   # a symbolic solve that takes longer falls back to Newton's method
TIMED_OUT = "timed out"


class SolveTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise SolveTimeout in the block after ``seconds`` (a timer signal; only in the main
    thread of a process on a system with SIGALRM, elsewhere without a limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise SolveTimeout()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def edge_conditions(logp, u, kind) -> list:
    """Where a prior's density may be unbounded at an edge of its support: (edge, c) for
    every edge at which log p ~ c log|u - edge| (a Gamma's shape - 1 at 0, a Beta's a - 1
    at 0 and b - 1 at 1), unless a negative power (the InvGamma's -scale / u) dominates.
    The density is unbounded there, and the MAP may not exist, when c < 0."""
    edges = {"pos": (0,), "unit": (0, 1)}.get(kind, ())
    expanded = sp.expand(sp.expand_log(logp, force=True))
    out = []
    for edge in edges:
        t = u if edge == 0 else 1 - u
        c = sp.Integer(0)
        dominated = False
        for term in sp.Add.make_args(expanded):
            factors = sp.Mul.make_args(term)
            logs = [f for f in factors if f == sp.log(t)]
            if logs:
                c += sp.Mul(*[f for f in factors if f != sp.log(t)])
            for f in factors:
                base, power = f.as_base_exp()
                if base == t and power.is_negative:
                    coeff = sp.Mul(*[g for g in factors if g is not f])
                    dominated |= bool(coeff.is_negative)
        if c != 0 and not dominated and not c.is_nonnegative:
            out.append((edge, sp.simplify(c)))
    return out


def _simplify(e):
    """sympy's simplify within a time limit (the expression as it is, past the limit)."""
    try:
        with time_limit(SOLVE_SECONDS / 2):
            return sp.simplify(e)
    except SolveTimeout:
        return e


def _unique_solution(eq, u, kind):
    """The unique admissible root of ``eq`` in ``u``, or None (no closed form).

    Polynomial equations of degree > 2 are left to the numerical M-step: sympy's cubic and
    quartic formulas are slow with symbolic coefficients and never give a usable update."""
    numer = sp.numer(sp.cancel(sp.together(eq)))
    if numer.is_polynomial(u) and sp.degree(numer, u) > 2:
        return None
    try:
        # check=False: sympy's own verification simplifies every candidate and can take
        # minutes on symbolic coefficients; the admissibility filter below is enough
        with time_limit(SOLVE_SECONDS):
            sols = sp.solve(eq, u, dict=False, check=False)
    except SolveTimeout:
        return TIMED_OUT
    except (NotImplementedError, ValueError, TypeError):
        return None
    good = []
    pole = sp.denom(sp.together(eq)).has(u)
    for s in sols if isinstance(sols, list) else [sols]:
        if isinstance(s, dict) or s.has(u) or s.has(sp.I) or s.has(sp.Piecewise):
            continue
        if s.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or (pole and s.is_zero):
            continue  # not a root: a pole of the equation (solve ran with check=False)
        if kind in ("pos", "unit") and s.is_positive is False:
            continue
        good.append(s)
    return good[0] if len(good) == 1 else None


# ----------------------------------------------------------------------------- simplex M-steps
def _simplex_updates(cm, report: ConjugacyReport) -> list:
    out = []
    sources = [("assign", report.assign_ref)]
    sources += [(e, e.refs[0]) for e in report.emissions if e.kind == "categorical"]
    for src, ref in sources:
        v = report.params[ref.param]
        if v.kind != "simplex":  # pragma: no cover - the checker enforces it
            continue
        prior = report.priors.get(ref.param)
        alpha = None
        if prior is not None:
            if prior.family.name != "Dirichlet":
                raise NonConjugateError(f"not supported yet: a {prior.family.name} prior on "
                                        f"simplex '{ref.param}'", prior.span, "use Dirichlet",
                                        cm.model.source)
            alpha = prior.arg["alpha"]
        if any(s.param == ref.param for s in out):
            raise NonConjugateError(f"not supported yet: simplex '{ref.param}' used by two "
                                    "statements", cm.vars[ref.param].span, None,
                                    cm.model.source)
        out.append(SimplexUpdate(ref.param, ref.axes, src, alpha, *_lagrange()))
    return out


def _lagrange() -> tuple[str, str]:
    """Solve max_p sum_j c_j log p_j  s.t. sum_j p_j = 1 with sympy (a Lagrange multiplier)."""
    j, K = sp.symbols("j K", integer=True, positive=True)
    c, p = sp.IndexedBase("c"), sp.IndexedBase("p")
    lam = sp.Symbol("lambda", positive=True)
    stationary = sp.diff(c[j] * sp.log(p[j]) - lam * p[j], p[j])
    pj = sp.solve(stationary, p[j])[0]
    # sum_j p_j = (sum_j c_j) * (p_j / c_j), since p_j / c_j does not depend on j
    lam_sol = sp.solve(sp.Eq(sp.Sum(c[j], (j, 1, K)) * _simplify(pj / c[j]), 1), lam)[0]
    plain = f"d/dp_j: {sp.sstr(stationary)} = 0  =>  p_j = {sp.sstr(pj)};  " \
            f"sum_j p_j = 1  =>  lambda = {sp.sstr(lam_sol)}"
    tex = rf"\frac{{\partial}}{{\partial p_j}}: {sp.latex(stationary)} = 0 \;\Rightarrow\; " \
          rf"p_j = {sp.latex(pj)}, \quad \sum_j p_j = 1 \;\Rightarrow\; " \
          rf"\lambda = {sp.latex(lam_sol)}"
    return plain, tex


def axes_text(axes: tuple[Axis, ...]) -> str:
    return ", ".join({"latent": "k"}.get(a.kind, a.name) for a in axes)
