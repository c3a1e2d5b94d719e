"""Code generation for the M-step and the log prior (part of stage 6)."""
from __future__ import annotations

import sympy as sp

from .codegen_util import known, py

_CLIP = {"pos": "np.maximum({v}, np.finfo(float).tiny)",
         "unit": "np.clip({v}, 1e-12, 1 - 1e-12)"}


class MStepWriter:
    def __init__(self, w):
        self.w = w
        self.us = w.us
        self.r = w.r
        self.cm = w.cm

    def write(self, s):
        s("")
        s("")
        s("def m_step(ess, params, hyp, reg=1e-6):")
        s('    """Maximise the expected complete-data log likelihood (+ log prior) given the')
        s("    expected sufficient statistics. ``params`` (the previous values, or None) is")
        s('    the start of numerical M-steps and fills in empty components."""')
        s.indent()
        s("old = params or {}")
        s("new = {}")
        s(f'count_k = ess["C_{self.r.latent.name}"]')
        s("count_k = count_k if count_k.ndim == 1 else count_k.sum(axis=0)  # (K,)")
        for su in self.us.simplex:
            self.simplex(s, su)
        for g in self.us.groups:
            self.scalar_group(s, g)
        for gu in self.us.gaussian:
            self.gaussian(s, gu)
        s("return new")
        s.dedent()
        self.log_prior(s)

    # ------------------------------------------------------------------ simplex
    def simplex(self, s, su):
        src = self.r.assign if su.source == "assign" else su.source.factor
        s(self.w.cite(src))
        s(f"# {su.param}: maximise sum_j c_j log p_j subject to sum_j p_j = 1 (Lagrange):")
        s(f"#   {su.lagrange}")
        key = self.r.latent.name if su.source == "assign" else su.source.factor.target
        s(f'counts = np.array(ess["C_{key}"], dtype=float)  # expected counts c_j')
        if su.prior_alpha is not None:
            pf = self.r.priors[su.param]
            s(self.w.cite(pf) + "  (MAP: add alpha - 1 pseudo-counts)")
            s(f"counts = counts + ({known(su.prior_alpha)}) - 1")
            s("if np.any(counts < 0):")
            s("    counts = np.maximum(counts, 0.0)  # alpha < 1: the mode lies on the boundary")
        s("counts_total = counts.sum(axis=-1, keepdims=True)")
        s(f'new["{su.param}"] = counts / np.where(counts_total > 0, counts_total, 1.0)')
        s("# a simplex with no data (and no prior counts) keeps its value, or starts uniform")
        s(f'new["{su.param}"] = np.where(counts_total > 0, new["{su.param}"], '
          f'old.get("{su.param}", 1.0 / counts.shape[-1]))')

    # ------------------------------------------------------------------ scalar groups
    def scalar_group(self, s, g):
        for fm in g.forms:
            s(self.w.cite(fm.emission.factor))
        for p in g.params:
            if p in self.r.priors:
                s(self.w.cite(self.r.priors[p]) + "  (prior, MAP)")
        s(f"# Q({', '.join(g.params)}) = {sp.sstr(g.Q)}")
        for p, eq in g.equations.items():
            s(f"# dQ/d{p} = {sp.sstr(eq)} = 0")
        if g.others:
            s(f"# given the newest {', '.join(g.others)} (one param group at a time: ECM)")
        value = lambda p: f'_param_value("{p}", new, old, hyp)'  # noqa: E731
        aggregated = []
        for B, (fm, b) in g.aggregates.items():
            if fm not in aggregated:
                aggregated.append(fm)
        for fm in aggregated:  # sums over the cells the group's params do not vary over
            e = fm.emission
            grid = self.w.grid_letters(e)
            own = self.w.letters(e, g.axes)
            self._form_locals(s, g, fm, value)
            for B, (form, b) in g.aggregates.items():
                if form is fm:
                    s(f'{B} = np.einsum("{grid}->{own}", np.broadcast_to({py(b)}, '
                      f'ess["S_{e.factor.target}_0"].shape))  # sum over the cells of {sp.sstr(b)}')
        for fm in g.forms:
            if fm not in aggregated:
                self._form_locals(s, g, fm, value)
        syms = set()
        exprs = list(g.closed.values()) + ([g.profile] if g.profile is not None else [])
        for e in exprs:
            syms |= e.free_symbols
        self.w._hyper_locals(s, {y for y in syms if not any(str(y) in fm.ref_axes
                                                           for fm in g.forms)})
        if g.numeric:
            un = list(g.numeric)
            args = ", ".join(un)
            s(f"# no closed form for {args}: Newton's method on the profiled Q "
              "(generalized EM)")
            s(f"_q = lambda {args}: {py(g.profile)}")
            s(f"_grad = lambda {args}: [{', '.join(py(e) for e in g.grad)}]")
            rows = ", ".join("[" + ", ".join(py(e) for e in row) + "]" for row in g.hess)
            s(f"_hess = lambda {args}: [{rows}]")
            starts = ", ".join(f'_param_value("{p}", {{}}, old, hyp)' for p in un)
            kinds = [self.cm.vars[p].kind for p in un]
            s(f"{args}, = _newton(_q, _grad, _hess, [{starts}], {kinds!r})")
        for p, e in g.closed.items():
            s(f"{p} = {py(e)}  # stationary point of Q")
        for p in g.params:
            kind = self.cm.vars[p].kind
            val = _CLIP.get(kind, "{v}").format(v=p)
            s(f'new["{p}"] = {val}')
            if any(a.kind == "latent" for a in g.axes):
                lat = [i for i, a in enumerate(g.axes) if a.kind == "latent"][0]
                cnt = "count_k" if lat == 0 else f"np.moveaxis(count_k[None], -1, {lat})"
                s(f'new["{p}"] = _keep_empty(new["{p}"], old.get("{p}"), {cnt})')

    def _form_locals(self, s, g, fm, value):
        """Locals an emission's part of Q reads: its statistics, and the other params and
        indexed hypers laid out on its cells."""
        for sym in (*fm.ess, fm.count) + ((fm.shift,) if fm.shift is not None else ()):
            s(f'{sym} = ess["{sym}"]')
        e = fm.emission
        others = [r for r in e.refs if r.param in g.others]
        self.w.on_grid(s, e, others, value)
        self.w.on_grid(s, e, e.knowns, lambda h: f'np.asarray(hyp["{h}"], dtype=float)')

    # ------------------------------------------------------------------ gaussian
    def gaussian(self, s, gu):
        x = gu.emission.factor.target
        s(self.w.cite(gu.emission.factor))
        s(f'stats, n_k = ess["S_{x}"], ess["N_{x}"]')
        s(f'dim = ess["shift_{x}"].shape[0]')
        s("sum_x, sum_xx = stats[:, :dim], _unpack_sym(stats[:, dim:], dim)  # E-sums of x, x x^T")
        s(f'shift = ess["shift_{x}"]')
        if gu.mean and gu.cov is None:
            C = known(gu.cov_known)
            if gu.cov_keyword == "prec":
                s(f"prec_x = np.broadcast_to({C}, (dim, dim))")
            else:
                s(f"prec_x = np.linalg.solve(np.broadcast_to({C}, (dim, dim)), np.eye(dim))")
            if gu.prior is not None:
                pf = gu.prior
                s(self.w.cite(pf) + "  (conjugate prior: complete the square, eq. 32)")
                m0 = known(pf.arg["mean"])
                C0 = known(pf.arg["cov"])
                if dict(pf.keywords).get("cov") == "prec":
                    s(f"prec_0 = np.broadcast_to({C0}, (dim, dim))")
                else:
                    s(f"prec_0 = np.linalg.solve(np.broadcast_to({C0}, (dim, dim)), np.eye(dim))")
                s(f"prior_mean = np.broadcast_to({m0}, (dim,)) - shift")
                s("# (N_k C^-1 + C0^-1) mu_k = C^-1 sum_x_k + C0^-1 prior_mean")
                s("lhs = n_k[:, None, None] * prec_x + prec_0")
                s("rhs = sum_x @ prec_x.T + prec_0 @ prior_mean")
                s("mean_k = np.linalg.solve(lhs, rhs[..., None])[..., 0]")
            else:
                s("mean_k = sum_x / n_k[:, None]  # mu_k = sum_x_k / N_k (eq. 51)")
            self._store_mean(s, gu)
            return
        if gu.mean:
            s("mean_k = sum_x / n_k[:, None]  # mu_k = sum_x_k / N_k (eq. 51)")
            self._store_mean(s, gu)
        else:
            s(f"mean_k = np.broadcast_to(np.atleast_2d({known(gu.mean_known)}) - shift, sum_x.shape)")
        s("# Sigma_k = E[(x - mu)(x - mu)^T] under r[:, k]  (eq. 51), plus reg * I")
        s("cov_k = (sum_xx - sum_x[:, :, None] * mean_k[:, None, :] - mean_k[:, :, None] * sum_x[:, None, :]) "
          "/ n_k[:, None, None]")
        s("cov_k = cov_k + mean_k[:, :, None] * mean_k[:, None, :] + reg * np.eye(dim)")
        s("cov_k = 0.5 * (cov_k + np.swapaxes(cov_k, -1, -2))")
        val = "cov_k" if gu.cov_keyword != "prec" else \
            "np.linalg.solve(cov_k, np.broadcast_to(np.eye(dim), cov_k.shape))"
        s(f'new["{gu.cov}"] = {val}' + ("" if gu.axes else "[0]"))
        if gu.axes:
            s(f'new["{gu.cov}"] = _keep_empty(new["{gu.cov}"], old.get("{gu.cov}"), count_k)')

    def _store_mean(self, s, gu):
        tail = "" if gu.axes else "[0]"
        s(f'new["{gu.mean}"] = (mean_k + shift){tail}')
        if gu.axes:
            s(f'new["{gu.mean}"] = _keep_empty(new["{gu.mean}"], old.get("{gu.mean}"), count_k)')

    # ------------------------------------------------------------------ log prior
    def log_prior(self, s):
        s("")
        s("")
        s("def log_prior(params, hyp):")
        s('    """log p(params) for the params with a prior (0 for maximum likelihood)."""')
        s.indent()
        s("log_p = 0.0")
        for name, pf in self.r.priors.items():
            s(self.w.cite(pf))
            fam = pf.family.name
            if fam == "Dirichlet":
                s(f'log_p += _dirichlet_logpdf(params["{name}"], {known(pf.arg["alpha"])})')
            elif fam == "MvNormal":
                cov = known(pf.arg["cov"])
                if dict(pf.keywords).get("cov") == "prec":
                    cov = f"np.linalg.inv({cov})"
                s(f'values = np.atleast_2d(params["{name}"])')
                s(f"log_p += float(_mvn_logpdf(values, np.broadcast_to({known(pf.arg['mean'])}, "
                  f"values.shape[1:]), np.broadcast_to({cov}, values.shape[1:] * 2)).sum())")
            else:
                g = next(g for g in self.us.groups if name in g.priors)
                lp = g.priors[name]
                s(f'{name} = params["{name}"]')
                self.w._hyper_locals(s, lp.free_symbols)
                s(f"log_p += float(np.sum(np.broadcast_to({py(lp)}, np.shape({name}))))")
        s("return log_p")
        s.dedent()

