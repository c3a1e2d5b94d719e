"""``emdsl derive``: the derivation of the updates as a document (Markdown, LaTeX, HTML or
text).

It follows the order a teacher would write on the board: the model, the complete-data
log likelihood in exponential-family form, the E-step, each param's M-step from the
expected complete-data log likelihood, and the objective (written in full for MAP). Every
formula has a plain and a LaTeX form (sympy expressions by sympy's printers; model names
by :func:`~emdsl.render.tex_name`), and each step names the generated function and line
that implements it. Variational sections: ``explain_variational.py``; formats:
``render.py``.
"""
from __future__ import annotations

from .errors import EmmError
from .frontend import ast
from .inference.derive import UpdateSet, axes_text, plain_str
from .render import ALIASES, FORMATS, Document, tex, tex_name, tex_word

__all__ = ["FORMATS", "explain", "ast_tex"]

_TEX_OPS = {"+": "+", "-": "-", "*": r"\,", "/": "/"}


def ast_tex(e: ast.Expr) -> str:
    """A model expression in LaTeX, read off its syntax tree (nothing is evaluated)."""
    if isinstance(e, ast.Num):
        return ast.show(e)
    if isinstance(e, ast.Name):
        return tex_name(e.id)
    if isinstance(e, ast.Index):
        return f"{tex_name(e.base.id) if isinstance(e.base, ast.Name) else ast_tex(e.base)}" \
               f"_{{{', '.join(ast_tex(i) for i in e.indices)}}}"
    if isinstance(e, ast.BinOp):
        if e.op == "^":
            return f"{{({ast_tex(e.left)})}}^{{{ast_tex(e.right)}}}"
        if e.op == "/":
            return rf"\frac{{{ast_tex(e.left)}}}{{{ast_tex(e.right)}}}"
        return f"({ast_tex(e.left)} {_TEX_OPS.get(e.op, e.op)} {ast_tex(e.right)})"
    if isinstance(e, ast.Neg):
        return f"-{ast_tex(e.operand)}"
    if isinstance(e, ast.Call):
        parts = [ast_tex(a) for a in e.args] + [rf"{tex_word(k.name)} = {ast_tex(k.value)}"
                                                for k in e.kwargs]
        return rf"\operatorname{{{e.func}}}({', '.join(parts)})"
    raise TypeError(e)


def stmt(f) -> str:
    """A statement's source line as shown in a document's `code` span: without its comment,
    and no backtick (which would end the span)."""
    return f.text.split("#", 1)[0].strip().replace("`", "'")


def factor_tex(f) -> tuple[str, str]:
    """A statement ``target[i] ~ Family(args)`` as (plain, LaTeX) ``log Family(target | args)``,
    inside the sums of its plates."""
    kw = dict(f.keywords)
    target = f"{f.target}[{', '.join(ast.show(i) for i in f.index)}]" if f.index else f.target
    target_tex = (f"{tex_name(f.target)}_{{{', '.join(ast_tex(i) for i in f.index)}}}"
                  if f.index else tex_name(f.target))
    args = ", ".join((f"{kw[n]}=" if n in kw else "") + ast.show(e) for n, e in f.args)
    args_tex = ", ".join((rf"{tex_word(kw[n])} = " if n in kw else "") + ast_tex(e)
                         for n, e in f.args)
    sums = "".join(f"sum_{{{lp.var}={ast.show(lp.start)}..{ast.show(lp.stop)}}} "
                   for lp in f.loops)
    sums_tex = "".join(rf"\sum_{{{tex_name(lp.var)}={ast_tex(lp.start)}}}^{{{ast_tex(lp.stop)}}} "
                       for lp in f.loops)
    return (f"{sums}log {f.family.name}({target} | {args})",
            rf"{sums_tex}\log {tex_word(f.family.name)}\big({target_tex} \mid {args_tex}\big)")


def density_forms(family) -> tuple[str, str]:
    """(plain, LaTeX) of a family's log density in its own parameter names: a scalar family's
    from its sympy log density, a vector family's from its table entry (``DENSITY``)."""
    if family.scalar:
        x = ", ".join(s.name for s in family.symbols)
        return (f"log {family.name}({family.var} | {x}) = {plain_str(family.logpdf)}",
                rf"\log {tex_word(family.name)}({tex(family.var)} \mid "
                rf"{', '.join(tex(s) for s in family.symbols)}) = {tex(family.logpdf)}")
    plain, latex = family.numerics.DENSITY
    names = ", ".join(family.param_names)
    return (f"log {family.name}(x | {names}) = {plain}",
            rf"\log {tex_word(family.name)}(x \mid "
            rf"{', '.join(tex_name(n) for n in family.param_names)})"
            rf" = {latex}")


def explain(us, format: str = "markdown", code: str | None = None, model_file: str = "") -> str:
    """The derivation of ``us`` (an UpdateSet, or the global CAVI of a model without a
    discrete latent) in ``format``; ``code`` (the generated module's source) links each step
    to the function and line that implement it."""
    fmt = ALIASES.get(format, format)
    if fmt not in FORMATS:
        raise EmmError(f"unknown derivation format '{format}'",
                       hint="use markdown (md), latex (tex), html or text")
    if not isinstance(us, UpdateSet):   # every latent global: CAVI from statistics
        from .explain_variational import global_cavi
        cm = us.checked
        doc = Document(f"Derivation: {cm.name} ({us.algorithm})", code, model_file)
        _model(doc, cm, us.plan)
        global_cavi(doc, us)
        return doc.render(fmt)
    r, cm = us.report, us.checked
    z, n, K = r.latent.name, r.plate.var, ast.show(r.latent.elem_dims[0])
    Z, Nn = tex_name(z), tex_name(n)
    doc = Document(f"Derivation: {cm.name} ({r.algorithm})", code, model_file)
    _model(doc, cm, us.plan)
    point = {p: f for p, f in r.priors.items() if p not in us.variational}
    if us.variational:
        globals_ = ", ".join(f"`{v}`" for v in sorted(us.variational))
        doc.para(f"The global latents {globals_} each get a variational factor q in their "
                 f"prior's family, and `{z}[{n}]` gets q({z}[{n}]) = Categorical(r[{n}]). "
                 "Coordinate ascent (CAVI) sets each factor to exp(E_q[log p]) over the others, "
                 "normalised, in turn (Blei, Kucukelbir & McAuliffe 2017; Bishop, PRML §10.2): "
                 f"q({z}) from the globals' expectations, then every global from the expected "
                 "statistics" + (", and the params by maximising the ELBO (variational EM)."
                                 if len(us.variational) < len(r.params) else "."))
    else:
        what = "maximum likelihood" if not point else f"MAP (priors on {', '.join(point)})"
        doc.para(f"Params are point estimates by {what}. Given the params, each `{z}[{n}]` "
                 f"takes one of the values 1..{K}, so its posterior is a finite discrete "
                 "distribution: the E-step is exact and the algorithm is EM (Linderman; "
                 "Hennig, lecture 21).")
    doc.heading("2. Complete-data log likelihood")
    doc.math(f"log p(x, {z} | theta) = sum_{n} sum_k 1[{z}[{n}] = k] (log p({z}[{n}] = k) "
             "+ sum_f log p(x_f | theta_k))   (Linderman eq. 6)",
             rf"\log p(x, {Z} \mid \theta) = \sum_{{{Nn}}} \sum_k \mathbf{{1}}[{Z}_{{{Nn}}} = k]"
             rf"\Big(\log p({Z}_{{{Nn}}} = k) + \sum_f \log p(x_f \mid \theta_k)\Big)")
    for fm in us.forms:
        f = fm.emission.factor
        doc.para(f"Emission `{stmt(f)}` (line {f.span.line}) in exponential-family form "
                 "log p = eta . t(x) - A + log h (found by sympy from the log density):")
        for t, e in zip(fm.t, fm.eta):
            doc.math(f"t(x) = {plain_str(t)},   eta = {plain_str(e)}",
                     rf"t(x) = {tex(t)}, \quad \eta = {tex(e)}")
        doc.math(f"A = {plain_str(fm.A)},   log h(x) = {plain_str(fm.logh)}",
                 rf"A = {tex(fm.A)}, \quad \log h(x) = {tex(fm.logh)}")
    for gu in us.gaussian:
        f = gu.emission.factor
        doc.para(f"Emission `{stmt(f)}` (line {f.span.line}): a multivariate normal, with")
        doc.math("t(x) = [x, x x^T],  eta = [Sigma^-1 mu, -1/2 Sigma^-1],  "
                 "A = 1/2 mu^T Sigma^-1 mu + 1/2 log|Sigma| + D/2 log(2 pi)   (eq. 12)",
                 r"t(x) = [x, x x^\top],\ \eta = [\Sigma^{-1}\mu, -\tfrac12\Sigma^{-1}],\ "
                 r"A = \tfrac12 \mu^\top\Sigma^{-1}\mu + \tfrac12\log|\Sigma| + \tfrac D2\log 2\pi")
    if us.variational:
        from .explain_variational import variational
        variational(doc, us, z, n)
        return doc.render(fmt)
    doc.heading("3. E-step")
    doc.math(f"r[{n}, k] = q({z}[{n}] = k) = p({z}[{n}] = k) prod_f p(x_f | theta_k) / "
             f"sum_j p({z}[{n}] = j) prod_f p(x_f | theta_j)   (eq. 14, 39)",
             rf"r_{{{Nn} k}} = q({Z}_{{{Nn}}} = k) = \frac{{p({Z}_{{{Nn}}} = k) \prod_f "
             rf"p(x_f \mid \theta_k)}}{{\sum_j p({Z}_{{{Nn}}} = j) \prod_f p(x_f \mid \theta_j)}}")
    doc.para("It is computed in log space with a log-sum-exp; the log densities of all "
             "components are one product of the statistics t(x) with the natural parameters.")
    doc.implemented("the E-step", function="e_step")
    expected_statistics(doc, n)
    doc.heading("4. M-step")
    simplex_updates(doc, us)
    scalar_updates(doc, us)
    gaussian_updates(doc, us)
    doc.heading("5. Objective")
    doc.para("After the E-step the bound is tight (eq. 41-45), so the ELBO is the log "
             f"likelihood{' plus the log prior' if r.priors else ''}, with every normalising "
             "constant, in nats; EM never decreases it" + (":" if not r.priors else "."))
    loglik = (f"sum_{n} logsumexp_k (log p({z}[{n}] = k) + sum_f log p(x_f | theta_k))",
              rf"\sum_{{{Nn}}} \log \sum_k p({Z}_{{{Nn}}} = k) \prod_f p(x_f \mid \theta_k)")
    if not r.priors:
        doc.math(f"L = log p(x | theta) = {loglik[0]}",
                 rf"\mathcal{{L}} = \log p(x \mid \theta) = {loglik[1]}")
    else:
        terms = [factor_tex(f) for f in r.priors.values()]
        doc.para("In full, the MAP objective is the log likelihood plus the log density of "
                 "each prior, summed over its plates (Rai, CS698X: MAP-EM maximises it; the "
                 "E-step is unchanged and each M-step adds its prior's terms):")
        doc.math(f"L = log p(x | theta) + log p(theta) = {loglik[0]} + "
                 + " + ".join(t[0] for t in terms),
                 rf"\mathcal{{L}} = \log p(x \mid \theta) + \log p(\theta) = {loglik[1]} + "
                 + " + ".join(t[1] for t in terms))
        doc.para("with the log densities")
        families: dict = {}   # each family once, in the priors' order
        for f in r.priors.values():
            families.setdefault(f.family.name, f.family)
        for family in families.values():
            doc.math(*density_forms(family))
        doc.implemented("the log prior", function="log_prior")
    doc.implemented("the objective", function="elbo")
    return doc.render(fmt)


def _model(doc: Document, cm, plan) -> None:
    doc.heading("1. The model")
    doc.items([f"line {f.span.line}: `{stmt(f)}`" for f in cm.factors])
    if plan is not None:
        doc.para(f"The plan (chosen from the roles and the factor graph; the algorithm is "
                 f"{plan.algorithm}):")
        doc.items(plan.words())


def expected_statistics(doc: Document, n: str) -> None:
    Nn = tex_name(n)
    doc.para("Expected sufficient statistics, sums over the items (eq. 50; additive over "
             "chunks):")
    doc.math(f"S_k = sum_{n} r[{n}, k] t(x_{n}),   N_k = sum_{n} r[{n}, k]",
             rf"S_k = \sum_{{{Nn}}} r_{{{Nn} k}}\, t(x_{{{Nn}}}), \quad "
             rf"N_k = \sum_{{{Nn}}} r_{{{Nn} k}}")
    doc.implemented("the statistics", function="block_stats")


def simplex_updates(doc: Document, us: UpdateSet) -> None:
    for su in us.simplex:
        if su.param in us.variational:
            continue
        grid = axes_text(su.axes)
        prior = " plus alpha - 1 pseudo-counts from the Dirichlet prior" \
            if su.prior_alpha is not None else ""
        doc.para(f"`{su.param}`{f' (one simplex per {grid})' if grid else ''}: maximise "
                 f"sum_j c_j log p_j, with c the expected counts{prior}, subject to "
                 "sum_j p_j = 1, with a Lagrange multiplier lambda (solved by sympy):")
        doc.math(su.lagrange, su.lagrange_tex)
        doc.math(f"{su.param}_j = c_j / sum_i c_i",
                 rf"{tex_name(su.param)}_j = \frac{{c_j}}{{\sum_i c_i}}")
        doc.implemented(f"the update of `{su.param}`", assignment=su.param)


def scalar_updates(doc: Document, us: UpdateSet) -> None:
    for g in us.groups:
        grid = axes_text(g.axes)
        names = ", ".join(f"`{p}`" for p in g.params)
        doc.para(f"{names}{f' (one value per {grid})' if grid else ''}: the expected "
                 "complete-data log likelihood" + (" plus log prior" if g.priors else "") +
                 " of one cell, in the statistics S and N, is")
        doc.math(f"Q = {plain_str(g.Q)}", f"Q = {tex(g.Q)}")
        if g.aggregates:
            doc.para(f"{names} do not vary over every cell of their statements, so Q sums "
                     "over the cells they share; each B is such a sum, over the cells "
                     "(with the newest values of the other params):")
            for B, (fm, b) in g.aggregates.items():
                doc.math(f"{B} = sum over cells of {plain_str(b)}",
                         rf"{tex(B)} = \sum_{{\text{{cells}}}} {tex(b)}")
        doc.para("Setting each derivative to zero (sympy):")
        for p, e in g.equations.items():
            doc.math(f"dQ/d{p} = {plain_str(e)} = 0",
                     rf"\frac{{\partial Q}}{{\partial {tex_name(p)}}} = {tex(e)} = 0")
        for p, e in g.closed.items():
            doc.math(f"{p} = {plain_str(e)}", f"{tex_name(p)} = {tex(e)}")
        if g.timed_out:
            doc.para(f"sympy's solve of the equation of {', '.join(g.timed_out)} did not finish "
                     "within 5 seconds, so compilation moved on without a closed form:")
        if g.numeric:
            doc.para(f"No closed form for {', '.join(g.numeric)}: sympy cannot solve its "
                     "equation, so the M-step maximises the profiled Q numerically (Newton's "
                     "method with the sympy gradient and Hessian, halving a step that would "
                     "lower Q): generalized EM (Hennig, lecture 21). The profiled gradient is")
            for p, gr in zip(g.numeric, g.grad):
                doc.math(f"dQ/d{p} = {plain_str(gr)}",
                         rf"\frac{{\partial Q}}{{\partial {tex_name(p)}}} = {tex(gr)}")
        for p in g.params:
            doc.implemented(f"the update of `{p}`", assignment=p)


def gaussian_updates(doc: Document, us: UpdateSet) -> None:
    """MvNormal params: messages of the cells plus the conjugate prior, then the mode."""
    for gu in us.gaussian:
        if gu.mean.param in us.variational:
            continue
        f = gu.emission.factor
        m, sp_ = gu.mean.param, gu.spread.param
        shared = lambda slot: "" if slot.axes == gu.grid else " (shared by the cells: " \
            "its messages are summed over them)"  # noqa: E731
        if m:
            prior = (f" plus its conjugate MvNormal prior (line {gu.mean_prior.span.line})"
                     if gu.mean_prior is not None else "")
            doc.para(f"`{m}` (the mean of `{stmt(f)}`){shared(gu.mean)}: the messages of its "
                     f"cells{prior} form a Gaussian in `{m}`, whose mode is the update:")
            doc.math("h = sum_c Lambda_c Sx_c (+ Lambda_0 m_0),   J = -1/2 sum_c N_c Lambda_c "
                     "(- 1/2 Lambda_0),   mean = (-2 J)^-1 h   (eq. 50-51)",
                     r"h = \sum_c \Lambda_c S^{x}_c \,(+\Lambda_0 m_0), \quad "
                     r"J = -\tfrac12 \sum_c N_c \Lambda_c \,(-\tfrac12\Lambda_0), \quad "
                     rf"{tex_name(m)} = (-2J)^{{-1}} h")
            doc.para("Without a prior, and when the cells share the precision, it is "
                     "Sx / N: the inverse mean map.")
            if gu.mean.scale is not None or gu.mean.offset is not None or gu.mean.sign < 0:
                doc.para(f"That mode is the mean argument `{ast.show(f.arg['mean'])}` as a "
                         f"whole; it is a bijective map of `{m}` (a known scale and shift), "
                         f"so `{m}` is the mode mapped back.")
            doc.implemented(f"the update of `{m}`", assignment=m)
        if sp_:
            conj = f.family.numerics.MESSAGES[gu.keyword][0]
            prior = (f" plus its conjugate {gu.spread_prior.family.name} prior (line "
                     f"{gu.spread_prior.span.line})" if gu.spread_prior is not None else "")
            doc.para(f"`{sp_}` (the {gu.keyword} of `{stmt(f)}`){shared(gu.spread)}: given the new "
                     f"mean, the scatter of each cell is a message in {conj} form{prior}; "
                     "the update is the mode of that form:")
            S = tex_name(sp_)
            if gu.keyword == "cov":
                doc.math("Sigma = (sum_c S_c + Psi) / (sum_c N_c + nu + D + 1)  (+ reg I),   "
                         "S_c = sum_n r (x - mu)(x - mu)^T",
                         rf"{S} = \frac{{\sum_c S_c + \Psi}}{{\sum_c N_c + \nu + D + 1}} "
                         r"\;(+\,\mathrm{reg}\,I), \quad S_c = \sum_n r_{nc} (x_n - \mu_c)"
                         r"(x_n - \mu_c)^\top")
            else:
                doc.math("Lambda = (sum_c N_c + nu - D - 1) (sum_c S_c + W^-1)^-1",
                         rf"{S} = \Big(\sum_c N_c + \nu - D - 1\Big)"
                         r"\Big(\sum_c S_c + W^{-1}\Big)^{-1}")
            doc.para("(Without a prior drop Psi, W^-1 and nu: the ML covariance sum S / sum N.)")
            doc.implemented(f"the update of `{sp_}`", assignment=sp_)
