"""CAVI when every latent is global (no discrete latent per item): Bayesian regression.

The statements of the data are scalar families whose arguments are expressions of global
latents, hypers and at most one linear predictor ``dot(w, X[n])`` of a vector latent w
(q(w) MvNormal) with a covariate row.  With u the linear predictor, a statement's log
density must be a polynomial of degree <= 2 in u, each coefficient a sum of products
g(theta) f(y) (``decompose`` in y):

    log p(y | u, theta) = sum_i sum_j g_ij(theta) f_ij(y) u^i,   i = 0, 1, 2

so the data enter only through the additive statistics S_ij = sum_n f_ij(y_n) x_n^(i)
(a number, a vector, a matrix), and under q, with m = E[w], E[w w^T] = C + m m^T:

    E_q[sum_n log p] = sum_ij E[g_ij(theta)] B_ij,   B_0j = S_0j, B_1j = m . S_1j,
                                                     B_2j = tr(E[w w^T] S_2j).

Messages: to w, (sum_j E[g_1j] S_1j, sum_j E[g_2j] S_2j) on (w, w w^T); to a scalar latent
v, the coefficients of its statistics in sum_ij g_ij(theta) B_ij (``linear_in``).  The
prior MvNormal(m0, prec = c M) of w sends (E[c] M m0, -1/2 E[c] M) to w and, when c is a
latent, (P/2 log c - c/2 E[(w - m0)^T M (w - m0)]) to c (Bishop PRML §10.3).  With
prec = diag(alpha), one latent alpha[p] per weight (automatic relevance determination),
w hears diag(E[alpha]) and each alpha[p] hears (1/2 log alpha_p - alpha_p / 2 D_p),
D_p = E[(w_p - m0_p)^2] (Bishop §7.2.1, §10.3; Drugowitsch 2013).  A scalar latent with a
plate indexed by a categorical covariate of the item, ``y[n] ~ Normal(mu[g[n]], ...)``,
has one factor per group: its statements' statistics are sums per group, and its prior
may hold global latents (``mu[j] ~ Normal(mu0, prec=lam)``: hierarchical, mean-field, the
parents hearing the children's expectations summed over the groups).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import NonConjugateError
from ..families.scalar import ASSUMPTIONS, NotExponentialFamily, decompose, tidy
from ..frontend import ast
from .forms import family_args, known_symbols, priors_reading
from .variational_links import hierarchical
from .variational_scalar import expected, linear_in, scalar_q

EACH_ITEM = "(each item)"   # the "covariate" of a latent per item, theta[j] in eight schools


@dataclass
class Term:
    """g(theta) f(y) u^power, summed over the items: statistic S = sum f(y) x^(power)."""
    power: int
    f: sp.Expr            # in the datum's symbol
    g: sp.Expr            # in the latents' symbols and hypers
    B: sp.Symbol          # E_q of the statistic's sum (B_ij)
    key: str              # its name in the statistics dict


@dataclass
class DataStatement:
    factor: object
    y: sp.Symbol
    w: str | None         # the vector latent of the linear predictor
    X: str | None         # the covariate row it is dotted with
    terms: list
    group: str | None = None      # the covariate g of grouped latents v[g[n]]: statistics per group
    groups: ast.Expr | None = None  # the number of groups
    item_data: tuple = ()  # known data of the item in its arguments (s2 in Normal(t, s2[n]))


@dataclass
class VectorQ:
    """q(w) = MvNormal(mean, cov) for w ~ MvNormal(m0, prec = c M) (or cov = c M^-1)."""
    var: str
    prior: object
    mean0: ast.Expr
    scale: str | None     # the scalar latent c, or None
    scale_known: ast.Expr | None   # a known c
    matrix: ast.Expr | None        # M (None: the identity)
    keyword: str          # 'prec' or 'cov' of the prior
    diagonal: str | None = None    # ARD: prec = diag(alpha), alpha[p] a scalar latent each


@dataclass
class GlobalCAVI:
    checked: object
    statements: list
    vector: list          # VectorQs
    scalars: list         # ScalarQs
    messages: dict = field(default_factory=dict)   # scalar var -> coefficients
    plan: object = None
    algorithm: str = "CAVI"
    # scalar params beside the latents (variational EM): name -> PointUpdate
    points: dict = field(default_factory=dict)


@dataclass
class PointUpdate:
    """A scalar param's M-step: the maximiser of Q = sum_ij E_q[g_ij] B_ij (+ log prior)."""
    name: str
    symbol: sp.Symbol
    Q: sp.Expr
    value: sp.Expr        # the stationary point, in B symbols and the q factors' E symbols
    prior: object = None  # its prior factor (MAP), or None
    log_prior: sp.Expr = sp.Integer(0)   # its log density at the param (MAP)


def describe(g: GlobalCAVI, tex=None, name=None, expr=None) -> list:
    """The derivation in plain lines: each statement's terms, each factor's update; with
    ``tex`` (a sympy expression -> LaTeX), ``name`` (an identifier -> LaTeX) and ``expr``
    (a model expression -> LaTeX), (plain, LaTeX) pairs instead."""
    def line(plain, latex):
        out.append((plain, latex) if tex else plain)
    from .derive import plain_str
    tex_, name_ = tex or sp.latex, name or str
    out = []
    line(f"algorithm {g.algorithm}: every latent global (no discrete latent per item)",
         rf"\text{{{g.algorithm} over global latents}}")
    for st_ in g.statements:
        f = st_.factor
        pred = f"u = dot({st_.w}, {st_.X}[n])" if st_.w else "no linear predictor"
        pred_tex = (rf"u_n = {name_(st_.w)}^\top {name_(st_.X)}_n" if st_.w
                    else r"\text{no linear predictor}")
        line(f"statement line {f.span.line}: {f.text.strip()}  ({pred})",
             rf"\text{{line {f.span.line}:}}\quad {pred_tex}")
        for t in st_.terms:
            u = {0: "", 1: " u", 2: " u^2"}[t.power]
            x = {0: "", 1: " x_n", 2: " x_n x_n^T"}[t.power]
            x_tex = {0: "", 1: r"\, x_n", 2: r"\, x_n x_n^\top"}[t.power]
            each = st_.group == EACH_ITEM
            group = "" if not st_.group else ", per item" if each else \
                f", per group of {st_.group}"
            f_tex = "" if t.f == 1 and t.power else tex_(t.f)   # (a factor 1 is not written)
            line(f"  term ({plain_str(t.g)}) * {plain_str(t.f)}{u}   statistic {t.key} = "
                 f"sum_n {plain_str(t.f)}{x}{group}",
                 rf"\Big({tex_(t.g)}\Big)\, {f_tex}{' ' + u.strip() if u else ''}, \quad "
                 rf"{tex_(t.B)} = \sum_n {f_tex}{x_tex}"
                 + ("" if not st_.group else r"\ \text{(per item)}" if each else
                    rf"\ \text{{(per group of }}{name_(st_.group)}\text{{)}}"))
    for vq in g.vector:
        c = vq.scale or (ast.show(vq.scale_known) if vq.scale_known is not None else "1")
        c_tex = name_(vq.scale) if vq.scale else (expr(vq.scale_known) if expr and
                                                    vq.scale_known is not None else "1")
        M = f"diag(E[{vq.diagonal}])" if vq.diagonal else "M"
        M_tex = (rf"\operatorname{{diag}}(\mathbb{{E}}[{name_(vq.diagonal)}])" if vq.diagonal
                 else "M")
        w = name_(vq.var)
        line(f"q({vq.var}) = MvNormal: J = -1/2 E[{c}] {M} + sum E[g] S (u^2 terms), "
             f"h = E[{c}] {M} m0 + sum E[g] S (u terms), cov = (-2 J)^-1, mean = cov h",
             rf"q({w}) = \mathcal N(m, \Sigma):\ J = -\tfrac12 \mathbb{{E}}[{c_tex}]\,{M_tex} "
             rf"+ \textstyle\sum \mathbb{{E}}[g]\, S_{{u^2}},\ h = \mathbb{{E}}[{c_tex}]\,{M_tex}"
             rf"\, m_0 + \textstyle\sum \mathbb{{E}}[g]\, S_{{u}},\ \Sigma = (-2J)^{{-1}},\ "
             rf"m = \Sigma h")
        if vq.diagonal:
            a = name_(vq.diagonal)
            line(f"q({vq.diagonal}[p]) hears 1/2 log {vq.diagonal}_p - {vq.diagonal}_p / 2 "
                 f"D_{vq.var}[p], D_{vq.var}[p] = {c} E[({vq.var}_p - m0_p)^2] = {c} "
                 f"(cov_pp + (mean_p - m0_p)^2), one factor per weight (ARD)",
                 rf"\log q({a}_p) \ni \tfrac12\log {a}_p - \tfrac{{{a}_p}}{{2}} D_p,\ "
                 rf"D_p = {c_tex}\,\mathbb{{E}}[({w}_p - m_{{0p}})^2] = {c_tex}\,"
                 rf"(\Sigma_{{pp}} + (m_p - m_{{0p}})^2)")
    for q in g.scalars:
        msgs = ", ".join(plain_str(c) for c in g.messages[q.var])
        prior = ", ".join(plain_str(q.prior_natural(j)) for j in range(len(q.T)))
        per = " per group" if g.checked.vars[q.var].shape else ""
        v = name_(q.var)
        line(f"q({q.var}) = {q.family}: natural parameters of ({', '.join(map(plain_str, q.T))})"
             f" = prior's ({prior}) + ({msgs}){per}",
             rf"q({v}) = \mathrm{{{q.family.replace('_', chr(92) + '_')}}}:\ \eta\big("
             rf"{', '.join(tex_(t) for t in q.T)}"
             rf"\big) = \big({', '.join(tex_(q.prior_natural(j)) for j in range(len(q.T)))}"
             rf"\big) + \big({', '.join(tex_(c) for c in g.messages[q.var])}\big)"
             + (r"\ \text{(per group)}" if per else ""))
        for child, c in q.prior_messages:
            line(f"  + sum over {child.var}'s plate of ({', '.join(map(plain_str, c))}) "
                 f"(its prior: the coefficients of T({q.var}) in log p({child.var} | "
                 f"{q.var}) in expectation)",
                 rf"+ \textstyle\sum_{{{name_(child.var)}}}\big({', '.join(map(tex_, c))}\big)"
                 rf"\quad\text{{(from }}\log p({name_(child.var)} \mid {v})\text{{)}}")
    for p, pu in g.points.items():   # variational EM: a param maximises its ELBO terms
        what = "sum_ij E_q[g_ij] B_ij" + (" + log p(" + p + ")" if pu.prior else "")
        line(f"{p} (a param): maximise Q({p}) = {what} = {plain_str(pu.Q)}; "
             f"dQ/d{p} = 0 gives {p} = {plain_str(pu.value)}",
             rf"{name_(p)} = {tex_(pu.value)}\quad\text{{(the stationary point of }}"
             rf"Q({name_(p)}) = {tex_(pu.Q)}\text{{)}}")
    return out


def derive_global(plan, view, names) -> GlobalCAVI:
    """The updates of a plan whose latents are all global (raises, located, otherwise)."""
    cm = view
    symbols = known_symbols(cm)
    names = [n for n in cm.vars if n in names]   # declaration order: deterministic code
    vector = [_vector_q(cm, n, plan) for n in names if cm.vars[n].elem_rank == 1]
    scalars_names = [n for n in names if cm.vars[n].elem_rank == 0]
    for n in names:
        if cm.vars[n].elem_rank > 1 or cm.vars[n].kind not in ("real", "pos", "unit"):
            raise _err(cm, n, f"the variational factor of latent '{n}' "
                       f"({cm.vars[n].kind}) without a discrete latent")
    diagonals = {vq.diagonal: vq for vq in vector if vq.diagonal}
    data_factors = [f for f in cm.factors if cm.vars[f.target].role == "data"]
    grouped = _grouped(cm, names, data_factors)
    for n in names:
        if cm.vars[n].shape and n not in diagonals and n not in grouped:
            raise _err(cm, n, f"latent '{n}' with a plate in a model without a discrete "
                       "latent, other than one value per group of a categorical covariate "
                       "(mu[g[n]]) or the diagonal of a vector latent's prior precision "
                       "(diag(alpha))")
    priors = {n: _prior(cm, plan, n) for n in names}
    for t in plan.treatments.values():
        if t.kind == "structured" and t.given:
            raise NonConjugateError(
                f"not supported yet: the structured factor q({t.var} | {t.partner}) in a "
                "model without a discrete latent (its prior's spread is scaled by "
                f"'{t.partner}', as in a Normal-Gamma; mixtures derive it)", priors[t.var].span,
                f"give '{t.var}' a prior with known arguments (mean-field)", cm.model.source)
    scalars = [scalar_q(cm, n, priors[n], symbols) for n in scalars_names]
    latent_syms = {symbols[n] for n in names if n in symbols}
    # priors whose arguments are latents: mean-field parents (variational_links)
    hierarchical(cm, priors, scalars, latent_syms, symbols)
    stmts = [_statement(cm, f, vector, symbols, grouped) for f in data_factors]
    # B symbols and the scalar latents' messages: sum_ij g_ij B_ij, plus w's prior
    Q = sum(t.g * t.B for st_ in stmts for t in st_.terms)
    extra = {}
    for vq in vector:
        if vq.scale:
            c = symbols[vq.scale]
            P = sp.Symbol(f"N_{vq.var}", positive=True)   # its dimension
            W2 = sp.Symbol(f"S_{vq.var}", positive=True)    # E[(w - m0)^T M (w - m0)]
            extra[vq.scale] = extra.get(vq.scale, 0) + (P / 2 * sp.log(c) - c / 2 * W2)
        if vq.diagonal:   # per element: 1/2 log alpha_p - alpha_p / 2 c E[(w_p - m0_p)^2]
            a = symbols[vq.diagonal]
            Dp = sp.Symbol(f"D_{vq.var}", positive=True)
            extra[vq.diagonal] = extra.get(vq.diagonal, 0) + (sp.log(a) / 2 - a / 2 * Dp)
    points = [v.name for v in cm.vars.values() if v.role == "param" and v.name not in names]
    out = GlobalCAVI(cm, stmts, vector, scalars, plan=plan,
                     algorithm="variational EM" if points else "CAVI")
    for p in points:
        out.points[p] = _point_update(cm, plan, p, symbols, stmts, scalars, priors)
    for q in scalars:
        if q.var in diagonals and q.symbol in Q.free_symbols:
            raise _err(cm, q.var, f"latent '{q.var}' (the diagonal of the prior precision of "
                       f"'{diagonals[q.var].var}') in a statement of the data")
        total = Q + sum(e for v, e in extra.items() if v == q.var)
        try:
            c, _ = linear_in(sp.expand(sp.expand_log(total, force=True)), q)
        except NotExponentialFamily as exc:
            culprit = next((st_ for st_ in stmts if _breaks(st_, q)), None)
            where = culprit.factor if culprit is not None else cm.vars[q.var]
            raise NonConjugateError(
                f"{'this statement is' if culprit is not None else 'the statements are'} not "
                f"conjugate to the {q.family} factor of latent '{q.var}': the term "
                f"{exc.term} is not a multiple of its statistics "
                f"({', '.join(str(T) for T in q.T)})", where.span,
                "mean-field CAVI needs each statement's log density linear in every "
                "latent's statistics given the others", cm.model.source) from None
        # expanded: a latent without a plate sums each term over the groups separately
        out.messages[q.var] = tuple(sp.expand(expected(cj, [o for o in scalars if o is not q]))
                                    for cj in c)
    return out


def _point_update(cm, plan, p, symbols, stmts, scalars, priors) -> PointUpdate:
    """The M-step of scalar param ``p`` beside the latents: its part of the ELBO,
    sum_ij E_q[g_ij] B_ij plus its log prior, made stationary in closed form."""
    from .solve import unique_solution
    v = cm.vars[p]
    if v.shape or v.elem_rank:
        raise _err(cm, p, f"param '{p}' with a plate or a vector value beside variational "
                   "latents without a discrete latent (scalar params only)")
    sym = symbols[p]
    pf = next(iter(priors_reading(priors, p)), None)
    if pf is not None:
        raise NonConjugateError(f"not supported yet: param '{p}' in the prior of latent "
                                f"'{pf.target}' without a discrete latent (type-II maximum "
                                "likelihood of a prior's argument)", pf.span,
                                f"declare '{p}' a latent with a conjugate prior",
                                cm.model.source)
    Q = sum(expected(t.g, scalars) * t.B for st_ in stmts for t in st_.terms
            if sym in t.g.free_symbols)
    t_ = plan.treatments.get(p)
    prior = cm.factors[t_.prior] if t_ is not None and t_.prior is not None else None
    log_prior = prior.family.log_density(sym, *family_args(cm, prior, symbols)) \
        if prior is not None else sp.Integer(0)
    Q += log_prior
    value = unique_solution(sp.diff(Q, sym), sym, v.kind)
    if not isinstance(value, sp.Expr):
        raise _err(cm, p, f"param '{p}': its M-step beside the variational latents has no "
                   "closed form here (dQ/d" + p + f" = {sp.sstr(sp.diff(Q, sym))})")
    return PointUpdate(p, sym, Q, tidy(value), prior, log_prior)


def _spans_plate(loop, size) -> bool:
    """Whether ``for j in 1:size`` is the loop: j runs over every element of the plate."""
    return isinstance(loop.start, ast.Num) and loop.start.value == 1 and \
        ast.show(loop.stop) == ast.show(size)


def _grouped(cm, names, factors) -> dict:
    """latent -> (covariate, number of groups) for the plated scalar latents that the data
    statements index by a categorical covariate of the item, v[g[n]] (one value per group:
    the statistics become sums per group), or by the item itself, v[n] over the whole
    plate (EACH_ITEM: every item its own group); located errors for other indexings."""
    out: dict = {}
    for f in factors:
        loop = f.loops[0].var if f.loops else None
        for _, a in f.args:
            for e in ast.walk_expr(a):
                if not (isinstance(e, ast.Index) and e.base.id in names
                        and cm.vars[e.base.id].shape):
                    continue
                v = cm.vars[e.base.id]
                idx = e.indices[0] if len(e.indices) == 1 else None
                if isinstance(idx, ast.Name) and idx.id == loop and len(v.shape) == 1 and \
                        _spans_plate(f.loops[0], v.shape[0]):   # theta[j]: one per item
                    if out.setdefault(v.name, (EACH_ITEM, v.shape[0]))[0] != EACH_ITEM:
                        raise NonConjugateError(
                            f"not supported yet: latent '{v.name}' indexed by the item and "
                            "by a covariate", f.span, None, cm.model.source)
                    continue
                cov = cm.vars.get(idx.base.id) if isinstance(idx, ast.Index) else None
                if cov is None or cov.role != "data" or cov.kind != "cat" or \
                        len(v.shape) != 1 or ast.show(cov.elem_dims[0]) != ast.show(v.shape[0]) \
                        or tuple(getattr(i, "id", None) for i in idx.indices) != (loop,):
                    raise NonConjugateError(
                        f"not supported yet: '{ast.show(e)}' in '{f.text.strip()}' (a latent "
                        "with a plate is indexed by a categorical covariate of the item, "
                        f"{v.name}[g[{loop}]] with `data g[...] : cat[{ast.show(v.shape[0])}]`, "
                        "in a model without a discrete latent)", f.span, None, cm.model.source)
                if out.setdefault(v.name, (cov.name, v.shape[0]))[0] != cov.name:
                    raise NonConjugateError(
                        f"not supported yet: latent '{v.name}' indexed by two covariates",
                        f.span, None, cm.model.source)
    return out


def _prior(cm, plan, name):
    t = plan.treatments[name]
    return cm.factors[t.prior]


def _vector_q(cm, name, plan) -> VectorQ:
    pf = _prior(cm, plan, name)
    if pf.family.name != "MvNormal":
        raise NonConjugateError(f"not supported yet: a {pf.family.name} prior on vector "
                                f"latent '{name}'", pf.span, "use an MvNormal prior",
                                cm.model.source)
    kw = dict(pf.keywords).get("cov", "cov")
    spread = pf.arg["cov"]
    scale = scale_known = matrix = None
    parts = [spread]
    if isinstance(spread, ast.BinOp) and spread.op == "*":
        parts = [spread.left, spread.right]
    diagonal = None
    size = ast.show(cm.vars[name].elem_dims[0])
    for p in parts:
        if isinstance(p, ast.Name) and cm.vars.get(p.id) is not None \
                and cm.vars[p.id].role == "param" and cm.vars[p.id].elem_rank == 0 \
                and not cm.vars[p.id].shape:
            scale = p.id
        elif isinstance(p, ast.Call) and p.func == "diag" and len(p.args) == 1 and \
                isinstance(p.args[0], ast.Name) and cm.vars.get(p.args[0].id) is not None \
                and cm.vars[p.args[0].id].role == "param" and diagonal is None:
            v = cm.vars[p.args[0].id]
            if v.elem_rank or tuple(ast.show(d) for d in v.shape) != (size,):
                raise NonConjugateError(f"not supported yet: diag({v.name}) in the prior of "
                                        f"'{name}' with '{v.name}' not one scalar per element "
                                        f"of '{name}'", pf.span, f"declare `latent "
                                        f"{v.name}[{size}] : pos` with a prior per element",
                                        cm.model.source)
            diagonal = v.name
        elif isinstance(p, ast.Call) and p.func == "eye":
            continue
        elif _known_expr(cm, p):
            if matrix is None and cm.vars.get(getattr(p, "id", ""), None) is not None \
                    and cm.vars[p.id].elem_rank == 2:
                matrix = p
            else:
                scale_known = p if scale_known is None else ast.BinOp("*", scale_known, p,
                                                                     p.span)
        else:
            raise NonConjugateError(f"not supported yet: the {kw} of the prior of '{name}' "
                                    f"('{ast.show(spread)}')", pf.span, "write it as c * "
                                    "eye(P), c a latent or a known number, a known matrix, "
                                    "or diag(alpha) with a latent alpha[p] per weight",
                                    cm.model.source)
    if not _known_expr(cm, pf.arg["mean"]):
        raise NonConjugateError(f"not supported yet: a prior mean of '{name}' that is not "
                                "known", pf.span, None, cm.model.source)
    if diagonal and (scale or matrix is not None):
        raise NonConjugateError(f"not supported yet: diag({diagonal}) times another latent "
                                f"or matrix in the prior of '{name}'", pf.span,
                                f"write prec=diag({diagonal}), or a known number times it",
                                cm.model.source)
    if kw != "prec":
        raise NonConjugateError(f"not supported yet: a covariance-scaled prior on '{name}' "
                                "without a discrete latent", pf.span, "write it with "
                                "`prec=` (c * eye(P))", cm.model.source)
    return VectorQ(name, pf, pf.arg["mean"], scale, scale_known, matrix, kw, diagonal)


def _known_expr(cm, e) -> bool:
    return all(not (isinstance(s, ast.Name) and cm.role(s.id) in ("param", "latent", "data"))
               for s in ast.walk_expr(e))


def _statement(cm, f, vector, symbols, grouped=None) -> DataStatement:
    """The terms of a data statement: its log density as sum g(theta) f(y) u^i (with
    latents per group, ``grouped``, sums per group of the statement's covariate)."""
    fam = f.family
    if len(f.loops) != 1 or tuple(getattr(i, "id", None) for i in f.index) != (f.loops[0].var,):
        raise NonConjugateError("not supported yet: a data statement outside one plate of "
                                "items (inner plates) in a model without a discrete latent",
                                f.span, f"write `{f.target}[n] ~ ...` inside one `for n`",
                                cm.model.source)
    if not fam.scalar:
        raise NonConjugateError(f"not supported yet: {fam.name} data without a discrete "
                                "latent", f.span, None, cm.model.source)
    y = sp.Symbol(f.target, real=True)
    u = sp.Symbol("u_lin", real=True)
    found = []
    item_data = {}   # known data of the item in the arguments (s2[n]): name -> symbol
    loop = f.loops[0].var

    def swap(e):   # dot(w, X[n]) -> u; a known datum of the item, s2[n] -> a symbol
        if isinstance(e, ast.Index) and cm.role(e.base.id) == "data" and \
                e.base.id != f.target and cm.vars[e.base.id].elem_rank == 0 and \
                tuple(getattr(i, "id", None) for i in e.indices) == (loop,):
            v = cm.vars[e.base.id]
            item_data[v.name] = env[v.name] = sp.Symbol(v.name, **ASSUMPTIONS.get(v.kind, {}))
            return ast.Name(v.name, e.span)
        if isinstance(e, ast.Call) and e.func == "dot" and len(e.args) == 2:
            a, b = e.args
            for v, x in ((a, b), (b, a)):
                if isinstance(v, ast.Name) and any(q.var == v.id for q in vector) and \
                        isinstance(x, ast.Index) and cm.role(x.base.id) == "data" and \
                        tuple(getattr(i, "id", None) for i in x.indices) == (f.loops[0].var,):
                    found.append((v.id, x.base.id))
                    return ast.Name("u_lin", e.span)
        if isinstance(e, ast.BinOp):
            return ast.BinOp(e.op, swap(e.left), swap(e.right), e.span)
        if isinstance(e, ast.Neg):
            return ast.Neg(swap(e.operand), e.span)
        return e
    env = {**symbols, "u_lin": u}   # (swap adds the item's data)
    args = family_args(cm, f, env, swap)
    if len(found) > 1:
        raise NonConjugateError("not supported yet: two linear predictors in one statement",
                                f.span, None, cm.model.source)
    logp = sp.expand(sp.expand_log(fam.log_density(y, *args), force=True))
    by_power = sp.collect(logp, u, evaluate=False)
    terms = []
    for power, coeff in by_power.items():
        i = 0 if power == 1 else 1 if power == u else 2 if power == u ** 2 else None
        if i is None or u in coeff.free_symbols:
            raise NonConjugateError(f"not supported yet: '{f.text.strip()}' is not "
                                    "quadratic in its linear predictor (a Gaussian q cannot "
                                    "absorb it)", f.span, None, cm.model.source)
        kappa = sp.Dummy("kappa")
        unknowns = (coeff.free_symbols - {y}) | {kappa}
        unknowns -= set(item_data.values())
        ef = decompose(kappa * coeff, y, unknowns, along=frozenset(item_data.values()))
        pairs = list(zip(ef.t, ef.eta)) + [(sp.Integer(1), -ef.A)]
        for fy, g in pairs:
            g = tidy(g / kappa)
            if g == 0:
                continue
            j = len(terms)
            terms.append(Term(i, fy, g, sp.Symbol(f"B_{f.target}_{j}", real=True),
                              f"S_{f.target}_{j}"))
    w, X = found[0] if found else (None, None)
    covs = {grouped[r.base.id] for _, a in f.args for r in ast.walk_expr(a)
            if isinstance(r, ast.Index) and r.base.id in (grouped or {})}
    if len(covs) > 1 or (covs and w):
        raise NonConjugateError("not supported yet: " + ("latents grouped by two covariates"
                                if len(covs) > 1 else "a linear predictor beside latents per "
                                "group or per item") + f" in '{f.text.strip()}'", f.span, None,
                                cm.model.source)
    group, groups = next(iter(covs)) if covs else (None, None)
    return DataStatement(f, y, w, X, terms, group, groups, tuple(item_data))


def _breaks(stmt, q) -> bool:
    """Whether data statement ``stmt`` alone is not linear in q's statistics."""
    part = sum(t.g * t.B for t in stmt.terms)
    try:
        linear_in(sp.expand(sp.expand_log(part, force=True)), q)
    except NotExponentialFamily:
        return True
    return False


def _err(cm, var, what) -> NonConjugateError:
    return NonConjugateError(f"not supported yet: {what}", cm.vars[var].span, None,
                             cm.model.source)
