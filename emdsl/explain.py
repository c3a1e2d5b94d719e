"""``emdsl derive``: the derivation of the updates as a document (Markdown, LaTeX or text).

It follows the order a teacher would write on the board: the model, the complete-data
log likelihood, the E-step, each param's M-step from the expected complete-data log
likelihood, and the objective.
"""
from __future__ import annotations

import sympy as sp

from . import ast
from .derive import UpdateSet, axes_text


def explain(us: UpdateSet, format: str = "markdown") -> str:
    fmt = {"md": "markdown", "tex": "latex"}.get(format, format)
    if fmt not in ("markdown", "latex", "text"):
        from .errors import EmmError
        raise EmmError(f"unknown derivation format '{format}'", hint="use markdown, latex or text")
    math = sp.latex if fmt == "latex" else sp.sstr
    r, cm = us.report, us.checked
    z, K = r.latent.name, ast.show(r.latent.elem_dims[0])
    n = r.plate.var
    out = []

    def h(title):
        out.append({"markdown": f"\n## {title}\n", "latex": f"\n\\section*{{{title}}}\n",
                    "text": f"\n{title}\n{'=' * len(title)}\n"}[fmt])

    def eq(text):
        out.append(f"    {text}" if fmt != "latex" else f"\\[ {text} \\]")

    out.append({"markdown": f"# Derivation: {cm.name} ({r.algorithm})",
                "latex": f"\\section*{{Derivation: {cm.name} ({r.algorithm})}}",
                "text": f"Derivation: {cm.name} ({r.algorithm})"}[fmt])
    h("1. The model")
    for f in cm.factors:
        out.append(f"- line {f.span.line}: `{f.text}`")
    what = "maximum likelihood" if not r.priors else \
        f"MAP (priors on {', '.join(r.priors)})"
    out.append(f"\nParams are point estimates by {what}; the latent `{z}[{n}]` takes values "
               f"1..{K}, so given the params the posterior of each `{z}[{n}]` is a finite "
               "discrete distribution and the E-step is exact (EM).")
    h("2. Complete-data log likelihood")
    out.append(f"log p(x, {z} | theta) = sum_{n} sum_k 1[{z}[{n}] = k] ( log p({z}[{n}] = k) "
               "+ sum_f log p(x_f | theta_k) )   (Linderman eq. 6)")
    for fm in us.forms:
        f = fm.emission.factor
        out.append(f"\nEmission `{f.text}` (line {f.span.line}) in exponential-family form "
                   "log p = eta . t(x) - A + log h:")
        for t, e in zip(fm.t, fm.eta):
            eq(f"t(x) = {math(t)},  eta = {math(e)}")
        eq(f"A = {math(fm.A)},  log h(x) = {math(fm.logh)}")
    for gu in us.gaussian:
        f = gu.emission.factor
        out.append(f"\nEmission `{f.text}` (line {f.span.line}): MvNormal with "
                   "t(x) = [x, x x^T], eta = [Sigma^-1 mu, -1/2 Sigma^-1], "
                   "A = 1/2 mu^T Sigma^-1 mu + 1/2 log|Sigma| + D/2 log(2 pi).")
    h("3. E-step")
    out.append(f"q({z}[{n}] = k) = r[{n}, k] = p({z}[{n}] = k) prod_f p(x_f | theta_k) / "
               f"sum_j p({z}[{n}] = j) prod_f p(x_f | theta_j)   (eq. 14, 39)")
    out.append("computed in log space with logsumexp; the log densities of all components "
               "are one product of the statistics t(x) with the natural parameters.")
    out.append("\nExpected sufficient statistics (eq. 50): S_k = sum_n r[n, k] t(x_n), "
               "N_k = sum_n r[n, k].")
    h("4. M-step")
    for su in us.simplex:
        grid = axes_text(su.axes)
        prior = " + (alpha - 1)" if su.prior_alpha is not None else ""
        out.append(f"\n**{su.param}**{f'[{grid}]' if grid else ''} (simplex): maximise "
                   f"sum_j c_j log p_j with c = expected counts{prior}, subject to "
                   "sum_j p_j = 1, with a Lagrange multiplier lambda:")
        eq(su.lagrange)
        eq(f"{su.param}_j = c_j / sum_i c_i")
    for g in us.groups:
        grid = axes_text(g.axes)
        out.append(f"\n**{', '.join(g.params)}**{f'[{grid}]' if grid else ''}: the expected "
                   "complete-data log likelihood" + (" plus log prior" if g.priors else "")
                   + " of one cell is")
        eq(f"Q = {math(g.Q)}")
        for p, e in g.equations.items():
            eq(f"dQ/d{p} = {math(e)} = 0")
        for p, e in g.closed.items():
            eq(f"{p} = {math(e)}")
        if g.numeric:
            out.append(f"No closed form for {', '.join(g.numeric)}: sympy cannot solve its "
                       "equation, so the M-step maximises the profiled Q numerically "
                       "(Newton's method with the sympy gradient and Hessian, step halving "
                       "so Q never decreases): **generalized EM** (Hennig, lecture 21).")
            for p, gr in zip(g.numeric, g.grad):
                eq(f"dQ/d{p} (profiled) = {math(gr)}")
    for gu in us.gaussian:
        if gu.mean and gu.cov:
            out.append(f"\n**{gu.mean}, {gu.cov}** (MvNormal, inverse mean map, eq. 51):")
            eq(f"{gu.mean}_k = Sx_k / N_k")
            eq(f"{gu.cov}_k = Sxx_k / N_k - {gu.mean}_k {gu.mean}_k^T  (+ reg I)")
        elif gu.mean:
            if gu.prior is not None:
                out.append(f"\n**{gu.mean}** (MvNormal mean, known covariance C, conjugate "
                           f"prior N(m0, C0) at line {gu.prior.span.line}): complete the "
                           "square (eq. 30-32):")
                eq(f"(N_k C^-1 + C0^-1) {gu.mean}_k = C^-1 Sx_k + C0^-1 m0")
            else:
                out.append(f"\n**{gu.mean}** (MvNormal mean, known covariance):")
                eq(f"{gu.mean}_k = Sx_k / N_k")
        elif gu.cov:
            out.append(f"\n**{gu.cov}** (MvNormal covariance, known mean m):")
            eq(f"{gu.cov}_k = E_r[(x - m)(x - m)^T]  (+ reg I)")
    h("5. Objective")
    out.append("After the E-step the bound is tight (eq. 41-45), so the ELBO is log p(x | theta)"
               + (" + log p(theta)" if r.priors else "") +
               f" = sum_{n} logsumexp_k(log p({z}[{n}] = k) + sum_f log p(x_f | theta_k))"
               " with every normalising constant, in nats. EM never decreases it.")
    return "\n".join(out) + "\n"
