"""Code for the variational factors of global latents (``inference/variational.py``).

A global latent's q factor replaces its point value in three places:

- the E-step reads its expected natural parameters (E_q[log p] of a Dirichlet, the
  expected MvNormal natural parameters under a Normal-Wishart);
- the update of the global factors (the ``m_step`` of the module, called by the same
  drivers) sets q to the conjugate posterior: the prior's natural parameters plus the
  summed messages of the expected statistics;
- the objective subtracts KL(q || prior) (``log_prior``), so that the driver's trace is
  the ELBO.

The variational parameters live in the module's params dict under ``"var.field"`` keys
(``"weights.concentration"``, ``"mu.mean"``, ``"mu.beta"``, ``"Lambda.scale"``,
``"Lambda.df"``); ``Q_FACTORS`` in the module lists them by latent.
"""
from __future__ import annotations

import sympy as sp

from ..frontend import ast
from .util import known, py, value_source, variable_mean

# the kind (for neutral values and checks) of each variational parameter
FIELD_KINDS = {"concentration": "pos", "mean": "real", "beta": "pos", "scale": "spd",
               "df": "pos"}


def key(var: str, field: str) -> str:
    return f"{var}.{field}"


class VariationalWriter:
    def __init__(self, w):
        self.w = w
        self.us = w.us
        self.r = w.r

    # ------------------------------------------------------------------ the params dict
    def keys(self) -> list:
        """(key, kind, shape expression list) of every variational parameter."""
        out = []
        for q in self.us.qfactors:
            v = self.r.params[q.var]
            plate = [known(d) for d in v.shape]
            if q.update in self.us.scalar_qs:   # a scalar family: its own parameters
                out += [(key(q.var, f), kind, plate) for f, kind in zip(q.fields, q.update.kinds)]
                continue
            for f in q.fields:
                if f == "concentration":
                    dims = plate + [known(d) for d in v.elem_dims]
                elif f == "mean":
                    dims = plate + [known(d) for d in v.elem_dims]
                elif f == "scale":
                    dims = plate + [known(v.elem_dims[0])] * 2
                else:   # beta, df: one number per element of the plate
                    dims = plate
                out.append((key(q.var, f), FIELD_KINDS[f], dims))
        return out

    def q_factors_constant(self, s):
        qs = {q.var: {"family": q.family, "fields": q.fields, "partner": q.partner}
              for q in self.us.qfactors}
        for q in self.us.scalar_qs:
            if q.given is not None:   # q(v | u) = family(fields scaled by u)
                qs[q.var]["given"] = f"{q.given.var}: {q.pair.form()}"
        s(f"Q_FACTORS = {qs!r}")
        s(f"LOCAL_FACTORS = {self.us.local_factors()!r}  # iterated with the items' q "
          "before each update of the global factors")
        group = None
        if self.us.grouped_weights():
            cov = self.us.report.assign_ref.axes[0].name
            group = (cov, ast.show(self.us.checked.vars[cov].elem_dims[0]))
        s(f"LOCAL_GROUP = {group!r}  # (covariate, its dim): the groups of the local factors")
        if group is not None:
            s(f"LOCAL_STATS = {('C_' + self.r.latent.name,)!r}  # the statistics per group "
              "(their rows are the groups')")

    # ------------------------------------------------------------------ E-step
    def expected_log_simplex(self, var: str, cols: str | None = None) -> str:
        """Source for E_q[log p] of a Dirichlet factor (digamma differences); with ``cols``
        (the source of an index array) only those entries of the last axis."""
        self.w.runtime.add("_dirichlet_expected_log")
        more = f", {cols}" if cols else ""
        return f'_dirichlet_expected_log(params["{key(var, "concentration")}"]{more})'

    def normal_wishart_natural(self, s, gu, x: str):
        """eta_x (K, P), A_x (K,): E_q of the MvNormal emission's natural parameters and
        log-normaliser under q(mu, Lambda), on the centred statistics (Bishop eq. 10.64-10.65:
        E[Lambda mu], E[Lambda], E[mu^T Lambda mu] = D / beta + nu m^T W m, E[log|Lambda|])."""
        self.w.runtime.add("_nw_expected_natural")
        m, L = gu.mean.param, gu.spread.param
        s(f'mean_{x} = np.atleast_2d(params["{key(m, "mean")}"]) - st["centre"]["shift_{x}"]')
        s(f'eta_{x}, A_{x} = _nw_expected_natural(mean_{x}, params["{key(m, "beta")}"], '
          f'params["{key(L, "scale")}"], params["{key(L, "df")}"])  # E_q[eta] (K, P), E_q[A] (K,)')

    # ------------------------------------------------------------------ scalar families
    def scalar_q_locals(self, s, emitter, refs, source=None) -> list:
        """Locals q_<var>_<name> of each scalar q factor's parameters on the cells of
        ``emitter``'s statement; returns their names (for the cells' shape)."""
        grid = emitter.grid_letters()
        names = []
        for r in refs:
            own = emitter.letters(r.axes)
            q = next((q for q in self.us.scalar_qs if q.var == r.param), None)
            if q is None:   # a point param beside the q factors (variational EM)
                val = (source or (lambda k: f'params["{k}"]'))(r.param)
                s(f"{r.param} = {val}" if own == grid else
                  f'{r.param} = _on_grid({val}, "{own}", "{grid}")  # on the cells [{grid}]')
                names.append(r.param)
                continue
            for name, P in zip(q.names, q.P):
                val = (source or (lambda k: f'params["{k}"]'))(key(q.var, name))
                s(f"{P} = {val}" if own == grid else
                  f'{P} = _on_grid({val}, "{own}", "{grid}")  # on the cells [{grid}]')
                names.append(str(P))
        return names

    def scalar_expectations(self, s, fm, shift, only=None):
        """Locals E_<var>_<j> = E_q[T_j(var)] (and EC_<var>_<j>, of var - shift) that the
        expressions of ``fm`` read, from the mean maps of the q factors."""
        used = set().union(*[e.free_symbols for e in (*fm.q_eta, fm.q_A)])
        for q in self.us.scalar_qs:
            if only is None or q.var in only:
                self.statistic_locals(s, q, used if only is None else None, shift)

    def statistic_locals(self, s, q, used, shift=None):
        """Locals of q's expected statistics among ``used`` (None: all of them): E_<var>_<j>,
        EC_<var>_<j> of var - shift, and a structured q's location minus the shift."""
        want = (lambda E: True) if used is None else (lambda E: E in used)  # noqa: E731
        for j, (E, m) in enumerate(zip(q.E, q.mean_map)):
            if want(E) and q.given is None:
                s(f"{E} = {py(m)}  # E_q[{q.T[j]}]")
        if q.centred is not None and shift is not None:
            for j, (E, m) in enumerate(zip(q.EC, q.centred_mean_map(shift))):
                if want(E) and q.given is None:
                    s(f"{E} = {py(m)}  # E_q[({q.T[j]}) at {q.var} - {shift}]")
            if q.located is not None and used is not None and q.located in used:
                s(f"{q.located} = {q.P[q.location]} - {shift}  # q's {q.names[q.location]} "
                  "minus the shift")

    def expectation_locals(self, s, qs, source):
        """Locals q_<var>_<name> and E_<var>_<j> of the scalar q factors ``qs`` from
        ``source`` (a function of a params key to its source)."""
        for o in qs:
            for name, P in zip(o.names, o.P):
                s(f"{P} = np.asarray({source(key(o.var, name))}, dtype=float)")
            self.statistic_locals(s, o, None)

    def scalar(self, s, q):
        """q(v) = its prior's family with natural parameters prior + sum of the messages
        over the cells v appears in; then its own parameters (the inverse map).  A
        structured v: ``structured``."""
        if q.given is not None:
            return self.structured(s, q)
        pf = self.r.priors[q.var]
        s(self.w.cite(pf) + f"  (q({q.var}) = {q.family}: prior + messages)")
        newest = lambda k: f'_param_value("{k}", new, old, hyp)'   # noqa: E731
        self.expectation_locals(s, q.parents, newest)
        for j in range(len(q.H)):
            prior = q.prior_natural(j)
            self.w._hyper_locals(s, prior.free_symbols)
            s(f"{q.H[j]} = np.asarray({py(prior)}, dtype=float)  # the prior's natural "
              f"parameter of {q.T[j]}" + (" (expected over its latent arguments)"
                                          if q.parents else ""))
        for child, c in q.prior_messages:   # from priors that have it as an argument
            s(self.w.cite(self.r.priors[child.var]) + f"  (its message to {q.var}" +
              (f": -KL(q({child.var} | {q.var}) || p({child.var} | {q.var})))"
               if child.given is q else ")"))
            self.expectation_locals(s, [child], newest)
            self.w._hyper_locals(s, set().union(*[cj.free_symbols for cj in c]))
            shape = f'np.shape(_param_value("{key(child.var, child.names[0])}", new, old, hyp))'
            # a structured pair on one plate adds element by element; a hierarchical parent
            # (one value: variational_links rejects plated ones) sums over the child's plate
            own = child.given is q and bool(self.r.params[q.var].shape)
            for j, cj in enumerate(c):
                if cj == 0:
                    continue
                s(f"{q.H[j]} = {q.H[j]} + np.broadcast_to({py(cj)}, {shape})" if own else
                  f"{q.H[j]} = {q.H[j]} + np.sum(np.broadcast_to({py(cj)}, {shape}))"
                  "  # summed over its plate")
        for fm, c in q.messages:
            self.message(s, q, fm, list(zip(q.H, c)))
        for name, P, inv in zip(q.names, q.P, q.inverse):
            s(f'new["{key(q.var, name)}"] = np.broadcast_to({py(inv)}, {q.H[0]}.shape).copy()'
              f"  # {name}")

    def structured(self, s, q):
        """q(v | u): natural parameters sum_i a_ji g_i(u), the numbers a from the prior and
        the summed messages; its stored parameters f(a) (``variational_links.py``)."""
        pair, u = q.pair, q.given
        pf = self.r.priors[q.var]
        s(self.w.cite(pf) + f"  (q({q.var} | {u.var}) = {pair.form()}: its natural parameter "
          f"of T_j({q.var}) is sum_i a_ji g_i({u.var}), g = "
          f"({', '.join(map(str, pair.basis))}))")
        for (j, i), a in pair.coef.items():
            prior = pair.prior.get((j, i), sp.Integer(0))
            self.w._hyper_locals(s, prior.free_symbols)
            s(f"{a} = np.asarray({py(prior)}, dtype=float)  # the prior's coefficient of "
              f"{q.T[j]} * {pair.basis[i]}")
        for fm, contrib in pair.messages:
            self.message(s, q, fm, [(pair.coef[k], c) for k, c in contrib.items()])
        shape = f"np.broadcast_shapes({', '.join(f'np.shape({a})' for a in pair.coef.values())})"
        for name, f in zip(q.names, pair.fields):
            s(f'new["{key(q.var, name)}"] = np.broadcast_to({py(f)}, {shape}).copy()'
              f"  # {name}")

    def message(self, s, q, fm, terms):
        """``target = target + message`` for each (target symbol, expression on the cells)
        of ``terms``: statement ``fm``'s message to q, summed over the cells q is on."""
        em = self.w.emitter(fm.emission)
        s(self.w.cite(fm.emission.factor) + f"  (its message to {q.var})")
        for S in fm.ess:
            s(f'{S} = ess["{S}"]')
        s(f'{fm.count} = ess["{fm.count}"]')
        if fm.shift is not None:
            s(f'{fm.shift} = ess["{fm.shift}"]')
        skip = {q.var} | ({q.given.var} if q.given is not None else set())
        others = [r for r in fm.emission.refs if r.param not in skip]   # u stays symbolic
        for r in others:   # the newest q of the other latents
            self.scalar_q_locals(s, em, [r], lambda k: f'_param_value("{k}", new, old, hyp)')
        used = set().union(*[c.free_symbols for _, c in terms])
        for o in self.us.scalar_qs:
            if o is not q and o.var in {r.param for r in others}:
                self.statistic_locals(s, o, used, fm.shift)
        self.w._hyper_locals(s, used)
        ref = next(r for r in fm.emission.refs if r.param == q.var)
        own, grid = em.letters(ref.axes), em.grid_letters()
        shape = f'np.shape(ess["{fm.ess[0]}"])' if fm.ess else f'np.shape({fm.count})'
        for target, c in terms:
            msg = f"np.broadcast_to({py(c)}, {shape})"
            if own != grid:
                msg = f'np.einsum("{grid}->{own}", {msg})  # summed over the cells'
            s(f"{target} = {target} + {msg}")

    def arg(self, e, pf, in_m_step: bool) -> str:
        """Source for a prior's argument: knowns, and point params (a learned
        concentration) by their newest value in the m_step, or from ``params``."""
        loops = tuple(lp.var for lp in pf.loops)
        point = frozenset(self.us.prior_params)
        lookup = (lambda p: f'_param_value("{p}", new, old, hyp)') if in_m_step else None
        return value_source(e, loops, point, lookup=lookup)

    def prior_param(self, s, name, uses):
        """A param in the priors of variational factors: the maximiser of its ELBO terms,
        sum over those priors of E_q[log p(v | param)] (the family table's expected log
        density of q's statistics), numerically in log param (it is positive)."""
        s(f"# {name}: maximise its ELBO terms, the sum over the priors it is in of "
          "E_q[log p(v | " + name + ")] (type-II maximum likelihood; no closed form:")
        s("# L-BFGS on log " + name + ", starting from its value, kept unless it improves)")
        terms, grads = [], []
        for pf in uses:
            fam = pf.family.numerics
            self.w.runtime.update({fam.EXPECTED_LOGPDF, fam.EXPECTED_LOGPDF_GRAD})
            stat = self.expected_stat(pf.target, lambda k: f'_param_value("{k}", new, old, hyp)')
            kws = dict(pf.keywords)
            args = []
            for a, e in pf.args:
                src = self.arg(e, pf, True) if not (isinstance(e, ast.Name) and e.id == name) \
                    else "value"
                args.append(f"{kws[a]}={src}" if a in kws else src)
            s(self.w.cite(pf))
            s(f"stat_{pf.target} = {stat}  # E_q[t({pf.target})], the newest q")
            terms.append(f"np.sum({fam.EXPECTED_LOGPDF}(stat_{pf.target}, {', '.join(args)}))")
            grads.append(f"{fam.EXPECTED_LOGPDF_GRAD}(stat_{pf.target}, {', '.join(args)})")
        s(f'start = np.asarray(_param_value("{name}", new, old, hyp), dtype=float)')
        s("")
        s("def elbo_terms(log_value):")
        s('    """-(its ELBO terms) and their gradient in log value (the table\'s gradient')
        s('    per element, summed over what the param is broadcast across)."""')
        s("    value = np.exp(log_value).reshape(start.shape)")
        s("    grad = np.zeros(start.shape)")
        for g in grads:
            s(f"    per = {g}")
            s("    grad = grad + per.reshape((-1,) + start.shape).sum(0) if start.ndim else "
              "grad + per.sum()")
        s(f"    return -float({' + '.join(terms)}), -(grad * value).ravel()")
        s("")
        s("found = scipy.optimize.minimize(elbo_terms, np.log(start).ravel(), jac=True, "
          "method=\"L-BFGS-B\")")
        s("better = found.x if found.fun <= elbo_terms(np.log(start).ravel())[0] else "
          "np.log(start).ravel()")
        s(f'new["{name}"] = np.exp(better).reshape(start.shape)')

    def expected_stat(self, var: str, lookup) -> str:
        """Source for E_q[t(var)] of a Dirichlet factor (what EXPECTED_LOGPDF reads)."""
        q = next(q for q in self.us.qfactors if q.var == var)
        if q.family != "Dirichlet":   # pragma: no cover - derive admits only these
            raise NotImplementedError(q.family)
        self.w.runtime.add("_dirichlet_expected_log")
        return f'_dirichlet_expected_log({lookup(key(var, "concentration"))})'

    # ------------------------------------------------------------------ updates
    def simplex(self, s, su):
        """q(p) = Dirichlet(alpha0 + expected counts) (Bishop eq. 10.58)."""
        src = self.r.assign if su.source == "assign" else su.source.factor
        pf = self.r.priors[su.param]
        s(self.w.cite(src))
        s(self.w.cite(pf) + "  (its conjugate prior)")
        counts = self.r.latent.name if su.source == "assign" else su.source.factor.target
        s(f"# q({su.param}) = Dirichlet(alpha0 + expected counts): the prior's natural "
          "parameters plus the messages")
        s(f'counts = np.array(ess["C_{counts}"], dtype=float)  # expected counts')
        s(f'new["{key(su.param, "concentration")}"] = counts + ({self.arg(su.prior_alpha, pf, True)})')

    def normal_wishart(self, s, gu):
        """q(mu_k, Lambda_k) = N(m_k, (beta_k Lambda_k)^-1) W(W_k, nu_k) from the statistics
        (Bishop eq. 10.60-10.63), on the centred data."""
        self.w.runtime.update({"_nw_posterior", "_unpack_sym"})
        x = gu.emission.factor.target
        m, L = gu.mean.param, gu.spread.param
        mp, sp_ = gu.mean_prior, gu.spread_prior
        s(self.w.cite(gu.emission.factor))
        s(self.w.cite(mp) + "  (the structured prior: mean given precision)")
        s(self.w.cite(sp_))
        s(f'stats, n_cells = ess["S_{x}"], ess["N_{x}"]  # per component: sums of t(x), counts')
        s(f'shift = ess["shift_{x}"]  # the statistics are of x - shift')
        s("dim = shift.shape[0]")
        s("sum_x, sum_xx = stats[:, :dim], _unpack_sym(stats[:, dim:], dim)")
        s(f"prior_mean_c = np.asarray({known(mp.arg['mean'])}, dtype=float) - shift"
          "  # the prior mean, centred")
        s(f"centred_mean, beta, scale, df = _nw_posterior(n_cells, sum_x, sum_xx, prior_mean_c, "
          f"{_beta0(gu)}, np.asarray({known(sp_.arg['scale'])}, dtype=float), "
          f"{known(sp_.arg['df'])})")
        s(f'new["{key(m, "mean")}"] = centred_mean + shift')
        s(f'new["{key(m, "beta")}"] = beta')
        s(f'new["{key(L, "scale")}"] = scale')
        s(f'new["{key(L, "df")}"] = df')

    # ------------------------------------------------------------------ objective
    def kl_terms(self, s):
        """log_p -= KL(q || prior) for every variational factor (all constants); with
        local factors, each under ``if only is None or var in only``."""
        guard = bool(self.us.local_factors())
        for q in self.us.qfactors:
            pf = self.r.priors[q.var]
            if guard and q.family != "Wishart":
                s(f'if only is None or "{q.var}" in only:')
                s.indent()
            self.kl_term(s, q, pf)
            if guard and q.family != "Wishart":
                s.dedent()

    def kl_term(self, s, q, pf):
        """log_p -= KL(q || prior) of one variational factor (nothing for a Wishart: its
        pair's KL comes with its mean's factor)."""
        if q.update in self.us.scalar_qs:
            sq = q.update
            s(self.w.cite(pf) + (f"  (- KL(q({q.var}) || prior))" if sq.given is None else
                                 f"  (- E_q({sq.given.var})[KL(q({q.var} | {sq.given.var})"
                                 f" || p({q.var} | {sq.given.var}))])"))
            for name, P in zip(sq.names, sq.P):
                s(f'{P} = np.asarray(params["{key(q.var, name)}"], dtype=float)')
            self.expectation_locals(s, sq.conditioning, lambda k: f'params["{k}"]')
            kl = sq.kl()
            self.w._hyper_locals(s, kl.free_symbols)
            s(f"log_p -= float(np.sum(np.broadcast_to({py(kl)}, np.shape({sq.P[0]}))))")
        elif q.family == "Dirichlet":
            self.w.runtime.add("_dirichlet_kl")
            s(self.w.cite(pf) + f"  (- KL(q({q.var}) || prior))")
            s(f'log_p -= float(np.sum(_dirichlet_kl(params["{key(q.var, "concentration")}"], '
              f"{self.arg(pf.arg['alpha'], pf, False)})))")
        elif q.family == "Wishart":   # the pair's KL, once: with its mean's factor
            return
        else:
            gu = q.update
            m, L = gu.mean.param, gu.spread.param
            mp, sp_ = gu.mean_prior, gu.spread_prior
            self.w.runtime.add("_nw_kl")
            s(self.w.cite(mp) + f"  (- KL(q({m}, {L}) || prior), with line "
              f"{sp_.span.line})")
            s(f'log_p -= float(np.sum(_nw_kl(params["{key(m, "mean")}"], '
              f'params["{key(m, "beta")}"], params["{key(L, "scale")}"], '
              f'params["{key(L, "df")}"], np.asarray({known(mp.arg["mean"])}, dtype=float), '
              f"{_beta0(gu)}, np.asarray({known(sp_.arg['scale'])}, dtype=float), "
              f"{known(sp_.arg['df'])})))")


def _beta0(gu) -> str:
    """Source for the prior's precision factor beta0 in prec = beta0 * Lambda[k]."""
    slot = gu.prior_spread
    if slot.scale is None:
        return "1.0"
    return f"(1.0 / ({known(slot.scale)}))" if slot.divide else f"({known(slot.scale)})"


def write_expectations(vw, s):
    """``expectations(params, hyp)``: each variational factor's expected statistics by
    name (what the E-step reads, and the posterior means users ask for)."""
    s("")
    s("")
    s("def expectations(params, hyp):")
    s('    """latent -> {statistic: array} under its q factor (empty without q factors)."""')
    s("    out = {}")
    for q in vw.us.qfactors:
        if q.update in vw.us.scalar_qs:
            sq = q.update
            for o in ([sq.given] if sq.given is not None else []) + [sq]:
                s("    " + "; ".join(f'{P} = np.asarray(params["{key(o.var, n)}"], dtype=float)'
                                    for n, P in zip(o.names, o.P)))
            if sq.given is not None:   # E_q[T(v)] = E_q(u)[E_q[T(v) | u]]
                for E, m in zip(sq.given.E, sq.given.mean_map):
                    s(f"    {E} = {py(m)}")
            items = ", ".join(f'"E[{T}]": {py(m)}' for T, m in sq.expected_statistics().items())
            s.indent()
            mean = variable_mean(s, sq) if sq.given is None else ""
            s.dedent()
            s(f'    out["{q.var}"] = {{{mean}{items}}}')
        elif q.family == "Dirichlet":
            vw.w.runtime.add("_dirichlet_expected_log")
            a = f'np.asarray(params["{key(q.var, "concentration")}"], dtype=float)'
            s(f'    out["{q.var}"] = {{"E[{q.var}]": {a} / {a}.sum(-1, keepdims=True),')
            s(f'                      "E[log {q.var}]": _dirichlet_expected_log({a})}}')
        elif q.family == "Wishart":
            vw.w.runtime.add("_wishart_expected_logdet")
            W = f'np.asarray(params["{key(q.var, "scale")}"], dtype=float)'
            nu = f'np.asarray(params["{key(q.var, "df")}"], dtype=float)'
            s(f'    out["{q.var}"] = {{"E[{q.var}]": {nu}[..., None, None] * {W},')
            s(f'                      "E[log|{q.var}|]": _wishart_expected_logdet({W}, {nu})}}')
        else:
            m = f'np.asarray(params["{key(q.var, "mean")}"], dtype=float)'
            s(f'    out["{q.var}"] = {{"E[{q.var}]": {m}}}')
    s("    return out")
