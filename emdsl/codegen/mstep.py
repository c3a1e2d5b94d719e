"""Code generation for the M-step and the log prior (part of stage 6)."""
from __future__ import annotations

import sympy as sp

from ..families import VECTOR_FAMILIES
from .util import known, py, value_source

_CLIP = {"pos": "np.maximum({v}, np.finfo(float).tiny)",
         "unit": "np.clip({v}, 1e-12, 1 - 1e-12)"}
# a scalar spread param regularised by the `reg` option as covariance diagonals are:
# reg added to the variance, in the param's own terms (variance, sd or precision)
_REG = {"var": "{v} + reg", "sd": "np.sqrt({v} ** 2 + reg)", "prec": "{v} / (1.0 + reg * {v})"}
_WHAT = {"var": "variance", "sd": "standard deviation", "prec": "precision"}
# collapsed onto a point: the variance before reg was at most reg
_COLLAPSED = {"var": "{v} <= 2 * reg", "sd": "{v} <= np.sqrt(2 * reg)",
              "prec": "{v} >= 0.5 / reg"}


def spread_keyword(g, p):
    """'var', 'sd' or 'prec' when param p is itself the spread argument of a location-scale
    family in one of the group's statements (``Normal(mu[z[n]], s2[z[n]])``), else None."""
    for fm in g.forms:
        f = fm.emission.factor
        spread = f.family.spread
        e = f.arg.get(spread) if spread else None
        base = e.base if hasattr(e, "base") else e
        if getattr(base, "id", None) == p:
            return dict(f.keywords).get(spread, "var")
    return None


class MStepWriter:
    def __init__(self, w):
        self.w = w
        self.us = w.us
        self.r = w.r
        self.cm = w.cm

    def write(self, s):
        s("")
        s("")
        local = self.us.local_factors()
        s("def m_step(ess, params, hyp, reg=1e-6" + (", only=None):" if local else "):"))
        if self.us.variational:
            mixed = len(self.us.variational) < len(self.r.params)
            doc = ['"""Update the global factors from the expected sufficient statistics: each q',
                   "is its prior's conjugate form plus the summed messages (CAVI)"
                   + (", and each param" if mixed else ".")]
            if mixed:
                doc.append("maximises the ELBO (variational EM's M-step).")
            doc.append("``params``: the previous values, or None.")
            if local:
                doc += ["``only``: a tuple of latents whose factors alone are updated (the local",
                        "factors' inner iterations); the others keep their values."]
            doc[-1] += '"""'
            for line in doc:
                s("    " + line)
        else:
            s('    """Maximise the expected complete-data log likelihood (+ log prior) given the')
            s("    expected sufficient statistics. ``params`` (the previous values, or None) is")
            s('    the start of numerical M-steps and fills in empty components."""')
        s.indent()
        s("old = params or {}")
        s("new = {}")
        s(f'count_k = ess["C_{self.r.latent.name}"]')
        s("count_k = count_k if count_k.ndim == 1 else count_k.sum(axis=0)  # (K,)")
        vb = self.w.vb

        def guarded(names, write, *args):
            """With local factors, ``only`` (a tuple of latents) restricts the update."""
            if not local:
                return write(s, *args)
            test = " or ".join(f'"{n}" in only' for n in names)
            s(f"if only is None{' or ' + test if test else ''}:")
            s.indent()
            write(s, *args)
            s.dedent()
        for su in self.us.simplex:
            if su.param in self.us.variational:
                guarded([su.param], vb.simplex, su)
            else:
                guarded([], self.simplex, su)
        for g in self.us.groups:
            guarded([], self.scalar_group, g)
        for q in self.us.scalar_qs:
            guarded([q.var], vb.scalar, q)
        for gu in self.us.gaussian:
            if gu.mean.param in self.us.variational:
                guarded([gu.mean.param, gu.spread.param], vb.normal_wishart, gu)
            else:
                guarded([], self.gaussian, gu)
        for name, uses in self.us.prior_params.items():
            guarded([], vb.prior_param, name, uses)
        if local:
            s("if only is not None:  # the other factors keep their values")
            s("    new = {**old, **new}")
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
            grid = self.w.emitter(e).grid_letters()
            own = self.w.emitter(e).letters(g.axes)
            self._form_locals(s, g, fm, value)
            for B, (form, b) in g.aggregates.items():
                if form is fm:
                    s(f'{B} = np.einsum("{grid}->{own}", np.broadcast_to({py(b)}, '
                      f'ess["S_{e.factor.target}_0"].shape))  # sum over the cells of {sp.sstr(b)}')
            # what the closed form reads besides the sums is constant over the summed cells
            # (length 1 there): lay it out on the group's own cells
            rest = [fm.shift] if fm.shift is not None else []
            rest += [r.param for r in (*e.refs, *e.knowns)
                     if r.param in g.others or r in e.knowns]
            for name in rest:
                s(f'{name} = np.einsum("{grid}->{own}", np.broadcast_to({name}, '
                  f'np.broadcast_shapes(np.shape({name}), (1,) * {len(grid)})))')
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
            s(f'{p} = _toward_infinity({p}, _param_value("{p}", {{}}, old, hyp))  # where '
              "it is infinite: a step that way")
        for p in g.params:
            kind = self.cm.vars[p].kind
            val = _CLIP.get(kind, "{v}").format(v=p)
            s(f'new["{p}"] = {val}')
            spread = spread_keyword(g, p)
            if spread is not None:
                s(f'new["{p}"] = {_REG[spread].format(v=f"new[{p!r}]")}  # reg added to the '
                  "variance, as to covariance diagonals (a collapse onto a point stops at reg)")
            if any(a.kind == "latent" for a in g.axes):
                lat = [i for i, a in enumerate(g.axes) if a.kind == "latent"][0]
                cnt = "count_k" if lat == 0 else f"np.moveaxis(count_k[None], -1, {lat})"
                s(f'new["{p}"] = {self._keep(p)}(new["{p}"], lambda: _param_value("{p}", {{}}, '
                  f'old, hyp), {cnt})  # {self._keep_note(p)}')

    def _keep(self, p) -> str:
        """The helper that decides an empty cell's value: under maximum likelihood it keeps
        its previous value (nothing informs it); with a prior (MAP) the update is the
        prior's mode there, kept unless it is not finite (a prior without a mode)."""
        return "_keep_unless_prior" if p in self.r.priors else "_keep_empty"

    def _keep_note(self, p) -> str:
        return ("an empty cell takes its prior's mode (or keeps its value if there is none)"
                if p in self.r.priors else "an empty cell keeps its value (or a neutral start)")

    def _form_locals(self, s, g, fm, value):
        """Locals an emission's part of Q reads: its statistics, and the other params and
        indexed hypers laid out on its cells."""
        for sym in fm.ess + ((fm.shift,) if fm.shift is not None else ()):
            s(f'{sym} = ess["{sym}"]')
        s(f'{fm.count} = ess["{fm.count}"] + _EPS10  # (an empty cell divides by ~0, not 0)')
        e = fm.emission
        others = [r for r in e.refs if r.param in g.others]
        self.w.emitter(e).on_grid(s, others, value)
        self.w.emitter(e).on_grid(s, e.knowns, lambda h: f'np.asarray(hyp["{h}"], dtype=float)')
        if fm.q_refs:   # variational EM: the q factors' newest expected statistics
            self.w.vb.scalar_q_locals(s, self.w.emitter(e), list(fm.q_refs), value)
            self.w.vb.scalar_expectations(s, fm, fm.shift)

    # ------------------------------------------------------------------ gaussian
    def gaussian(self, s, gu):
        """The MvNormal params: the mean, then the spread given the new mean, each the mode
        of its prior plus the messages of its cells (see ``derive_vector``)."""
        x = gu.emission.factor.target
        s(self.w.cite(gu.emission.factor))
        s(f'stats, n_cells = ess["S_{x}"], ess["N_{x}"] + _EPS10  # per cell: sums, counts (G,)')
        s(f'shift = ess["shift_{x}"]  # the statistics are of x - shift')
        s("dim = shift.shape[0]")
        if self.w.emitter(gu.emission).shared:
            s(f'sum_x, sum_xx = stats, ess["Sxx_{x}"]  # (K, D) per cell; x x^T over all items')
        else:
            self.w.runtime.add("_unpack_sym")
            s("sum_x, sum_xx = stats[:, :dim], _unpack_sym(stats[:, dim:], dim)  # E-sums of x, x x^T")
        beta = f"({known(gu.mean.offset)}) - shift" if gu.mean.offset is not None else "-shift"
        if gu.mean.param:
            self._gaussian_mean(s, gu, beta)
        if gu.spread.param:
            self._gaussian_spread(s, gu, beta)

    def _prec_source(self, slot, keyword, value) -> str:
        """Source for the precision of a spread slot, from the source of its param."""
        if slot.param is None:
            total = f"np.asarray({known(slot.known)}, dtype=float)"
        elif slot.scale is None:
            total = value
        else:
            total = f"{value} {'/' if slot.divide else '*'} ({known(slot.scale)})"
        if keyword == "cov":
            self.w.runtime.add("_spd_inv")
            return f"_spd_inv({total})"
        return total

    def _gaussian_mean(self, s, gu, beta):
        p, sign = gu.mean.param, "-" if gu.mean.sign < 0 else ""
        summed = gu.mean.axes != gu.grid   # one mean shared by the cells
        s(f"# {p}: the centred mean of each cell, {sign}{p} + offset - shift")
        if gu.mean_prior is None and (not summed or not gu.spread.axes):
            # the precision cancels from the stationary point: v = sum_x / N (eq. 51)
            if summed:
                s("centred_mean = sum_x.sum(0, keepdims=True) / n_cells.sum()  # one shared mean")
            else:
                s("centred_mean = sum_x / n_cells[:, None]  # v_k = sum_x_k / N_k (eq. 51)")
        else:
            fam = gu.emission.factor.family.numerics
            conj, _, msg = fam.MESSAGES["mean"]
            mode = VECTOR_FAMILIES[conj].numerics.RUNTIME_MODE
            self.w.runtime.update({msg, mode})
            spread = self._prec_source(gu.spread, gu.keyword,
                                       f'_param_value("{gu.spread.param}", new, old, hyp)'
                                       if gu.spread.param else "")
            s(f"prec_cells = np.broadcast_to({spread}, (len(n_cells), dim, dim))")
            s(f"msg_h, msg_J = {msg}(sum_x, n_cells, prec_cells)  # messages of the cells")
            if summed:
                s("msg_h, msg_J = msg_h.sum(0, keepdims=True), msg_J.sum(0, keepdims=True)"
                  "  # one shared mean")
            if gu.mean_prior is not None:
                pf = gu.mean_prior
                s(self.w.cite(pf) + "  (conjugate prior: its natural parameters)")
                ps = gu.prior_spread
                val = f'_param_value("{ps.param}", new, old, hyp)' if ps.param else ""
                s(f"prior_prec = {self._prec_source(ps, gu.prior_keyword, val)}")
                s(f"prior_mean_c = {sign}np.asarray({known(pf.arg['mean'])}, dtype=float) + {beta}")
                s("msg_h = msg_h + np.einsum('...ij,...j->...i', prior_prec, prior_mean_c)")
                s("msg_J = msg_J - 0.5 * prior_prec")
            s(f"centred_mean = {mode}(msg_h, msg_J)  # the mode of the Gaussian form")
        tail = "" if gu.mean.axes else "[0]"
        unscale = ""
        if gu.mean.scale is not None:   # the mean is P c (or P / c): P is the MLE mapped back
            unscale = f" {'*' if gu.mean.divide else '/'} ({known(gu.mean.scale)})"
        s(f'new["{p}"] = {sign}(centred_mean - ({beta})){tail}{unscale}')
        if gu.mean.axes:
            s(f'new["{p}"] = {self._keep(p)}(new["{p}"], lambda: _param_value("{p}", {{}}, '
              f'old, hyp), count_k)  # {self._keep_note(p)}')

    def _gaussian_spread(self, s, gu, beta):
        p, kw = gu.spread.param, gu.keyword
        conj, _, msg = gu.emission.factor.family.numerics.MESSAGES[kw]  # InvWishart / Wishart
        table = VECTOR_FAMILIES[conj].numerics
        natural, mode = table.RUNTIME_NATURAL, table.RUNTIME_MODE
        self.w.runtime.update({"_mvn_scatter", msg, mode})
        sign = "-" if gu.mean.sign < 0 else ""
        if gu.mean.param:
            scaled = f'new["{gu.mean.param}"]'
            if gu.mean.scale is not None:
                scaled = f"{scaled} {'/' if gu.mean.divide else '*'} ({known(gu.mean.scale)})"
            mean = f"{sign}np.atleast_2d({scaled}) + {beta}"
        else:
            mean = f"np.atleast_2d({known(gu.mean.known)}) - shift"
        s(f"mean_cells = np.broadcast_to({mean}, sum_x.shape)  # the new centred means")
        factor = self._spread_factor(gu.spread, kw)
        if self.w.emitter(gu.emission).shared:
            s("scatter = _mvn_scatter(sum_x, 0.0, n_cells, mean_cells).sum(0, keepdims=True) "
              "+ sum_xx  # sum over cells of sum r (x-m)(x-m)^T")
            s(f"eta0, eta1 = {msg}(scatter{factor}, n_cells.sum(keepdims=True))"
              f"  # messages to {p}: a {conj} form")
        else:
            s("scatter = _mvn_scatter(sum_x, sum_xx, n_cells, mean_cells)  # sum r (x-m)(x-m)^T")
            s(f"eta0, eta1 = {msg}(scatter{factor}, n_cells)  # messages to {p}: a {conj} form")
        if gu.mean_prior is not None and gu.prior_spread.param == p:
            pf = gu.mean_prior
            s(self.w.cite(pf) + f"  (the mean's prior also sends a message to {p})")
            s(f'dev = np.atleast_2d(new["{gu.mean.param}"]) - np.asarray('
              f"{known(pf.arg['mean'])}, dtype=float)")
            s(f"prior_msg = {msg}(_outer(dev, dev){self._spread_factor(gu.prior_spread, kw)}, "
              "np.ones(len(dev)))")
            self.w.runtime.add("_outer")
            if not gu.spread.axes:  # one spread for all: the K prior messages add up
                s("prior_msg = prior_msg[0].sum(0, keepdims=True), prior_msg[1].sum(0, "
                  "keepdims=True)")
            s("eta0, eta1 = eta0 + prior_msg[0], eta1 + prior_msg[1]")
        if gu.spread_prior is not None:
            pf = gu.spread_prior
            self.w.runtime.add(natural)
            s(self.w.cite(pf) + "  (conjugate prior: its natural parameters)")
            s(f"prior_eta = {natural}(np.asarray({known(pf.arg['scale'])}, dtype=float), "
              f"{known(pf.arg['df'])})")
            s("eta0, eta1 = eta0 + prior_eta[0], eta1 + prior_eta[1]")
        s(f"value = {mode}(eta0, eta1)  # the mode of the {conj} form (eq. 51)")
        if kw == "cov":
            s("value = value + reg * np.eye(dim)  # regularisation")
        else:
            self.w.runtime.add("_spd_inv")
            s("value = _spd_inv(_spd_inv(value) + reg * np.eye(dim))  # regularised covariance")
        tail = "" if gu.spread.axes else "[0]"
        s(f'new["{p}"] = value{tail}')
        if gu.spread.axes:
            s(f'new["{p}"] = {self._keep(p)}(new["{p}"], lambda: _param_value("{p}", {{}}, '
              f'old, hyp), count_k)  # {self._keep_note(p)}')

    @staticmethod
    def _spread_factor(slot, keyword) -> str:
        """The factor on the scatter when the spread is the param scaled: for a covariance
        c P, tr(S (c P)^-1) = tr((S / c) P^-1); for a precision c P, tr(S c P)."""
        if slot.scale is None:
            return ""
        c = known(slot.scale)
        multiply = (keyword == "prec") != slot.divide
        return f" * ({c})" if multiply else f" / ({c})"

    # ------------------------------------------------------------------ log prior
    def log_prior(self, s):
        s("")
        s("")
        local = bool(self.us.variational and self.us.local_factors())
        s(f"def log_prior(params, hyp{', only=None' if local else ''}):")
        if self.us.variational:
            s('    """The globals\' part of the objective: log p(params) for the params with a')
            s("    prior, minus KL(q || prior) for the variational factors (then loglik + this is")
            if local:
                s("    the ELBO right after an E-step). ``only``: the latents whose terms alone")
                s('    are summed (a partition\'s local factors, or the global ones)."""')
            else:
                s('    the ELBO right after an E-step)."""')
        else:
            s('    """log p(params) for the params with a prior (0 for maximum likelihood)."""')
        s.indent()
        s("log_p = 0.0")
        self.w.vb.kl_terms(s)
        for name, pf in self.r.priors.items():
            if name in self.us.variational:
                continue
            if local:
                s(f'if only is None or "{name}" in only:')
                s.indent()
            s(self.w.cite(pf))
            fam = pf.family
            if fam.numerics is not None:   # a vector family: its runtime log density
                self.w.runtime.add(fam.numerics.LOGPDF)
                kws = dict(pf.keywords)
                loops = tuple(lp.var for lp in pf.loops)
                args = []
                for arg, e in pf.args:
                    src = value_source(e, loops, frozenset(self.r.params))
                    args.append(f"{kws[arg]}={src}" if arg in kws else src)
                s(f'log_p += float(np.sum({fam.numerics.LOGPDF}(params["{name}"], '
                  f"{', '.join(args)})))")
            else:
                g = next(g for g in self.us.groups if name in g.priors)
                lp = g.priors[name]
                s(f'{name} = params["{name}"]')
                for other in sorted(str(v) for v in lp.free_symbols):   # (a param of the
                    if other != name and other in g.params:           # group in its prior)
                        s(f'{other} = params["{other}"]')
                self.w._hyper_locals(s, lp.free_symbols)
                s(f"log_p += float(np.sum(np.broadcast_to({py(lp)}, np.shape({name}))))")
            if local:
                s.dedent()
        s("return log_p")
        s.dedent()
        s("")
        s("")
        s("def floored(params, reg):")
        s('    """(param, cells, what) for the spreads that collapsed onto a point (a covariance:')
        s('    onto a point or a flat) and are held there by ``reg`` (a variance, or a')
        s('    covariance\'s smallest eigenvalue, at most reg before reg was added)."""')
        s("    out = []")
        spreads = [(p, spread_keyword(g, p)) for g in self.us.groups for p in g.params
                   if spread_keyword(g, p) is not None]
        matrices = {gu.spread.param: gu.keyword for gu in self.us.gaussian
                    if gu.spread.param and gu.spread.param not in self.us.variational}
        if spreads or matrices:
            s("    if reg > 0:")
        for p, kw in spreads:
            test = _COLLAPSED[kw].format(v=f'np.asarray(params["{p}"])')
            s(f"        cells = int(np.sum({test}))")
            s("        if cells:")
            s(f'            out.append(("{p}", cells, "{_WHAT[kw]}"))')
        for p, kw in matrices.items():
            # a covariance whose smallest eigenvalue is at most 2 reg (a precision: largest
            # at least 1 / (2 reg)); one Cholesky factor tells that none is, cheaply
            clear = "value - 2 * reg * eye" if kw == "cov" else "0.5 / reg * eye - value"
            test = ("np.linalg.eigvalsh(value).min(-1) <= 2 * reg" if kw == "cov" else
                    "np.linalg.eigvalsh(value).max(-1) >= 0.5 / reg")
            s(f'        value = np.asarray(params["{p}"], dtype=float)')
            s("        eye = np.eye(value.shape[-1])")
            s("        try:")
            s(f"            np.linalg.cholesky({clear})  # positive definite: no cell collapsed")
            s("        except np.linalg.LinAlgError:")
            s(f"            cells = int(np.sum({test}))")
            s("            if cells:")
            s(f"                out.append((\"{p}\", cells, "
              f"\"{'covariance' if kw == 'cov' else 'precision matrix'}\"))")
        s("    return out")
