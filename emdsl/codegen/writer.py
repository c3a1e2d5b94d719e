"""Stage 6: :class:`~emdsl.derive.UpdateSet` -> the source of one readable numpy module.

The module exposes ``prepare`` (sufficient statistics t(x), once per data set),
``e_step``, ``expected_stats``, ``m_step``, ``log_prior``, ``elbo``, ``init`` and ``fit``.
Every block cites the model line it implements and the equation of the notes.
"""
from __future__ import annotations

import re
import string

import sympy as sp

from .. import __version__
from .mstep import MStepWriter
from .helpers import HELPERS
from .util import Source, comment_safe, known, py
from ..families.runtime import runtime_source
from ..inference.derive import UpdateSet


def generate(us: UpdateSet) -> str:
    return _Writer(us).module()


def module_imports(body: str) -> list:
    """The import lines a module body needs: numpy always; scipy.special and scipy.sparse
    only when used (importing scipy.special costs more than the rest of loading a model)."""
    lines = ["import numpy as np"]
    if re.search(r"\bnumpy\.", body):
        lines.insert(0, "import numpy")
    if "scipy.special." in body:
        lines.append("import scipy.special")
    if "scipy.sparse." in body:
        lines.append("import scipy.sparse")
    bare = [n for n in ("exp", "log", "sqrt") if re.search(rf"(?<![.\w]){n}\(", body)]
    if bare:
        lines.append(f"from numpy import {', '.join(bare)}")
    special = [n for n in ("digamma", "gammaln", "logsumexp", "polygamma")
               if re.search(rf"(?<![.\w]){n}\(", body)]
    if special:
        lines.append(f"from scipy.special import {', '.join(special)}")
    return lines


class _Writer:
    def __init__(self, us: UpdateSet):
        self.us = us
        self.r = us.report
        self.cm = us.checked
        self.file = comment_safe(self.cm.model.file)  # user text: escaped for comments
        self.K = self.r.latent.elem_dims[0]
        self.plate = self.r.plate
        self.runtime: set = set()   # the family table's runtime functions the module calls

    def form_of(self, emission):
        """The exponential-family form of a scalar emission."""
        return next(fm for fm in self.us.forms if fm.emission is emission)

    def gaussian_of(self, emission):
        """The Gaussian update of an MvNormal emission."""
        return next(g for g in self.us.gaussian if g.emission is emission)

    def shift_on_grid(self, e) -> str:
        """Source for a scalar emission's data shift (one per inner index) laid out like its
        params' grid (the latent axis a broadcast axis of length 1)."""
        fm = self.form_of(e)
        summed = self.summed_positions(e)
        inner = "".join(c for i, c in enumerate(self.data_letters(e)) if i and i not in summed)
        grid = self.grid_letters(e)
        src = f'st["centre"]["{fm.shift}"]'
        if inner:
            src = f'np.einsum("{inner}->{grid.replace("k", "")}", {src})'
            if "k" in grid:
                src = f'np.expand_dims({src}, {grid.index("k")})'
        return src

    def cite(self, factor) -> str:
        return f"# {self.file}:{factor.span.line}:{factor.span.col}  {comment_safe(factor.text)}"

    def data_letters(self, emission) -> str:
        """einsum letters of an emission's data axes: 'n', then one per inner loop."""
        free = [c for c in string.ascii_lowercase if c not in "nk"]
        return "n" + "".join(free[:len(emission.inner)])

    def grid_letters(self, emission) -> str:
        """einsum letters of a scalar emission's cell grid: 'k' for the latent axis, the
        inner loop's letter for a loop axis (conjugacy admits no other axes here)."""
        return self.letters(emission, self.form_of(emission).axes)

    def letters(self, emission, axes) -> str:
        """einsum letters of ``axes`` (a param's or the cell grid's) in an emission."""
        loop_letter = dict(zip((lp.var for lp in emission.inner),
                               self.data_letters(emission)[1:]))
        return "".join("k" if a.kind == "latent" else loop_letter[a.name] for a in axes)

    def matmul_layout(self, emission) -> bool:
        """Whether the cell grid is 'k' then the data's (unsummed) inner axes in order, so
        that the E-step and the statistics are plain matrix products."""
        summed = self.summed_positions(emission)
        inner = "".join(c for i, c in enumerate(self.data_letters(emission))
                        if i and i not in summed)
        return self.grid_letters(emission) == "k" + inner

    def summed_t(self, emission, src) -> str:
        """Source for a statistic with the inner axes no param depends on summed out."""
        summed = self.summed_positions(emission)
        return f"{src}.sum(axis={summed})" if summed else src

    def summed_positions(self, emission) -> tuple:
        """Axes of the data array (0 = items) of the inner loops no param depends on."""
        fm = self.form_of(emission)
        return tuple(1 + i for i, lp in enumerate(emission.inner) if lp.var in fm.summed)

    def multiplicity(self, emission) -> str:
        """Source for the number of data elements per item and cell (the product of the
        sizes of the summed inner loops), '' when it is 1."""
        pos = self.summed_positions(emission)
        x = emission.factor.target
        return " * ".join(f'st["shape_{x}"][{i}]' for i in pos)

    def on_grid(self, s, emission, refs, source):
        """Locals for params / indexed hypers laid out on the emission's cell grid."""
        grid = self.grid_letters(emission)
        for r in refs:
            own = self.letters(emission, r.axes)
            val = source(r.param)
            s(f"{r.param} = {val}" if own == grid else
              f'{r.param} = _on_grid({val}, "{own}", "{grid}")  # on the cells [{grid}]')

    # ------------------------------------------------------------------ module
    def module(self) -> str:
        s = Source()
        m = self.cm.model
        s(f"# Generated by emdsl {__version__} from {self.file} -- do not edit.")
        s(f'"""{self.r.algorithm} for model {m.name} ({self.file}).')
        s("")
        s(f"E-step: exact posterior of latent '{self.r.latent.name}' (responsibilities);")
        s("M-step: closed-form or numerical maximisers of the expected complete-data log")
        s("likelihood" + (" plus log prior (MAP)." if self.r.priors else "."))
        s("All arrays are 0-based; categories are 0..K-1.")
        s('"""')
        imports = len(s.lines)   # filled in below, once the body says what it uses
        s("")
        params = tuple(self.r.params)
        s(f"MODEL = {m.name!r}")
        s(f"ALGORITHM = {self.r.algorithm!r}")
        s(f"LATENT = {self.r.latent.name!r}")
        s(f"PARAMS = {params!r}")
        s(f"DATA = {tuple(v.name for v in self.cm.vars.values() if v.role == 'data')!r}")
        s("BLOCK_BYTES = 2 ** 21  # a block of t(x) stays within ~2 MiB (the cache, not N)")
        s(HELPERS)
        mark = len(s.lines)
        self.shapes(s)
        self.prepare(s)
        self.e_step(s)
        self.expected_stats(s)
        MStepWriter(self).write(s)
        self.init_and_fit(s)
        if self.runtime:  # the family table's numerics this module uses, verbatim
            s.lines[mark:mark] = ["", "", "# ---- from the family table (emdsl.families)", ""] \
                + runtime_source(sorted(self.runtime)).split("\n")
        s.lines[imports:imports] = module_imports("\n".join(s.lines))
        return s.text()

    def shapes(self, s):
        s("")
        kinds = {name: v.kind for name, v in self.r.params.items()}
        s(f"PARAM_KINDS = {kinds!r}")
        s("")
        s("")
        s("def _param_value(name, new, old, hyp):")
        s('    """The newest value of a param: this M-step\'s, the previous one, or a neutral')
        s('    start (0, 1, 1/2, uniform or the identity by its type) before the first."""')
        s("    if name in new:")
        s("        return new[name]")
        s("    if old and name in old:")
        s("        return np.asarray(old[name], dtype=float)")
        s("    shape, kind = param_shapes(hyp)[name], PARAM_KINDS[name]")
        s('    if kind == "spd":')
        s("        return np.broadcast_to(np.eye(shape[-1]), shape).copy()")
        s('    if kind == "simplex":')
        s("        return np.full(shape, 1.0 / shape[-1])")
        s('    start = {"pos": 1.0, "unit": 0.5}.get(kind, 0.0)')
        s("    return np.full(shape, start)")
        s("")
        s("def n_components(hyp):")
        s(f'    """The number of values of latent {self.r.latent.name!r} (K), from the dims."""')
        s(f"    return int({known(self.K)})")
        s("")
        s("")
        s("def hyper_problems(hyp):")
        s('    """Hyper values for which the derived updates do not exist (one message each)."""')
        s("    problems = []")
        for su in self.us.simplex:
            if su.prior_alpha is not None:
                line = self.r.priors[su.param].span.line
                s(f"    if np.any(np.asarray({known(su.prior_alpha)}) < 1):")
                s(f"        problems.append('the Dirichlet prior on {su.param} (line {line}) has "
                  "a concentration below 1: its density is unbounded at the boundary, so the "
                  "MAP estimate does not exist; use concentrations >= 1')")
        for g in self.us.groups:
            for p, edge, c in g.edge_checks:
                pf = self.r.priors[p]
                s("    " + self._hyper_locals_text(c.free_symbols))
                s(f"    if np.any(np.asarray({py(c)}) < 0):")
                s(f"        problems.append('the {pf.family.name} prior on {p} (line "
                  f"{pf.span.line}) has a density unbounded at {edge} ({sp.sstr(c)} < 0): the "
                  f"MAP estimate may not exist (the update would sit on the boundary); give "
                  f"the prior arguments that make {sp.sstr(c)} >= 0')")
        s("    return problems")
        s("")
        s("")
        s("def param_shapes(hyp):")
        s('    """The numpy shape of every param, from the dims in ``hyp``."""')
        s("    return {")
        for name, v in self.r.params.items():
            dims = [known(d) for d in v.shape]
            if v.kind == "spd":
                dims += [known(v.elem_dims[0])] * 2
            elif v.kind not in ("cat",):
                dims += [known(d) for d in v.elem_dims]
            s(f'        "{name}": ({", ".join(f"int({d})" for d in dims)}{"," if len(dims) == 1 else ""}),')
        s("    }")

    # ------------------------------------------------------------------ prepare
    def prepare(self, s):
        dense = [e for e in self.r.emissions if e.kind in ("scalar", "mvnormal")]
        s("")
        s("")
        s("def centring(data, hyp):")
        s('    """The shift of each real emission\'s data (its mean), fixed once per fit: the')
        s("    statistics are of x - shift, so that the E-step's eta . t(x) - A and the")
        s("    M-step's S2/N - (S1/N)^2 do not cancel when the data are far from 0, and the")
        s('    statistics of any two chunks prepared with the same centre add up."""')
        s.indent()
        s("centre = {}")
        for e in dense:
            x = e.factor.target
            if e.kind == "scalar" and self.form_of(e).shift is not None:
                over = (0,) + self.summed_positions(e)
                s(f'centre["{self.form_of(e).shift}"] = np.asarray(data["{x}"], dtype=float)'
                  f".mean(axis={over if len(over) > 1 else 0})")
            elif e.kind == "mvnormal":
                s(f'centre["shift_{x}"] = np.asarray(data["{x}"], dtype=float).mean(axis=0)')
        s("return centre")
        s.dedent()
        s("")
        s("")
        s("def prepare(data, hyp, centre=None):")
        s('    """The data of one data set or chunk, arranged for the E-step. Sufficient')
        s("    statistics t(x) are computed block by block when they are used (memory bounded")
        s("    by BLOCK_BYTES, not by N); sparse counts of categorical data are built here.")
        s("")
        s("    data: dict name -> array (0-based categories); hyp: dims and hypers by name;")
        s('    centre: the fit\'s shifts from ``centring`` (computed from ``data`` when None)."""')
        s.indent()
        s(f'n_rows = int(hyp["{self.plate.stop.id}"])' if hasattr(self.plate.stop, "id")
          else f"n_rows = int({known(self.plate.stop)})")
        s('st = {"n_rows": n_rows, "hyp": hyp,')
        s('      "centre": centring(data, hyp) if centre is None else dict(centre)}')
        for v in self.cm.vars.values():
            if v.role == "data" and v.kind == "cat" and self._is_covariate(v.name):
                size = known(v.elem_dims[0])
                s(f"# {v.name}: a covariate used as an index; indicator matrix ({size}, N)")
                s(f'{v.name} = np.asarray(data["{v.name}"], dtype=np.int64)')
                s(f'st["{v.name}"] = {v.name}')
                s(f'st["G_{v.name}"] = scipy.sparse.csr_matrix((np.ones(len({v.name})), '
                  f"({v.name}, np.arange(len({v.name})))), shape=(int({size}), len({v.name})))")
        for e in self.r.emissions:
            f = e.factor
            s(self.cite(f))
            x = f.target
            if e.kind == "scalar":
                s(f'st["data_{x}"] = np.asarray(data["{x}"], dtype=float)')
                s(f'st["shape_{x}"] = st["data_{x}"].shape')
            elif e.kind == "categorical" and e.via:
                size = known(self.cm.vars[x].elem_dims[0])
                s(f'{x} = np.asarray(data["{x}"], dtype=np.int64)')
                s(f'{e.via} = np.asarray(data["{e.via}"], dtype=np.int64)')
                s(f'st["X_{x}"] = scipy.sparse.csr_matrix((np.ones(len({x})), ({e.via}, {x})), '
                  f"shape=(n_rows, int({size})))  # counts of each {x} per {e.via}: t(x) "
                  f"summed over the items of a group")
            elif e.kind == "categorical":
                size = known(self.cm.vars[x].elem_dims[0])
                s(f'{x} = np.asarray(data["{x}"], dtype=np.int64)')
                s(f'st["{x}"] = {x}')
                s(f'st["G_{x}"] = scipy.sparse.csr_matrix((np.ones(n_rows), ({x}, '
                  f"np.arange(n_rows))), shape=(int({size}), n_rows))  # one-hot t(x), transposed")
            else:
                s(f'st["data_{x}"] = np.asarray(data["{x}"], dtype=float)')
        widths = []
        for e in dense:
            x = e.factor.target
            if e.kind == "mvnormal":
                widths.append(f'_mvn_width(st["data_{x}"].shape[1])')
            else:
                widths.append(f'{max(1, len(self.form_of(e).t))} * int(np.prod(st["shape_{x}"][1:]))')
        if widths:
            if any(e.kind == "mvnormal" for e in dense):
                self.runtime.update({"_mvn_width", "_mvn_stats", "_mvn_natural", "_unpack_sym"})
            s(f"width = max({', '.join(widths)}, 1)  # statistics per row")
            s('st["block"] = int(min(8192, max(64, BLOCK_BYTES // (8 * width))))  # rows per block')
        else:
            s('st["block"] = 8192')
        for e in dense:
            x = e.factor.target
            if e.kind == "scalar":
                s(f'st["logh_{x}"] = sum(_logh_{x}(st, lo, min(n_rows, lo + st["block"]))'
                  f' for lo in range(0, n_rows, st["block"]))  # sum of log h(x)')
        s("return st")
        s.dedent()
        for e in dense:
            self.block_t(s, e)

    def block_t(self, s, e):
        """``_t_x(st, lo, hi)``: t(x) of rows lo:hi of a dense emission's centred data, and
        for scalar families ``_logh_x`` (the sum of log h over the rows)."""
        x = e.factor.target
        s("")
        s("")
        if e.kind == "mvnormal":
            s(f"def _t_{x}(st, lo, hi):")
            s(f'    """t(x) = [x, x_i x_j (i <= j)] of rows lo:hi of {x} - shift: (B, P)."""')
            s(f'    return _mvn_stats(st["data_{x}"][lo:hi] - st["centre"]["shift_{x}"])')
            return
        fm = self.form_of(e)
        for name, what in ((f"_t_{x}", "t(x): a list of (B, ...) arrays"),
                           (f"_logh_{x}", "the sum of log h(x)")):
            s(f"def {name}(st, lo, hi):")
            s(f'    """{what} over rows lo:hi of {x}' + (f" - {fm.shift}" if fm.shift else "")
              + '."""')
            s.indent()
            s('hyp = st["hyp"]')
            s(f'{x} = st["data_{x}"][lo:hi]')
            if fm.shift is not None:
                over = (0,) + self.summed_positions(e)
                centre = f'st["centre"]["{fm.shift}"]'
                if len(over) > 1:
                    centre = f"np.expand_dims({centre}, {over})"
                s(f"{x} = {x} - {centre}  # the centred data (no cancellation)")
            exprs = list(fm.t) if name.startswith("_t") else [fm.logh]
            self._hyper_locals(s, set().union(*[t.free_symbols for t in exprs]) - {fm.x})
            if name.startswith("_t"):
                items = ", ".join(f"np.broadcast_to({py(t)}, {x}.shape)" for t in fm.t)
                s(f"return [{items}]  # " + ", ".join(str(t) for t in fm.t))
            else:
                s(f"return float(np.sum(np.broadcast_to({py(fm.logh)}, {x}.shape)))")
            s.dedent()
            s("")
            s("")

    def _is_covariate(self, name) -> bool:
        return name not in {f.target for f in self.cm.factors}

    def _hyper_locals_text(self, symbols) -> str:
        """The hyper locals of ``_hyper_locals`` on one line ('pass' when there are none)."""
        names = [str(y) for y in sorted(symbols, key=str)
                 if str(y) in self.cm.dims or self.cm.role(str(y)) == "hyper"]
        return "; ".join(f'{n} = hyp["{n}"]' for n in names) or "pass"

    def _hyper_locals(self, s, symbols):
        for sym in sorted(symbols, key=str):
            if str(sym) in self.cm.dims or self.cm.role(str(sym)) == "hyper":
                s(f'{sym} = hyp["{sym}"]')

    # ------------------------------------------------------------------ E-step
    def e_step(self, s):
        r = self.r
        s("")
        s("")
        s("def e_step(st, params, hyp):")
        s('    """Responsibilities and log likelihood (Linderman eq. 14, 39 and 44).')
        s("")
        s("    Returns resp (N, K), the expected sufficient statistics, and")
        s("    log p(data | params) in nats (with all constants).")
        s('    """')
        s.indent()
        s("n_comp = n_components(hyp)")
        s('n_rows = st["n_rows"]')
        s(self.cite(r.assign))
        ref = r.assign_ref
        if ref.axes == ():
            s(f'log_prior_z = log(params["{ref.param}"])  # (K,) log p(z = k)')
        else:
            cov = ref.axes[0].name
            s(f'log_prior_z = log(params["{ref.param}"])  # ({cov} groups, K)')
        const = []
        for e in r.emissions:
            self._e_natural(s, e, const)
        folded = [f"A_{e.factor.target}" for e in r.emissions if e.kind != "categorical"]
        if folded:
            s(f"log_prior_z = log_prior_z - {' - '.join(folded)}  # fold every -A(theta_k) "
              "into the per-k constant")
        s("resp_t = np.empty((n_comp, n_rows))  # responsibilities, stored k by k")
        s("ess = {}")
        s("loglik = 0.0")
        s('for lo in range(0, n_rows, st["block"]):')
        s.indent()
        s('hi = min(n_rows, lo + st["block"])')
        s("log_joint = resp_t[:, lo:hi]  # (K, B) log p(x_n, z_n = k), normalised in place below")
        if ref.axes == ():
            s("log_joint[...] = log_prior_z[:, None]  # log p(z_n = k)")
        else:
            s(f'log_joint[...] = log_prior_z[st["{ref.axes[0].name}"][lo:hi]].T  # log p(z_n = k | group)')
        dense = [e.factor.target for e in r.emissions if e.kind in ("scalar", "mvnormal")]
        if dense:
            s("t_block = {" + ", ".join(f'"{x}": _t_{x}(st, lo, hi)' for x in dense)
              + "}  # t(x) of this block only")
        else:
            s("t_block = {}")
        for e in r.emissions:
            self._e_block(s, e)
        s("loglik += float(_log_normalise(log_joint).sum())  # r[n, k] and log p(x_n) (eq. 39, 44)")
        s("block_stats(ess, t_block, log_joint)  # while the block is in cache")
        s.dedent()
        s(f"loglik += {' + '.join(const) if const else '0.0'}  # log h(x) terms")
        s("resp = resp_t.T  # (N, K)")
        s("return resp, finish_stats(ess, st, resp), loglik")
        s.dedent()

    def _e_natural(self, s, e, const):
        f, x = e.factor, e.factor.target
        s(self.cite(f))
        if e.kind == "scalar":
            fm = self.form_of(e)
            self.on_grid(s, e, e.refs, lambda p: f'params["{p}"]')
            self.on_grid(s, e, e.knowns, lambda h: f'np.asarray(hyp["{h}"], dtype=float)')
            if fm.shift is not None:
                s(f'{fm.shift} = {self.shift_on_grid(e)}  # the statistics are of {x} - {fm.shift}')
            syms = set().union(*[q.free_symbols for q in (*fm.eta, fm.A)])
            self._hyper_locals(s, {y for y in syms if str(y) not in fm.ref_axes})
            refs = [r.param for r in (*e.refs, *e.knowns)]
            grid = f"np.broadcast_shapes({', '.join(f'np.shape({p})' for p in refs)})" \
                if refs else "()"
            for i, eta in enumerate(fm.eta):
                s(f"eta_{x}_{i} = np.broadcast_to({py(eta)}, {grid})  # natural parameter "
                  f"of t_{i} = {fm.t[i]}")
            s(f"A_{x} = np.broadcast_to({py(fm.A)}, {grid})  # log-normaliser A(theta)")
            letters = self.grid_letters(e)
            keep = "k" if "k" in letters else ""
            mult = self.multiplicity(e)
            s(f'A_{x} = np.einsum("{letters}->{keep}", A_{x})'
              + (f" * ({mult})  # once per element of the summed inner loops" if mult else ""))
            const.append(f'st["logh_{x}"]')
        elif e.kind == "categorical":
            ref = e.refs[0]
            s(f'log_{ref.param} = log(params["{ref.param}"])  # natural parameters log p')
        else:
            gu = self.gaussian_of(e)
            s(f'mean_{x} = np.atleast_2d({self.slot_value(gu.mean)}) - st["centre"]["shift_{x}"]')
            s(f"spread_{x} = np.asarray({self.slot_value(gu.spread)}, dtype=float)")
            s(f"spread_{x} = spread_{x}[None] if spread_{x}.ndim == 2 else spread_{x}")
            s(f"G_{x} = max(len(mean_{x}), len(spread_{x}))  # the cells")
            s(f"eta_{x}, A_{x} = _mvn_natural(np.broadcast_to(mean_{x}, (G_{x}, mean_{x}.shape[1])), "
              f"{gu.keyword}=np.broadcast_to(spread_{x}, (G_{x},) + spread_{x}.shape[1:]))"
              "  # eta (G, P), A (G,)")

    def slot_value(self, slot) -> str:
        """numpy source for an MvNormal argument (a param, scaled or shifted, or a known)."""
        if slot.param is None:
            return known(slot.known)
        value = f'params["{slot.param}"]'
        if slot.scale is not None:
            value = f"{value} {'/' if slot.divide else '*'} ({known(slot.scale)})"
        if slot.offset is not None:
            value = f"{'-' if slot.sign < 0 else ''}{value} + ({known(slot.offset)})"
        return value

    def _e_block(self, s, e):
        x = e.factor.target
        if e.kind == "scalar":
            fm = self.form_of(e)
            tl, el = self.data_letters(e), self.grid_letters(e)
            out = "nk" if "k" in el else "n"
            fast = self.matmul_layout(e)
            for i in range(len(fm.t)):
                t = self.summed_t(e, f't_block["{x}"][{i}]')
                if fast:
                    s(f"log_joint += eta_{x}_{i}.reshape(len(eta_{x}_{i}), -1) @ "
                      f"{t}.reshape(len({t}), -1).T  # eta . t(x), {x}: (K, M) @ (M, B)")
                elif "k" in el:
                    s(f'log_joint += np.einsum("{tl},{el}->kn", t_block["{x}"][{i}], '
                      f"eta_{x}_{i}, optimize=True)  # eta . t(x), {x}")
                else:
                    s(f'log_joint += np.einsum("{tl},{el}->n", t_block["{x}"][{i}], '
                      f"eta_{x}_{i}, optimize=True)[None, :]  # eta . t(x), {x}")
        elif e.kind == "categorical" and e.via:
            ref = e.refs[0]
            s(f'log_joint += (st["X_{x}"][lo:hi] @ log_{ref.param}.T).T  # sum over the group\'s '
              f"{x}: counts @ log p (sparse: O(non-zeros))")
        elif e.kind == "categorical":
            ref = e.refs[0]
            if ref.uses_latent:
                s(f'log_joint += log_{ref.param}[:, st["{x}"][lo:hi]]  # log p[k, {x}_n]')
            else:
                s(f'log_joint += log_{ref.param}[st["{x}"][lo:hi]][None, :]  # log p[{x}_n]')
        else:
            gu = self.gaussian_of(e)
            if gu.axes:
                s(f'log_joint += eta_{x} @ t_block["{x}"].T  # (K, P) @ (P, B): eta . t(x), eq. 12')
            else:
                s(f'log_joint += eta_{x}[:1] @ t_block["{x}"].T  # the same for every k')

    def expected_stats(self, s):
        """``block_stats`` (dense statistics, accumulated block by block while the block is
        in cache), ``finish_stats`` (sparse counts and derived counts, once) and
        ``expected_stats`` (both, from a full responsibility matrix)."""
        r = self.r
        z = r.latent.name
        s("")
        s("")
        s("def block_stats(ess, t_block, resp_t):")
        s('    """Add one block to the expected sufficient statistics (eq. 50):')
        s("    phi_N,k += sum_n r[n,k] t(x_n); t_block: the block's t(x) by datum, resp_t (K, B).")
        s('    """')
        s.indent()
        ref = r.assign_ref
        if ref.axes == ():
            s(self.cite(r.assign))
            s(f'_add(ess, "C_{z}", resp_t.sum(axis=1))  # expected counts N_k')
        for e in r.emissions:
            x = e.factor.target
            if e.kind == "scalar":
                s(self.cite(e.factor))
                fm = self.form_of(e)
                tl, el = self.data_letters(e), self.grid_letters(e)
                fast = self.matmul_layout(e)
                for i in range(len(fm.t)):
                    t = self.summed_t(e, f't_block["{x}"][{i}]')
                    if fast:
                        s(f'_add(ess, "S_{x}_{i}", (resp_t @ {t}.reshape(len({t}), -1))'
                          f'.reshape((len(resp_t),) + {t}.shape[1:]))  # (K, B) @ (B, M)')
                    elif "k" in el:
                        s(f'_add(ess, "S_{x}_{i}", np.einsum("kn,{tl}->{el}", resp_t, '
                          f't_block["{x}"][{i}], optimize=True))')
                    else:
                        s(f'_add(ess, "S_{x}_{i}", np.einsum("{tl}->{el}", t_block["{x}"][{i}]))')
            elif e.kind == "mvnormal":
                s(self.cite(e.factor))
                gu = self.gaussian_of(e)
                if gu.axes:
                    s(f'_add(ess, "S_{x}", resp_t @ t_block["{x}"])  # (K, B) @ (B, P) = R^T T')
                else:
                    s(f'_add(ess, "S_{x}", t_block["{x}"].sum(axis=0)[None])')
        s("return ess")
        s.dedent()
        s("")
        s("")
        s("def finish_stats(ess, st, resp):")
        s('    """The statistics that need all rows at once (grouped and one-hot counts)."""')
        s.indent()
        if ref.axes != ():
            s(self.cite(r.assign))
            s(f'ess["C_{z}"] = np.asarray(st["G_{ref.axes[0].name}"] @ resp)'
              "  # counts per group and k")
        s(f'count_k = ess["C_{z}"] if ess["C_{z}"].ndim == 1 else ess["C_{z}"].sum(axis=0)')
        for e in r.emissions:
            x = e.factor.target
            s(self.cite(e.factor))
            if e.kind == "scalar" and self.form_of(e).shift is not None:
                shift = self.form_of(e).shift
                s(f'ess["{shift}"] = {self.shift_on_grid(e)}  # statistics of the centred data')
            if e.kind == "scalar" and not self.form_of(e).t:
                s("# no unknown param: no statistics (its log density is a constant)")
            elif e.kind == "scalar":
                el = self.grid_letters(e)
                shape = f'ess["S_{x}_0"].shape'
                mult = self.multiplicity(e)
                times = f" * ({mult})" if mult else ""
                if "k" in el:
                    s(f'ess["N_{x}"] = np.broadcast_to(np.expand_dims(count_k, '
                      f'{tuple(i for i, c in enumerate(el) if c != "k")}), {shape}){times}')
                else:
                    s(f'ess["N_{x}"] = np.full({shape}, float(st["n_rows"])){times}')
            elif e.kind == "categorical" and e.via:
                s(f'ess["C_{x}"] = np.asarray(st["X_{x}"].T @ resp).T  # (K, V) expected counts')
            elif e.kind == "categorical":
                ref_e = e.refs[0]
                if ref_e.uses_latent:
                    s(f'ess["C_{x}"] = np.asarray(st["G_{x}"] @ resp).T  # (K, V) expected counts')
                else:
                    s(f'ess["C_{x}"] = np.asarray(st["G_{x}"].sum(axis=1)).ravel()')
            else:
                gu = self.gaussian_of(e)
                s(f'ess["shift_{x}"] = st["centre"]["shift_{x}"]  # the statistics are of x - shift')
                if gu.axes:
                    s(f'ess["N_{x}"] = count_k')
                else:
                    s(f'ess["N_{x}"] = np.array([float(st["n_rows"])])')
        s("return ess")
        s.dedent()
        s("")
        s("")
        s("def expected_stats(st, resp):")
        s('    """Expected sufficient statistics from a full responsibility matrix (N, K)."""')
        s('    ess = {}')
        s('    for lo in range(0, st["n_rows"], st["block"]):')
        s('        hi = min(st["n_rows"], lo + st["block"])')
        dense = [e.factor.target for e in r.emissions if e.kind in ("scalar", "mvnormal")]
        s("        t_block = {" + ", ".join(f'"{x}": _t_{x}(st, lo, hi)' for x in dense) + "}")
        s('        block_stats(ess, t_block, resp[lo:hi].T)')
        s('    return finish_stats(ess, st, resp)')
        s("")
        s("")
        s("def merge_stats(a, b):")
        s('    """The statistics of the union of two chunks: every field is a sum over items')
        s("    (stats(A u B) = stats(A) + stats(B)), except the shifts, which are the fit's own")
        s('    and must agree."""')
        s("    out = {}")
        s("    for key, value in a.items():")
        s('        if key.startswith("shift_"):')
        s("            if not np.array_equal(value, b[key]):")
        s('                raise ValueError(f"chunks prepared with different centres ({key})")')
        s("            out[key] = value")
        s("        else:")
        s("            out[key] = np.asarray(value) + np.asarray(b[key])")
        s("    return out")

    # ------------------------------------------------------------------ init / fit
    def init_and_fit(self, s):
        dense = [e.factor.target for e in self.r.emissions if e.kind != "categorical"]
        s("")
        s("")
        s("def init(st, data, hyp, rng, reg=1e-6):")
        s('    """A data-driven start: k-means++ hard assignments on the modelled data (or')
        s('    random soft assignments for categorical data), then one M-step."""')
        s.indent()
        s("n_comp = n_components(hyp)")
        if dense:
            feats = ", ".join(f'np.asarray(data["{x}"], dtype=float).reshape(st["n_rows"], -1)'
                              for x in dense)
            s(f"features = np.concatenate([{feats}], axis=1)")
            s("resp = _kmeanspp_resp(features, n_comp, rng)")
        else:
            s('resp = rng.dirichlet(np.ones(n_comp), size=st["n_rows"])')
        if self.us.ecm_cycle:
            s("ess = expected_stats(st, resp)")
            s("params = m_step(ess, None, hyp, reg)")
            s("for _ in range(10):  # the param groups read each other: a few ECM sweeps")
            s("    params = m_step(ess, params, hyp, reg)")
            s("return params")
        else:
            s("return m_step(expected_stats(st, resp), None, hyp, reg)")
        s.dedent()
        s("")
        s("")
        s("def elbo(st, params, hyp):")
        s('    """log p(data | params) + log p(params): the ELBO right after an exact E-step."""')
        s("    return e_step(st, params, hyp)[2] + log_prior(params, hyp)")
        s("")
        s("")
        s("def fit(data, hyp, max_iter=100, tol=1e-8, seed=0, reg=1e-6):")
        s('    """A minimal batch EM loop (emdsl.runtime adds restarts and diagnostics)."""')
        s("    st = prepare(data, hyp)")
        s("    params = init(st, data, hyp, np.random.default_rng(seed), reg)")
        s("    trace = []")
        s("    for _ in range(max_iter):")
        s("        resp, ess, loglik = e_step(st, params, hyp)")
        s("        trace.append(loglik + log_prior(params, hyp))")
        s("        params = m_step(ess, params, hyp, reg)")
        s("        if len(trace) > 1 and abs(trace[-1] - trace[-2]) <= tol * abs(trace[-1]):")
        s("            break")
        s("    return params, resp, np.array(trace)")
