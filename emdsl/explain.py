"""``emdsl derive``: the derivation of the updates as a document (Markdown, LaTeX or text).

It follows the order a teacher would write on the board: the model, the complete-data
log likelihood in exponential-family form, the E-step, each param's M-step from the
expected complete-data log likelihood, and the objective.  Every formula is given in a
plain form and a LaTeX form; sympy expressions are printed by sympy.
"""
from __future__ import annotations

import re

import sympy as sp

from .frontend import ast
from .inference.derive import UpdateSet, axes_text
from .errors import EmmError

FORMATS = ("markdown", "latex", "text")


class _Doc:
    """Collects a document in one of FORMATS."""

    def __init__(self, fmt: str):
        self.fmt, self.lines = fmt, []

    def title(self, text):
        self.lines.append({"markdown": f"# {text}", "latex": f"\\section*{{{self._tex(text)}}}",
                           "text": f"{text}\n{'=' * len(text)}"}[self.fmt])

    def heading(self, text):
        self.lines.append({"markdown": f"\n## {text}\n",
                           "latex": f"\n\\subsection*{{{self._tex(text)}}}\n",
                           "text": f"\n{text}\n{'-' * len(text)}\n"}[self.fmt])

    def para(self, text):
        self.lines.append(("\n" + self._tex(text)) if self.fmt == "latex" else "\n" + text)

    def items(self, texts):
        if self.fmt == "latex":
            self.lines += ["\\begin{itemize}"] + [f"  \\item {self._tex(t)}" for t in texts] \
                + ["\\end{itemize}"]
        else:
            self.lines += [f"- {t}" for t in texts]

    def math(self, plain: str, latex: str | None = None):
        if self.fmt == "latex":
            self.lines.append(f"\\[ {latex if latex is not None else plain} \\]")
            return
        if self.lines and not self.lines[-1].startswith("    "):
            self.lines.append("")  # Markdown: an indented block needs a blank line before it
        self.lines.append(f"    {plain}")

    def expr(self, e) -> str:
        return sp.latex(e) if self.fmt == "latex" else sp.sstr(e)

    def _tex(self, text: str) -> str:
        """Plain text with `code` spans -> LaTeX text with \\texttt."""
        parts = re.split(r"`([^`]*)`", text)
        out = []
        for i, part in enumerate(parts):
            esc = part.replace("\\", "\\textbackslash{}")
            for ch in "&%$#_{}":
                esc = esc.replace(ch, "\\" + ch)
            esc = esc.replace("~", "\\textasciitilde{}").replace("^", "\\textasciicircum{}")
            out.append(f"\\texttt{{{esc}}}" if i % 2 else esc)
        return "".join(out)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def explain(us: UpdateSet, format: str = "markdown") -> str:
    fmt = {"md": "markdown", "tex": "latex"}.get(format, format)
    if fmt not in FORMATS:
        raise EmmError(f"unknown derivation format '{format}'",
                       hint="use markdown (md), latex (tex) or text")
    doc = _Doc(fmt)
    if not isinstance(us, UpdateSet):   # every latent global: CAVI from statistics
        from .inference.global_cavi import describe
        cm = us.checked
        doc.title(f"Derivation: {cm.name} ({us.algorithm})")
        doc.heading("1. The model")
        doc.items([f"line {f.span.line}: `{f.text}`" for f in cm.factors])
        if us.plan is not None:
            doc.items(us.plan.words())
        doc.heading("2. CAVI over global latents (Bishop, PRML §10.3)")
        doc.para("Each statement's log density is a polynomial of degree at most 2 in its "
                 "linear predictor u, each coefficient a product g(latents) f(datum): the "
                 "data enter through the sums of f(y), f(y) x and f(y) x x^T, and each "
                 "factor's update is its prior plus the coefficients of its statistics "
                 "with the others' expectations; the ELBO is E_q[log p] of every factor "
                 "plus the entropy of q(w) minus the KL of the scalar factors:")
        for line in describe(us):
            doc.math(line)
        return doc.text()
    r, cm = us.report, us.checked
    z, n, K = r.latent.name, r.plate.var, ast.show(r.latent.elem_dims[0])
    doc.title(f"Derivation: {cm.name} ({r.algorithm})")
    doc.heading("1. The model")
    doc.items([f"line {f.span.line}: `{f.text}`" for f in cm.factors])
    if us.plan is not None:
        doc.para(f"The plan (chosen from the roles and the factor graph; the algorithm is "
                 f"{us.plan.algorithm}):")
        doc.items(us.plan.words())
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
                 "distribution: the E-step is exact and the algorithm is EM.")
    doc.heading("2. Complete-data log likelihood")
    doc.math(f"log p(x, {z} | theta) = sum_{n} sum_k 1[{z}[{n}] = k] (log p({z}[{n}] = k) "
             "+ sum_f log p(x_f | theta_k))   (Linderman eq. 6)",
             rf"\log p(x, {z} \mid \theta) = \sum_{n} \sum_k \mathbb{{1}}[{z}_{n} = k]"
             rf"\Big(\log p({z}_{n} = k) + \sum_f \log p(x_f \mid \theta_k)\Big)")
    for fm in us.forms:
        f = fm.emission.factor
        doc.para(f"Emission `{f.text}` (line {f.span.line}) in exponential-family form "
                 "log p = eta . t(x) - A + log h (found by sympy from the log density):")
        for t, e in zip(fm.t, fm.eta):
            doc.math(f"t(x) = {doc.expr(t)},   eta = {doc.expr(e)}",
                     rf"t(x) = {doc.expr(t)}, \quad \eta = {doc.expr(e)}")
        doc.math(f"A = {doc.expr(fm.A)},   log h(x) = {doc.expr(fm.logh)}",
                 rf"A = {doc.expr(fm.A)}, \quad \log h(x) = {doc.expr(fm.logh)}")
    for gu in us.gaussian:
        f = gu.emission.factor
        doc.para(f"Emission `{f.text}` (line {f.span.line}): a multivariate normal, with")
        doc.math("t(x) = [x, x x^T],  eta = [Sigma^-1 mu, -1/2 Sigma^-1],  "
                 "A = 1/2 mu^T Sigma^-1 mu + 1/2 log|Sigma| + D/2 log(2 pi)   (eq. 12)",
                 r"t(x) = [x, x x^\top],\ \eta = [\Sigma^{-1}\mu, -\tfrac12\Sigma^{-1}],\ "
                 r"A = \tfrac12 \mu^\top\Sigma^{-1}\mu + \tfrac12\log|\Sigma| + \tfrac D2\log 2\pi")
    if us.variational:
        _variational(doc, us, z, n)
        return doc.text()
    doc.heading("3. E-step")
    doc.math(f"r[{n}, k] = q({z}[{n}] = k) = p({z}[{n}] = k) prod_f p(x_f | theta_k) / "
             f"sum_j p({z}[{n}] = j) prod_f p(x_f | theta_j)   (eq. 14, 39)",
             rf"r_{{{n}k}} = q({z}_{n} = k) = \frac{{p({z}_{n} = k) \prod_f p(x_f \mid "
             rf"\theta_k)}}{{\sum_j p({z}_{n} = j) \prod_f p(x_f \mid \theta_j)}}")
    doc.para("It is computed in log space with a log-sum-exp; the log densities of all "
             "components are one product of the statistics t(x) with the natural parameters.")
    doc.para("Expected sufficient statistics (eq. 50):")
    doc.math(f"S_k = sum_{n} r[{n}, k] t(x_{n}),   N_k = sum_{n} r[{n}, k]",
             rf"S_k = \sum_{n} r_{{{n}k}}\, t(x_{n}), \quad N_k = \sum_{n} r_{{{n}k}}")
    doc.heading("4. M-step")
    _simplex(doc, us)
    _scalar(doc, us)
    _gaussian(doc, us)
    doc.heading("5. Objective")
    prior = " + log p(theta)" if r.priors else ""
    prior_tex = r" + \log p(\theta)" if r.priors else ""
    doc.para("After the E-step the bound is tight (eq. 41-45), so the ELBO is the log "
             f"likelihood{' plus the log prior' if r.priors else ''}, with every normalising "
             "constant, in nats; EM never decreases it:")
    doc.math(f"L = log p(x | theta){prior} = sum_{n} logsumexp_k (log p({z}[{n}] = k) + "
             "sum_f log p(x_f | theta_k))",
             rf"\mathcal{{L}} = \log p(x \mid \theta){prior_tex}"
             rf" = \sum_{n} \log \sum_k p({z}_{n} = k) \prod_f p(x_f \mid \theta_k)")
    return doc.text()


def _variational(doc: _Doc, us: UpdateSet, z: str, n: str):
    """Sections 3-5 of a CAVI / variational EM derivation (the family table's words)."""
    from .families import VB_TEXT
    doc.heading(f"3. Update of q({z}) (the local step)")
    doc.math(f"log q({z}[{n}] = k) = E_q[log p({z}[{n}] = k)] + sum_f E_q[log p(x_f | theta_k)] "
             "+ const,   E_q[log p(x | theta_k)] = E_q[eta(theta_k)] . t(x) - E_q[A(theta_k)] "
             "+ log h(x)   (Bishop eq. 10.46)",
             rf"\log q({z}_{n} = k) = \mathbb{{E}}_q[\log p({z}_{n} = k)] + \sum_f "
             r"\mathbb{E}_q[\eta(\theta_k)]^\top t(x_f) - \mathbb{E}_q[A(\theta_k)] + \mathrm{const}")
    doc.para("The natural parameters are multilinear in the globals' statistics, so under the "
             "mean-field q their expectations are those of the statistics; the E-step is EM's "
             "with these in place of point values, and the responsibilities r are its softmax:")
    qs = [q for q in us.qfactors if q.family in VB_TEXT]

    def words(q, part, i):
        prior = us.report.priors[q.var]
        fields = {a: ast.show(e) for a, e in prior.args}
        return VB_TEXT[q.family][part][i].format(v=q.var, p=q.partner, c="N", **fields)
    for q in qs:
        doc.para(f"`{q.var}`" + (f" with `{q.partner}`" if q.partner else "") + ":")
        doc.math(words(q, "expect", 0), words(q, "expect", 1))
    for q in us.scalar_qs:
        if q.given is not None:
            u = q.given.var
            doc.para(f"`{q.var}` with `{u}`: one structured factor q({q.var}, {u}) = "
                     f"q({q.var} | {u}) q({u}), q({q.var} | {u}) = {q.pair.form()} (section "
                     f"4); the statistics T({q.var}) = ({', '.join(doc.expr(t) for t in q.T)}) "
                     f"have expectations given {u} (the mean map at those parameters), which "
                     f"the expectation over q({u}) then takes:")
            for T, m in zip(q.T, q.conditional_mean_map()):
                doc.math(f"E_q[{doc.expr(T)} | {u}] = {doc.expr(m)}",
                         rf"\mathbb{{E}}_q[{doc.expr(T)} \mid {u}] = {doc.expr(m)}")
            if q.located is not None:
                doc.para(f"Where a statement's data are centred by a shift c, the E-step and "
                         f"the messages read {q.located} = {q.P[q.location]} - c (nothing "
                         "cancels far from 0).")
            continue
        doc.para(f"`{q.var}`: q({q.var}) = {q.family}({', '.join(q.names)}); from its log "
                 f"density, sympy finds the statistics T({q.var}) = "
                 f"({', '.join(doc.expr(t) for t in q.T)}) and their expectations (the mean "
                 "map, (d eta / dP)^-T dA/dP):")
        for E, T, m in zip(q.E, q.T, q.mean_map):
            doc.math(f"{E} = E_q[{doc.expr(T)}] = {doc.expr(m)}",
                     rf"{sp.latex(E)} = \mathbb{{E}}_q[{doc.expr(T)}] = {doc.expr(m)}")
    for fm in us.forms:
        if fm.q_eta:
            f = fm.emission.factor
            doc.para(f"`{f.text.strip()}` (line {f.span.line}): E_q[eta] and E_q[A], multilinear "
                     "in the latents' statistics:")
            for t, e in zip(fm.t, fm.q_eta):
                doc.math(f"t(x) = {doc.expr(t)},   E_q[eta] = {doc.expr(e)}",
                         rf"t(x) = {doc.expr(t)}, \quad \mathbb{{E}}_q[\eta] = {doc.expr(e)}")
            doc.math(f"E_q[A] = {doc.expr(fm.q_A)}", rf"\mathbb{{E}}_q[A] = {doc.expr(fm.q_A)}")
    doc.para("Expected sufficient statistics, sums over the items (additive over chunks):")
    doc.math(f"S_k = sum_{n} r[{n}, k] t(x_{n}),   N_k = sum_{n} r[{n}, k]",
             rf"S_k = \sum_{n} r_{{{n}k}}\, t(x_{n}), \quad N_k = \sum_{n} r_{{{n}k}}")
    doc.heading("4. Update of the global factors")
    doc.para("Each global's q is its prior's conjugate form plus the summed messages of the "
             "statistics (the prior's natural parameters + sum_k of r-weighted t(x)); MAP-EM "
             "would take the mode of the same form (Bishop eq. 10.58-10.63):")
    for q in qs:
        doc.math(words(q, "update", 0), words(q, "update", 1))
    _simplex(doc, us)
    _scalar(doc, us)
    _gaussian(doc, us)
    for q in us.scalar_qs:
        if q.given is not None:
            _structured(doc, us, q)
            continue
        doc.para(f"`{q.var}`: its natural parameters H are its prior's plus the messages, the "
                 f"coefficients of T({q.var}) in each statement's expected complete-data log "
                 "likelihood (summed over the cells it appears in); its own parameters follow "
                 "by solving eta(P) = H (sympy):")
        if q.parents:
            doc.para(f"Its prior has the latent(s) {', '.join(f'`{o.var}`' for o in q.parents)} "
                     "among its arguments: the prior's natural parameters are their "
                     "expectations under q (mean-field).")
        hier = [c.var for c, _ in q.prior_messages if c.given is not q]
        if hier:
            doc.para(f"`{q.var}` is an argument of the prior of "
                     f"{', '.join(f'`{c}`' for c in hier)}: those priors send it the "
                     f"coefficients of its statistics in log p(child | {q.var}), in the "
                     "children's expectations, summed over their plates.")
        for c, _ in q.prior_messages:
            if c.given is q:
                doc.para(f"`{q.var}` is the partner of `{c.var}` in q({c.var}, {q.var}): "
                         f"its messages from the statements are their expectations under "
                         f"q({c.var} | {q.var}) (a function of {q.var}), and the prior of "
                         f"`{c.var}` sends the coefficients of T({q.var}) in "
                         f"-KL(q({c.var} | {q.var}) || p({c.var} | {q.var})): together, "
                         f"log q({q.var}) = log p({q.var}) + E_q({c.var} | {q.var})[log p(x, "
                         f"{c.var} | {q.var})] + H(q({c.var} | {q.var})) + const, with the "
                         "other factors' expectations (for a Normal-Gamma with no other "
                         "terms, the exact posterior of Bishop section 2.3.6).")
        for j, H in enumerate(q.H):
            msgs = " + ".join([doc.expr(c[j]) for _, c in q.messages if c[j] != 0]
                              + [("" if c.given is q and us.checked.vars[q.var].shape
                                  else "sum ") + doc.expr(cj[j])
                                 for c, cj in q.prior_messages if cj[j] != 0]) or "0"
            line = f"{doc.expr(q.prior_natural(j))} + {msgs}".replace("+ -", "- ")
            doc.math(f"{H} = {line}", rf"{sp.latex(H)} = {line}")
        for P, inv in zip(q.P, q.inverse):
            doc.math(f"{P} = {doc.expr(inv)}", rf"{sp.latex(P)} = {doc.expr(inv)}")
    for name, uses in us.prior_params.items():
        priors = ", ".join(f"`{pf.text.strip()}` (line {pf.span.line})" for pf in uses)
        doc.para(f"`{name}` (a param in the prior {priors}): its ELBO terms are "
                 f"sum E_q[log p(v | {name})] = eta({name}) . E_q[t(v)] - A({name}) summed over "
                 "the prior's plate, with E_q[t(v)] from the newest q; there is no closed "
                 "form, so the update maximises them numerically (L-BFGS in the log of the "
                 "param, kept only if it improves them): type-II maximum likelihood, as Minka's "
                 "fixed point does for a Dirichlet concentration (Blei et al. 2003, A.4.2).")
        doc.math(f"{name} = argmax sum E_q[log p(v | {name})]",
                 rf"\mathrm{{{name}}} = \arg\max \textstyle\sum \mathbb{{E}}_q[\log p(v \mid "
                 rf"\mathrm{{{name}}})]")
    if us.grouped_weights():
        ref = us.report.assign_ref
        g, v = ref.axes[0].name, ref.param
        doc.para(f"The schedule. Once the global factors are fixed, each group's q({v}[.]) "
                 f"and its items' q({z}) are a small coordinate-ascent problem of their own. "
                 f"Before each update of the global factors, every group is restarted from "
                 f"the update with uniform responsibilities (prior + n_g / K) and iterated to "
                 f"convergence (at most `local_iter` sweeps, default 100; 0 gives plain CAVI), "
                 f"and kept where it raises that group's part of the ELBO, so the ELBO never "
                 f"decreases: the batch schedule of Hoffman, Blei, Wang & Paisley (2013, Alg. "
                 f"1) and scikit-learn. The emissions' part of each item's log joint is "
                 f"exponentiated once per update; a sweep then multiplies and sums only:")
        doc.math(f"r[{n}, k] ~ F[k, {n}] exp(E_q[log {v}[{g}[{n}], k]]),   F[k, {n}] = "
                 f"exp(sum_f E_q[log p(x_f | theta_k)]),   a[{g}] = prior + sum_({n} in {g}) r[{n}]",
                 rf"r_{{{n}k}} \propto F_{{k{n}}}\, e^{{\mathbb E_q[\log {v}_{{{g}_{n} k}}]}}, "
                 rf"\quad a_{{{g}}} = \text{{prior}} + \textstyle\sum_{{{n}\in {g}}} r_{n}")
    doc.heading("5. Objective: the ELBO")
    doc.para(f"Right after the update of q({z}), E_q[log p(x, {z})] + H(q({z})) is the sum of the "
             "log normalisers of the softmax; the ELBO adds minus the KL divergence of each "
             "global factor from its prior, every constant kept, in nats. CAVI never "
             "decreases it (the driver warns on a relative decrease beyond 1e-9):")
    doc.math(f"L = sum_{n} log sum_k exp(E_q[log p({z}[{n}] = k)] + sum_f E_q[log p(x_f | "
             "theta_k)]) - sum_v KL(q(v) || p(v))",
             rf"\mathcal L = \sum_{n}\log\sum_k e^{{\mathbb E_q[\log p({z}_{n}=k)] + "
             r"\sum_f \mathbb E_q[\log p(x_f\mid\theta_k)]} - \sum_v \mathrm{KL}(q(v)\,\|\,p(v))")
    for q in qs:
        doc.math(words(q, "kl", 0), words(q, "kl", 1))
    for q in us.scalar_qs:
        kl = q.kl()
        if q.given is not None:
            u = q.given.var
            doc.math(f"E_q({u})[KL(q({q.var} | {u}) || p({q.var} | {u}))] = {doc.expr(kl)}",
                     rf"\mathbb{{E}}_{{q({u})}}\mathrm{{KL}}(q({q.var}\mid {u})\,\|\,"
                     rf"p({q.var}\mid {u})) = {doc.expr(kl)}")
            continue
        doc.math(f"KL(q({q.var}) || p({q.var})) = {doc.expr(kl)}",
                 rf"\mathrm{{KL}}(q({q.var})\,\|\,p({q.var})) = {doc.expr(kl)}")


def _structured(doc: _Doc, us: UpdateSet, q):
    """The update of q(v | u) of a structured pair (``variational_links.py``)."""
    pair, u = q.pair, q.given.var
    basis = ", ".join(doc.expr(g) for g in pair.basis)
    doc.para(f"`{q.var}` given `{u}`: the terms of log p in {q.var}, with {u} kept, are linear "
             f"in T({q.var}) with coefficients sum_i a_ji g_i({u}), g = ({basis}): "
             f"q({q.var} | {u}) is {q.family} with those natural parameters. The numbers a "
             "are the prior's coefficients plus the messages of the statistics (summed over "
             "the cells):")
    for k, a in pair.coef.items():
        parts = [doc.expr(pair.prior[k])] if k in pair.prior else []
        parts += [doc.expr(m[k]) for _, m in pair.messages if k in m]
        line = " + ".join(parts).replace("+ -", "- ")
        doc.math(f"{a} = {line}", rf"{sp.latex(a)} = {line}")
    doc.para(f"Solving eta(P) = H({u}) (sympy) gives each parameter as a number times a "
             f"function of {u}: q({q.var} | {u}) = {pair.form()}, with")
    for P, f in zip(q.P, pair.fields):
        doc.math(f"{P} = {doc.expr(f)}", rf"{sp.latex(P)} = {doc.expr(f)}")


def _simplex(doc: _Doc, us: UpdateSet):
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
        doc.math(f"{su.param}_j = c_j / sum_i c_i", rf"\mathrm{{{su.param}}}_j = c_j / \sum_i c_i")


def _scalar(doc: _Doc, us: UpdateSet):
    for g in us.groups:
        grid = axes_text(g.axes)
        names = ", ".join(f"`{p}`" for p in g.params)
        doc.para(f"{names}{f' (one value per {grid})' if grid else ''}: the expected "
                 "complete-data log likelihood" + (" plus log prior" if g.priors else "") +
                 " of one cell, in the statistics S and N, is")
        doc.math(f"Q = {doc.expr(g.Q)}", f"Q = {doc.expr(g.Q)}")
        if g.aggregates:
            doc.para(f"{names} do not vary over every cell of their statements, so Q sums "
                     "over the cells they share; each B is such a sum, over the cells "
                     "(with the newest values of the other params):")
            for B, (fm, b) in g.aggregates.items():
                doc.math(f"{B} = sum over cells of {doc.expr(b)}",
                         rf"{sp.latex(B)} = \sum_{{\text{{cells}}}} {doc.expr(b)}")
        doc.para("Setting each derivative to zero (sympy):")
        for p, e in g.equations.items():
            doc.math(f"dQ/d{p} = {doc.expr(e)} = 0",
                     rf"\frac{{\partial Q}}{{\partial {sp.latex(sp.Symbol(p))}}} = "
                     rf"{doc.expr(e)} = 0")
        for p, e in g.closed.items():
            doc.math(f"{p} = {doc.expr(e)}", f"{sp.latex(sp.Symbol(p))} = {doc.expr(e)}")
        if g.timed_out:
            doc.para(f"sympy's solve of the equation of {', '.join(g.timed_out)} did not finish "
                     "within 5 seconds, so compilation moved on without a closed form:")
        if g.numeric:
            doc.para(f"No closed form for {', '.join(g.numeric)}: sympy cannot solve its "
                     "equation, so the M-step maximises the profiled Q numerically (Newton's "
                     "method with the sympy gradient and Hessian, halving a step that would "
                     "lower Q): generalized EM (Hennig, lecture 21). The profiled gradient is")
            for p, gr in zip(g.numeric, g.grad):
                doc.math(f"dQ/d{p} = {doc.expr(gr)}",
                         rf"\frac{{\partial Q}}{{\partial {sp.latex(sp.Symbol(p))}}} = "
                         rf"{doc.expr(gr)}")


def _gaussian(doc: _Doc, us: UpdateSet):
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
            doc.para(f"`{m}` (the mean of `{f.text}`){shared(gu.mean)}: the messages of its "
                     f"cells{prior} form a Gaussian in `{m}`, whose mode is the update:")
            doc.math("h = sum_c Lambda_c Sx_c (+ Lambda_0 m_0),   J = -1/2 sum_c N_c Lambda_c "
                     "(- 1/2 Lambda_0),   mean = (-2 J)^-1 h   (eq. 50-51)",
                     r"h = \sum_c \Lambda_c S^{x}_c \,(+\Lambda_0 m_0), \quad "
                     r"J = -\tfrac12 \sum_c N_c \Lambda_c \,(-\tfrac12\Lambda_0), \quad "
                     r"\mu = (-2J)^{-1} h")
            doc.para("Without a prior, and when the cells share the precision, it is "
                     "Sx / N: the inverse mean map.")
        if sp_:
            conj = f.family.numerics.MESSAGES[gu.keyword][0]
            prior = (f" plus its conjugate {gu.spread_prior.family.name} prior (line "
                     f"{gu.spread_prior.span.line})" if gu.spread_prior is not None else "")
            doc.para(f"`{sp_}` (the {gu.keyword} of `{f.text}`){shared(gu.spread)}: given the new "
                     f"mean, the scatter of each cell is a message in {conj} form{prior}; "
                     "the update is the mode of that form:")
            if gu.keyword == "cov":
                doc.math("Sigma = (sum_c S_c + Psi) / (sum_c N_c + nu + D + 1)  (+ reg I),   "
                         "S_c = sum_n r (x - mu)(x - mu)^T",
                         r"\Sigma = \frac{\sum_c S_c + \Psi}{\sum_c N_c + \nu + D + 1} "
                         r"\;(+\,\mathrm{reg}\,I)")
            else:
                doc.math("Lambda = (sum_c N_c + nu - D - 1) (sum_c S_c + W^-1)^-1",
                         r"\Lambda = \Big(\sum_c N_c + \nu - D - 1\Big)"
                         r"\Big(\sum_c S_c + W^{-1}\Big)^{-1}")
            doc.para("(Without a prior drop Psi, W^-1 and nu: the ML covariance sum S / sum N.)")
