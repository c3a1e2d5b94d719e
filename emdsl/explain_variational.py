"""The variational sections of a derivation (``explain.py`` writes the model and the
emission forms first): the update of q(z), the global factors, the ELBO; and the CAVI of a
model whose latents are all global."""
from __future__ import annotations

from .explain import ast_tex, expected_statistics, stmt, gaussian_updates, scalar_updates, simplex_updates
from .frontend import ast
from .inference.derive import UpdateSet, plain_str
from .render import Document, tex, tex_name


def global_cavi(doc: Document, us) -> None:
    """Every latent global: CAVI from the statements' statistics (inference/global_cavi.py)."""
    from .inference.global_cavi import describe
    doc.heading("2. CAVI over global latents (Bishop, PRML §10.3)")
    doc.para("Each statement's log density is a polynomial of degree at most 2 in its "
             "linear predictor u, each coefficient a product g(latents) f(datum): the "
             "data enter through the sums of f(y), f(y) x and f(y) x x^T, and each "
             "factor's update is its prior plus the coefficients of its statistics "
             "with the others' expectations; the ELBO is E_q[log p] of every factor "
             "plus the entropy of q(w) minus the KL of the scalar factors:")
    for plain, latex in describe(us, tex=tex, name=tex_name, expr=ast_tex):
        doc.math(plain, latex)
    doc.implemented("the statistics", function="prepare")
    for vq in us.vector:
        doc.implemented(f"the update of q(`{vq.var}`)", assignment=vq.var)
    for q in us.scalars:
        doc.implemented(f"the update of q(`{q.var}`)", assignment=q.var)
    doc.implemented("the ELBO", function="elbo")


def variational(doc: Document, us: UpdateSet, z: str, n: str) -> None:
    """Sections 3-5 of a CAVI / variational EM derivation (the family table's words)."""
    from .families import VB_TEXT
    Z, Nn = tex_name(z), tex_name(n)
    doc.heading(f"3. Update of q({z}) (the local step)")
    doc.math(f"log q({z}[{n}] = k) = E_q[log p({z}[{n}] = k)] + sum_f E_q[log p(x_f | theta_k)] "
             "+ const,   E_q[log p(x | theta_k)] = E_q[eta(theta_k)] . t(x) - E_q[A(theta_k)] "
             "+ log h(x)   (Bishop eq. 10.46)",
             rf"\log q({Z}_{{{Nn}}} = k) = \mathbb{{E}}_q[\log p({Z}_{{{Nn}}} = k)] + \sum_f "
             r"\mathbb{E}_q[\eta(\theta_k)]^\top t(x_f) - \mathbb{E}_q[A(\theta_k)] + \mathrm{const}")
    doc.para("The natural parameters are multilinear in the globals' statistics, so under the "
             "mean-field q their expectations are those of the statistics; the E-step is EM's "
             "with these in place of point values, and the responsibilities r are its softmax:")
    doc.implemented(f"the update of q(`{z}`)", function="e_step")
    qs = [q for q in us.qfactors if q.family in VB_TEXT]

    def words(q, part):
        prior = us.report.priors[q.var]
        plain, latex = VB_TEXT[q.family][part]
        return (plain.format(v=q.var, p=q.partner, c="N",
                             **{a: ast.show(e) for a, e in prior.args}),
                latex.format(v=tex_name(q.var), p=tex_name(q.partner or ""), c="N",
                             **{a: ast_tex(e) for a, e in prior.args}))
    for q in qs:
        doc.para(f"`{q.var}`" + (f" with `{q.partner}`" if q.partner else "") + ":")
        doc.math(*words(q, "expect"))
    for q in us.scalar_qs:
        if q.given is not None:
            u = q.given.var
            doc.para(f"`{q.var}` with `{u}`: one structured factor q({q.var}, {u}) = "
                     f"q({q.var} | {u}) q({u}), q({q.var} | {u}) = {q.pair.form()} (section "
                     f"4); the statistics T({q.var}) = ({', '.join(plain_str(t) for t in q.T)}) "
                     f"have expectations given {u} (the mean map at those parameters), which "
                     f"the expectation over q({u}) then takes:")
            for T, m in zip(q.T, q.conditional_mean_map()):
                doc.math(f"E_q[{plain_str(T)} | {u}] = {plain_str(m)}",
                         rf"\mathbb{{E}}_q[{tex(T)} \mid {tex_name(u)}] = {tex(m)}")
            if q.located is not None:
                doc.para(f"Where a statement's data are centred by a shift c, the E-step and "
                         f"the messages read {q.located} = {q.P[q.location]} - c (nothing "
                         "cancels far from 0).")
            continue
        doc.para(f"`{q.var}`: q({q.var}) = {q.family}({', '.join(q.names)}); from its log "
                 f"density, sympy finds the statistics T({q.var}) = "
                 f"({', '.join(plain_str(t) for t in q.T)}) and their expectations (the mean "
                 "map, (d eta / dP)^-T dA/dP):")
        for E, T, m in zip(q.E, q.T, q.mean_map):
            doc.math(f"{E} = E_q[{plain_str(T)}] = {plain_str(m)}",
                     rf"{tex(E)} = \mathbb{{E}}_q[{tex(T)}] = {tex(m)}")
    for fm in us.forms:
        if fm.q_eta:
            f = fm.emission.factor
            doc.para(f"`{stmt(f)}` (line {f.span.line}): E_q[eta] and E_q[A], multilinear "
                     "in the latents' statistics:")
            for t, e in zip(fm.t, fm.q_eta):
                doc.math(f"t(x) = {plain_str(t)},   E_q[eta] = {plain_str(e)}",
                         rf"t(x) = {tex(t)}, \quad \mathbb{{E}}_q[\eta] = {tex(e)}")
            doc.math(f"E_q[A] = {plain_str(fm.q_A)}", rf"\mathbb{{E}}_q[A] = {tex(fm.q_A)}")
    expected_statistics(doc, n)
    doc.heading("4. Update of the global factors")
    doc.para("Each global's q is its prior's conjugate form plus the summed messages of the "
             "statistics (the prior's natural parameters + sum_k of r-weighted t(x)); MAP-EM "
             "would take the mode of the same form (Bishop eq. 10.58-10.63):")
    for q in qs:
        doc.math(*words(q, "update"))
        doc.implemented(f"the update of q(`{q.var}`)", assignment=q.var)
    simplex_updates(doc, us)
    scalar_updates(doc, us)
    gaussian_updates(doc, us)
    for q in us.scalar_qs:
        _scalar_q(doc, us, q)
    _prior_params(doc, us)
    if us.grouped_weights():
        _grouped_schedule(doc, us, z, n)
    doc.heading("5. Objective: the ELBO")
    doc.para(f"Right after the update of q({z}), E_q[log p(x, {z})] + H(q({z})) is the sum of the "
             "log normalisers of the softmax; the ELBO adds minus the KL divergence of each "
             "global factor from its prior, every constant kept, in nats. CAVI never "
             "decreases it (the driver warns on a relative decrease beyond 1e-9):")
    doc.math(f"L = sum_{n} log sum_k exp(E_q[log p({z}[{n}] = k)] + sum_f E_q[log p(x_f | "
             "theta_k)]) - sum_v KL(q(v) || p(v))",
             rf"\mathcal L = \sum_{{{Nn}}}\log\sum_k e^{{\mathbb E_q[\log p({Z}_{{{Nn}}}=k)] + "
             r"\sum_f \mathbb E_q[\log p(x_f\mid\theta_k)]} - \sum_v \mathrm{KL}(q(v)\,\|\,p(v))")
    for q in qs:
        doc.math(*words(q, "kl"))
    for q in us.scalar_qs:
        kl, V = q.kl(), tex_name(q.var)
        if q.given is not None:
            u = q.given.var
            doc.math(f"E_q({u})[KL(q({q.var} | {u}) || p({q.var} | {u}))] = {plain_str(kl)}",
                     rf"\mathbb{{E}}_{{q({tex_name(u)})}}\mathrm{{KL}}(q({V}\mid {tex_name(u)})"
                     rf"\,\|\,p({V}\mid {tex_name(u)})) = {tex(kl)}")
            continue
        doc.math(f"KL(q({q.var}) || p({q.var})) = {plain_str(kl)}",
                 rf"\mathrm{{KL}}(q({V})\,\|\,p({V})) = {tex(kl)}")
    doc.implemented("the KL terms", function="log_prior")
    doc.implemented("the ELBO", function="elbo")


def _scalar_q(doc: Document, us: UpdateSet, q) -> None:
    """The update of a scalar latent's q: its prior's natural parameters plus messages."""
    if q.given is not None:
        _structured(doc, q)
        doc.implemented(f"the update of q(`{q.var}` | `{q.given.var}`)", assignment=q.var)
        return
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
        terms = [(plain_str(c[j]), tex(c[j])) for _, c in q.messages if c[j] != 0]
        for c, cj in q.prior_messages:
            if cj[j] != 0:
                summed = not (c.given is q and us.checked.vars[q.var].shape)
                terms.append((("sum " if summed else "") + plain_str(cj[j]),
                              (r"\textstyle\sum " if summed else "") + tex(cj[j])))
        plain = " + ".join(t[0] for t in terms) or "0"
        latex = " + ".join(t[1] for t in terms) or "0"
        doc.math(f"{H} = {plain_str(q.prior_natural(j))} + {plain}".replace("+ -", "- "),
                 f"{tex(H)} = {tex(q.prior_natural(j))} + {latex}")
    for P, inv in zip(q.P, q.inverse):
        doc.math(f"{P} = {plain_str(inv)}", f"{tex(P)} = {tex(inv)}")
    doc.implemented(f"the update of q(`{q.var}`)", assignment=q.var)


def _structured(doc: Document, q) -> None:
    """The update of q(v | u) of a structured pair (``variational_links.py``)."""
    pair, u = q.pair, q.given.var
    basis = ", ".join(plain_str(g) for g in pair.basis)
    doc.para(f"`{q.var}` given `{u}`: the terms of log p in {q.var}, with {u} kept, are linear "
             f"in T({q.var}) with coefficients sum_i a_ji g_i({u}), g = ({basis}): "
             f"q({q.var} | {u}) is {q.family} with those natural parameters. The numbers a "
             "are the prior's coefficients plus the messages of the statistics (summed over "
             "the cells):")
    for k, a in pair.coef.items():
        parts = ([pair.prior[k]] if k in pair.prior else []) + \
            [m[k] for _, m in pair.messages if k in m]
        doc.math(f"{a} = {' + '.join(plain_str(p) for p in parts)}".replace("+ -", "- "),
                 f"{tex(a)} = {' + '.join(tex(p) for p in parts) or '0'}")
    doc.para(f"Solving eta(P) = H({u}) (sympy) gives each parameter as a number times a "
             f"function of {u}: q({q.var} | {u}) = {pair.form()}, with")
    for P, f in zip(q.P, pair.fields):
        doc.math(f"{P} = {plain_str(f)}", f"{tex(P)} = {tex(f)}")


def _prior_params(doc: Document, us: UpdateSet) -> None:
    for name, uses in us.prior_params.items():
        priors = ", ".join(f"`{stmt(pf)}` (line {pf.span.line})" for pf in uses)
        doc.para(f"`{name}` (a param in the prior {priors}): its ELBO terms are "
                 f"sum E_q[log p(v | {name})] = eta({name}) . E_q[t(v)] - A({name}) summed over "
                 "the prior's plate, with E_q[t(v)] from the newest q; there is no closed "
                 "form, so the update maximises them numerically (L-BFGS in the log of the "
                 "param, kept only if it improves them): type-II maximum likelihood, as Minka's "
                 "fixed point does for a Dirichlet concentration (Blei et al. 2003, A.4.2).")
        doc.math(f"{name} = argmax sum E_q[log p(v | {name})]",
                 rf"{tex_name(name)} = \arg\max \textstyle\sum \mathbb{{E}}_q[\log p(v \mid "
                 rf"{tex_name(name)})]")
        doc.implemented(f"the update of `{name}`", assignment=name)


def _grouped_schedule(doc: Document, us: UpdateSet, z: str, n: str) -> None:
    ref = us.report.assign_ref
    g, v = ref.axes[0].name, ref.param
    G, V, Nn = tex_name(g), tex_name(v), tex_name(n)
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
             rf"r_{{{Nn} k}} \propto F_{{k {Nn}}}\, e^{{\mathbb E_q[\log {V}_{{{G}_{{{Nn}}} k}}]}}, "
             rf"\quad a_{{{G}}} = \text{{prior}} + \textstyle\sum_{{{Nn}\in {G}}} r_{{{Nn}}}")
    doc.implemented("the local step", function="local_fit")
