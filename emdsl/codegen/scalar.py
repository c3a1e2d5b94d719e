"""The emitter of a scalar exponential-family emission (``y[n] ~ Poisson(rate[z[n]])``,
and the element loops of a factorised diagonal MvNormal).

Its statistics t(x) are elementwise functions of the datum, one array per statistic with
the data's inner axes; its params live on a grid of cells (the latent axis 'k' and inner
loop axes).  In einsum letters: data 'n' + one letter per inner loop, cells 'k' + loop
letters; inner loops no param depends on are summed.
"""
from __future__ import annotations

import string

from .util import py


class ScalarEmitter:
    dense = True   # t(x) computed per block

    def __init__(self, e, w):
        self.e, self.w = e, w
        self.x = e.factor.target
        self.fm = next(fm for fm in w.us.forms if fm.emission is e)
        # y[t] ~ F(theta[z[doc[t]]]): items of their own plate, each of a group (a row);
        # a row's statistics are those of its items summed, A(theta) counted once per item
        self.via = e.via

    # ------------------------------------------------------------------ letters
    def data_letters(self) -> str:
        """einsum letters of the data axes: 'n', then one per inner loop."""
        free = [c for c in string.ascii_lowercase if c not in "nk"]
        return "n" + "".join(free[:len(self.e.inner)])

    def letters(self, axes) -> str:
        """einsum letters of ``axes`` (a param's or the cell grid's)."""
        loop_letter = dict(zip((lp.var for lp in self.e.inner), self.data_letters()[1:]))
        return "".join("k" if a.kind == "latent" else loop_letter[a.name] for a in axes)

    def grid_letters(self) -> str:
        return self.letters(self.fm.axes)

    def summed_positions(self) -> tuple:
        """Axes of the data array (0 = items) of the inner loops no param depends on."""
        return tuple(1 + i for i, lp in enumerate(self.e.inner) if lp.var in self.fm.summed)

    def shift_positions(self) -> tuple:
        """Axes of the data array the shift is constant across: the items, the summed
        loops and the loops a location param is shared across."""
        return (0,) + tuple(1 + i for i, lp in enumerate(self.e.inner)
                            if lp.var in self.fm.summed or lp.var in self.fm.shift_shared)

    def matmul_layout(self) -> bool:
        """Whether the cells are 'k' then the data's unsummed inner axes in order: the
        E-step and the statistics are then plain matrix products."""
        summed = self.summed_positions()
        inner = "".join(c for i, c in enumerate(self.data_letters()) if i and i not in summed)
        return self.grid_letters() == "k" + inner

    def data_slot(self) -> int:
        """The slot of the block buffer that holds the (centred) data: 0 when statistic 0
        is the datum itself, else one after the statistics."""
        return 0 if self.fm.t and self.fm.t[0] == self.fm.x else len(self.fm.t)

    def slots(self) -> int:
        """Slots of the block buffer: the statistics, and the centred data when it is
        not one of them."""
        extra = self.fm.shift is not None and self.data_slot() == len(self.fm.t)
        return max(1, len(self.fm.t) + extra)

    @staticmethod
    def slot_view(i) -> str:
        """Source of slot ``i`` of the block buffer ``buf`` (S, ..., B) seen as a (B, ...)
        array like the data's rows (a view)."""
        return f"np.moveaxis(buf[{i}], -1, 0)"

    def stat(self, i) -> str:
        """Source of statistic ``i`` of the block, a (B, ...) array (a view)."""
        return f'np.moveaxis(t_block["{self.x}"][{i}], -1, 0)'

    def summed_t(self, src) -> str:
        summed = self.summed_positions()
        return f"{src}.sum(axis={summed})" if summed else src

    def multiplicity(self) -> str:
        """Source for the number of data elements per item and cell (the product of the
        summed inner loops' sizes), '' when it is 1."""
        return " * ".join(f'st["shape_{self.x}"][{i}]' for i in self.summed_positions())

    def on_grid(self, s, refs, source):
        """Locals for params / indexed hypers laid out on the cells."""
        grid = self.grid_letters()
        for r in refs:
            own = self.letters(r.axes)
            val = source(r.param)
            s(f"{r.param} = {val}" if own == grid else
              f'{r.param} = _on_grid({val}, "{own}", "{grid}")  # on the cells [{grid}]')

    def shift_on_grid(self) -> str:
        """Source for the data shift (one per unsummed inner index) laid out on the cells
        (the latent axis a broadcast axis of length 1)."""
        over = self.shift_positions()
        letters = self.data_letters()
        inner = "".join(c for i, c in enumerate(letters) if i not in over)
        grid = self.grid_letters()
        src = f'st["centre"]["{self.fm.shift}"]'
        if inner:  # laid out like the cells: its own loops, length 1 elsewhere
            src = f'_on_grid({src}, "{inner}", "{grid}")'
        elif grid:
            src = f'_on_grid({src}, "", "{grid}")'
        return src

    # ------------------------------------------------------------------ prepare
    def centre(self, s):
        if self.fm.shift is not None:
            over = self.shift_positions()
            s(f'centre["{self.fm.shift}"] = np.asarray(data["{self.x}"], dtype=float)'
              f".mean(axis={over if len(over) > 1 else 0})")

    def prepare(self, s):
        s(f'st["data_{self.x}"] = np.asarray(data["{self.x}"], dtype=float)')
        s(f'st["shape_{self.x}"] = st["data_{self.x}"].shape')
        if self.via:
            x = self.x
            s(f'st["via_{x}"] = np.asarray(data["{self.via}"], dtype=np.int64)  # the row (group) '
              f"of each {x}")
            s(f'st["count_{x}"] = np.bincount(st["via_{x}"], minlength=n_rows).astype(float)'
              f"  # the {x} of each row")

    def features(self) -> str:
        """Source of the (rows, F) array k-means++ starts from: the datum per row, or for
        items of a group the mean of its items."""
        x = self.x
        if self.via:
            return (f'(np.bincount(st["via_{x}"], weights=st["data_{x}"], minlength=st['
                    f'"n_rows"]) / np.maximum(st["count_{x}"], 1.0))[:, None]')
        return f'np.asarray(data["{x}"], dtype=float).reshape(st["n_rows"], -1)'

    def width(self) -> str:
        return f'{max(1, len(self.fm.t))} * int(np.prod(st["shape_{self.x}"][1:]))'

    def after_blocks(self, s):
        if self.fm.shift is not None:
            over = self.shift_positions()
            s(f'st["centre_cols_{self.x}"] = np.moveaxis(np.expand_dims(st["centre"]'
              f'["{self.fm.shift}"], {over}), 0, -1)  # the shift laid out like the block '
              "buffer (..., 1): subtracted along its rows")
        s(f'st["tbuf_{self.x}"] = np.empty(({self.slots()},) + st["shape_{self.x}"][1:] + '
          '(st["block"],))  # one block of each t(x) (and of the centred data), statistic '
          "by element by row: a block's statistics are one (S M, B) operand of one matrix "
          "product, and the buffer is reused by every block")
        if self.via:
            self.group_sums(s)
        else:
            s(f'st["logh_rows_{self.x}"] = np.concatenate([_logh_{self.x}(st, lo, min(n_rows, '
              f'lo + st["block"])) for lo in range(0, n_rows, st["block"])] or [np.zeros(0)])'
              "  # log h(x) per row")
        s(f'st["logh_{self.x}"] = float(st["logh_rows_{self.x}"].sum())  # sum of log h(x)')

    def group_sums(self, s):
        """Rows that are groups of items: each statistic and log h(x) summed over the
        items of each row, once (the items' t(x) in blocks of the buffer's size)."""
        x, S = self.x, len(self.fm.t)
        s(f'st["gsum_{x}"] = np.zeros(({S}, n_rows))  # t(x) summed over the items of each row')
        s(f'st["logh_rows_{x}"] = np.zeros(n_rows)  # log h(x) summed per row')
        s(f'n_{x} = len(st["data_{x}"])')
        s(f'for lo in range(0, n_{x}, st["block"]):')
        s(f'    hi = min(n_{x}, lo + st["block"])')
        s(f'    rows_{x} = st["via_{x}"][lo:hi]')
        if S:
            s(f'    t_{x} = _items_t_{x}(st, lo, hi).reshape({S}, hi - lo)')
            s(f"    for i in range({S}):")
            s(f'        st["gsum_{x}"][i] += np.bincount(rows_{x}, weights=t_{x}[i], '
              "minlength=n_rows)")
        s(f'    st["logh_rows_{x}"] += np.bincount(rows_{x}, weights=_items_logh_{x}(st, lo, hi), '
          "minlength=n_rows)")

    def functions(self, s):
        """``_t_x(st, lo, hi)`` (t(x) of rows lo:hi of the centred data) and ``_logh_x``."""
        x, fm = self.x, self.fm
        items = "_items" if self.via else ""   # rows that are groups: the items' own first
        for name, what in ((f"{items}_t_{x}", "t(x): an (S, ..., B) array, statistic by the "
                                              "data's inner axes by row (a view of the block "
                                              f'buffer st["tbuf_{x}"]: valid until the next '
                                              "block's call)"),
                           (f"{items}_logh_{x}", "log h(x) of each row (B,)")):
            s("")
            s("")
            s(f"def {name}(st, lo, hi):")
            s(f'    """{what} over {"items" if self.via else "rows"} lo:hi of {x}'
              + (f" - {fm.shift}" if fm.shift else "") + '."""')
            s.indent()
            into = "_t_" in name
            if not into and not fm.logh.free_symbols:   # a number: the data are not read
                s(f"return np.full(hi - lo, ({py(fm.logh)}) * "
                  f'int(np.prod(st["shape_{x}"][1:])))  # the same for every row')
                s.dedent()
                continue
            s('hyp = st["hyp"]')
            s(f'{x} = st["data_{x}"][lo:hi]')
            if into:
                s(f'buf = st["tbuf_{x}"][..., :hi - lo]')
            if fm.shift is not None and into:
                s(f'{x} = _to_columns({x}, st["centre_cols_{x}"], buf[{self.data_slot()}])'
                  "  # the centred data (no cancellation), in the buffer's layout")
            elif fm.shift is not None:
                s(f'{x} = {x} - np.expand_dims(st["centre"]["{fm.shift}"], '
                  f"{self.shift_positions()})  # the centred data (no cancellation)")
            elif into and self.data_slot() == 0:
                s(f"{x} = _to_columns({x}, 0.0, buf[0])  # statistic 0 is the datum itself")
            exprs = list(fm.t) if into else [fm.logh]
            used = set().union(*[t.free_symbols for t in exprs])
            if fm.shift is not None and fm.shift in used:  # log h of a known mean's data
                over = self.shift_positions()
                s(f'{fm.shift} = np.expand_dims(st["centre"]["{fm.shift}"], {over})')
            self.w._hyper_locals(s, used - {fm.x})
            if into:
                for i, t in enumerate(fm.t):
                    if i or self.data_slot():
                        s(_into(t, fm.x, x, self.slot_view(i)) + f"  # t_{i} = {t}")
                s(f"return buf[:{len(fm.t)}]  # (S, ..., B): " + ", ".join(str(t) for t in fm.t))
            else:
                s(f"return np.broadcast_to({py(fm.logh)}, {x}.shape).reshape(hi - lo, -1)"
                  ".sum(axis=1)")
            s.dedent()
        if self.via:
            s("")
            s("")
            s(f"def _t_{x}(st, lo, hi):")
            s(f'    """t(x) summed over the {x} of each of rows lo:hi (groups): (S, B), a view."""')
            s(f'    return st["gsum_{x}"][:, lo:hi]')

    # ------------------------------------------------------------------ E-step
    def natural(self, s, const):
        e, fm, x = self.e, self.fm, self.x
        etas, A = (fm.q_eta, fm.q_A) if fm.q_eta else (fm.eta, fm.A)
        if fm.q_eta:   # variational globals: q's parameters on the cells
            refs = self.w.vb.scalar_q_locals(s, self, e.refs)
        else:
            self.on_grid(s, e.refs, lambda p: f'params["{p}"]')
            refs = [r.param for r in e.refs]
        self.on_grid(s, e.knowns, lambda h: f'np.asarray(hyp["{h}"], dtype=float)')
        refs += [r.param for r in e.knowns]
        if fm.shift is not None:
            s(f'{fm.shift} = {self.shift_on_grid()}  # the statistics are of {x} - {fm.shift}')
        if fm.q_eta:
            self.w.vb.scalar_expectations(s, fm, fm.shift)
        syms = set().union(*[q.free_symbols for q in (*etas, A)])
        self.w._hyper_locals(s, {y for y in syms if str(y) not in fm.ref_axes})
        grid = f"np.broadcast_shapes({', '.join(f'np.shape({p})' for p in refs)})" \
            if refs else "()"
        for i, eta in enumerate(etas):
            s(f"eta_{x}_{i} = np.broadcast_to({py(eta)}, {grid})  # natural parameter "
              f"of t_{i} = {fm.t[i]}")
        if self.stacked():
            parts = ", ".join(f"eta_{x}_{i}.reshape(len(eta_{x}_{i}), -1)"
                              for i in range(len(etas)))
            s(f"eta_{x} = np.concatenate([{parts}], axis=1)  # (K, S M): every statistic's, "
              "in the order of the block buffer")
        s(f"A_{x} = np.broadcast_to({py(A)}, {grid})  # log-normaliser A(theta)"
          + (", its expectation under q" if fm.q_eta else ""))
        letters = self.grid_letters()
        keep = "k" if "k" in letters else ""
        mult = self.multiplicity()
        s(f'A_{x} = np.einsum("{letters}->{keep}", A_{x})'
          + (f" * ({mult})  # once per element of the summed inner loops" if mult else ""))
        const.append(x)   # its log h(x): st["logh_<x>"], per row st["logh_rows_<x>"]
        if self.via:   # once per item: n_row A(theta_k), a term of each block
            return None
        return f"A_{x}"   # folded into the per-k constant

    def stacked(self) -> bool:
        """Whether the E-step and the statistics are one matrix product each over all the
        statistics of a block: the cells are 'k' then every inner axis of the data."""
        return self.matmul_layout() and not self.summed_positions() and bool(self.fm.t)

    def block(self, s):
        x = self.x
        if self.stacked():   # eta stacked before the loop: one product for every statistic
            a, b = f"eta_{x}", f't_block["{x}"].reshape(-1, hi - lo)'
            self.w.log_joint_term(s, f"{a} @ {b}", f"eta . t(x), {x}: (K, S M) @ (S M, B)",
                                  (a, b))
        else:
            self.unstacked_terms(s)
        if self.via:   # not folded into the per-k constant: it counts each row's items
            self.w.log_joint_term(s, f'-A_{x}[:, None] * st["count_{x}"][lo:hi][None, :]',
                                  f"- n_row A(theta_k): A once per {x} of the row")

    def unstacked_terms(self, s):
        """eta . t(x) statistic by statistic (layouts one product does not cover)."""
        x, tl, el = self.x, self.data_letters(), self.grid_letters()
        for i in range(len(self.fm.t)):
            if self.matmul_layout():
                t = f"t_{x}_{i}"
                s(f"{t} = {self.summed_t(self.stat(i))}  # (B, ...) statistic {i}, once per block")
                a, b = f"eta_{x}_{i}.reshape(len(eta_{x}_{i}), -1)", f"{t}.reshape(len({t}), -1).T"
                self.w.log_joint_term(s, f"{a} @ {b}", f"eta . t(x), {x}: (K, M) @ (M, B)",
                                      (a, b))
            elif "k" in el:
                self.w.log_joint_term(s, f'np.einsum("{tl},{el}->kn", {self.stat(i)}, '
                                      f"eta_{x}_{i}, optimize=True)", f"eta . t(x), {x}")
            else:
                self.w.log_joint_term(s, f'np.einsum("{tl},{el}->n", {self.stat(i)}, '
                                      f"eta_{x}_{i}, optimize=True)[None, :]",
                                      f"eta . t(x), {x}")

    # ------------------------------------------------------------------ statistics
    def stats(self, s):
        x, tl, el = self.x, self.data_letters(), self.grid_letters()
        if self.stacked():
            s(f'T_{x} = t_block["{x}"].reshape(-1, resp_t.shape[1])  # (S M, B)')
            s(f"S_{x} = _stats_product(resp_t, T_{x}).reshape((len(resp_t),) + "
              f't_block["{x}"].shape[:-1])  # R^T T: every statistic in one product')
            for i in range(len(self.fm.t)):
                s(f'_add(ess, "S_{x}_{i}", S_{x}[:, {i}])')
            return
        for i in range(len(self.fm.t)):
            if self.matmul_layout():
                t = f"t_{x}_{i}"
                s(f"{t} = {self.summed_t(self.stat(i))}  # (B, ...) statistic {i}, once per block")
                s(f'_add(ess, "S_{x}_{i}", (resp_t @ {t}.reshape(len({t}), -1))'
                  f'.reshape((len(resp_t),) + {t}.shape[1:]))  # (K, B) @ (B, M)')
            elif "k" in el:
                s(f'_add(ess, "S_{x}_{i}", np.einsum("kn,{tl}->{el}", resp_t, '
                  f'{self.stat(i)}, optimize=True))')
            else:
                s(f'_add(ess, "S_{x}_{i}", np.einsum("{tl}->{el}", {self.stat(i)}))')

    def finish(self, s):
        x, fm = self.x, self.fm
        if fm.shift is not None:
            s(f'ess["{fm.shift}"] = {self.shift_on_grid()}  # statistics of the centred data')
        if not fm.t:
            s("# no unknown param: no statistics (its log density is a constant)")
            return
        el = self.grid_letters()
        shape = f'ess["S_{x}_0"].shape'
        mult = self.multiplicity()
        times = f" * ({mult})" if mult else ""
        if self.via:   # the items of the rows, by component
            s(f'ess["N_{x}"] = np.broadcast_to(resp.T @ st["count_{x}"], {shape})  # '
              f"expected {x} per component")
        elif "k" in el:
            s(f'ess["N_{x}"] = np.broadcast_to(np.expand_dims(count_k, '
              f'{tuple(i for i, c in enumerate(el) if c != "k")}), {shape}){times}')
        else:
            s(f'ess["N_{x}"] = np.full({shape}, float(st["n_rows"])){times}')


def _into(t, sym, x: str, out: str) -> str:
    """A statement writing statistic ``t`` of the datum symbol ``sym`` (the block's values
    in ``x``) into ``out`` (its slot of the block buffer): one ufunc of x (x^2, 1/x, log x,
    exp x) writes there directly; other statistics are computed as written and copied in
    (broadcast over the rows when they do not depend on x)."""
    import sympy as sp
    unary = {sym: f"np.copyto({out}, {x})", sym ** 2: f"np.multiply({x}, {x}, out={out})",
             1 / sym: f"np.reciprocal({x}, out={out})",
             sp.log(sym): f"np.log({x}, out={out})", sp.exp(sym): f"np.exp({x}, out={out})"}
    if t in unary:
        return unary[t]
    return f"{out}[...] = {py(t)}"
