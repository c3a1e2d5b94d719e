"""Emitters of the vector emissions: Categorical (one item each, or counts per group when
the latent is selected through a category datum, ``phi[z[doc[t]]]``) and MvNormal (t(x) =
[x, x_i x_j] per block, one matrix product with the cells' natural parameters)."""
from __future__ import annotations

from .util import known


class CategoricalEmitter:
    dense = False

    def __init__(self, e, w):
        self.e, self.w, self.x = e, w, e.factor.target
        self.ref = e.refs[0]

    def centre(self, s):
        pass

    def prepare(self, s):
        x, e = self.x, self.e
        size = known(self.w.cm.vars[x].elem_dims[0])
        s(f'{x} = np.asarray(data["{x}"], dtype=np.int64)')
        if e.via:
            s(f'{e.via} = np.asarray(data["{e.via}"], dtype=np.int64)')
            s(f'st["X_{x}"] = scipy.sparse.csr_matrix((np.ones(len({x})), ({e.via}, {x})), '
              f"shape=(n_rows, int({size})))  # counts of each {x} per {e.via}: t(x) "
              f"summed over the items of a group")
        else:
            s(f'st["{x}"] = {x}')
            s(f'st["G_{x}"] = scipy.sparse.csr_matrix(({self.w.row_weights("n_rows")}, ({x}, '
              f"np.arange(n_rows))), shape=(int({size}), n_rows))  # one-hot t(x), transposed")

    def natural(self, s, const):
        self.write_log_table(s)
        return None   # A = 0: p is normalised

    def write_log_table(self, s, cols=None):
        """Write ``log_<p>`` (K, cells): E_q[log p] of a variational factor, log p of a
        param; with ``cols`` (the source of an index array) only those cells. Returns
        its name."""
        p = self.ref.param
        if p in self.w.us.variational:
            s(f"log_{p} = {self.w.vb.expected_log_simplex(p, cols)}  # E_q[log p]: the natural "
              "parameters' expectation" + (" (the cells used)" if cols else ""))
        elif cols:
            s(f'log_{p} = log(np.asarray(params["{p}"])[..., {cols}])  # log p of the cells used')
        else:
            s(f'log_{p} = log(params["{p}"])  # natural parameters log p')
        return f"log_{p}"

    def table_lookup(self):
        """The source of the items' cells (N,) when an item's term is one entry of a
        (K, cells) table, log p[k, x_n]; None otherwise."""
        if self.e.via or not self.ref.uses_latent:
            return None
        return f'st["{self.x}"]'

    def block(self, s):
        x, p = self.x, self.ref.param
        if self.e.via:
            self.w.log_joint_term(s, f'(st["X_{x}"][lo:hi] @ log_{p}.T).T',
                                  f"sum over the group's {x}: counts @ log p "
                                  "(sparse: O(non-zeros))")
        elif self.ref.uses_latent:
            self.w.log_joint_term(s, f'log_{p}[:, st["{x}"][lo:hi]]', f"log p[k, {x}_n]")
        else:
            self.w.log_joint_term(s, f'log_{p}[st["{x}"][lo:hi]][None, :]', f"log p[{x}_n]")

    def stats(self, s):
        pass   # counts need all rows: finish

    def finish(self, s):
        x = self.x
        if self.e.via:
            s(f'ess["C_{x}"] = np.asarray(st["X_{x}"].T @ resp).T  # (K, V) expected counts')
        elif self.ref.uses_latent:
            s(f'ess["C_{x}"] = np.asarray(st["G_{x}"] @ resp).T  # (K, V) expected counts')
        else:
            s(f'ess["C_{x}"] = np.asarray(st["G_{x}"].sum(axis=1)).ravel()')


class MvNormalEmitter:
    """Per block, t(x) = [x, x_i x_j] and one product with the cells' natural parameters.

    When every cell shares the spread (a tied or known covariance), the quadratic
    statistic's natural parameter is the same for every component: the E-step then needs
    only x for the component terms (-1/2 x^T Lambda x is one term per row), and the
    quadratic statistic is summed over all items, unweighted (``Sxx_x``, (1, D, D))."""
    dense = True

    def __init__(self, e, w):
        self.e, self.w, self.x = e, w, e.factor.target
        self.gu = next(g for g in w.us.gaussian if g.emission is e)
        self.shared = bool(self.gu.grid) and not self.gu.spread.axes
        w.runtime.update({"_mvn_width", "_mvn_stats", "_mvn_natural", "_unpack_sym"})

    def centre(self, s):
        s(f'centre["shift_{self.x}"] = np.asarray(data["{self.x}"], dtype=float).mean(axis=0)')

    def prepare(self, s):
        s(f'st["data_{self.x}"] = np.asarray(data["{self.x}"], dtype=float)')

    def width(self) -> str:
        if self.shared:
            return f'st["data_{self.x}"].shape[1]'
        return f'_mvn_width(st["data_{self.x}"].shape[1])'

    def after_blocks(self, s):
        if self.shared:
            s(f'st["buffer_{self.x}"] = np.empty((st["data_{self.x}"].shape[1], st["block"]))'
              "  # one block of the centred data, element by row, reused by every block")
            s(f'st["centre_cols_{self.x}"] = st["centre"]["shift_{self.x}"][:, None]'
              "  # the shift laid out like the buffer")
        else:
            s(f'st["buffer_{self.x}"] = np.empty((_mvn_width(st["data_{self.x}"].shape[1]), '
              f'st["block"]))  # t(x) of one block, reused by every block')

    def functions(self, s):
        x = self.x
        s("")
        s("")
        s(f"def _t_{x}(st, lo, hi):")
        if self.shared:
            s(f'    """Rows lo:hi of {x} - shift (B, D): the quadratic statistics are taken')
            s('    from these directly (the spread is shared by every cell). A view of the')
            s(f'    block buffer st["buffer_{x}"] (D, B), valid until the next block\'s call: its')
            s("    rows are the elements, so the products read them contiguously (and writing")
            s('    them so is 3-6x faster than a (B, D) subtract for D <= 5)."""')
            s(f'    return _to_columns(st["data_{x}"][lo:hi], st["centre_cols_{x}"], '
              f'st["buffer_{x}"][:, :hi - lo])')
            return
        s(f'    """t(x) = [x, x_i x_j (i <= j)] of rows lo:hi of {x} - shift: (B, P), written')
        s(f'    into the block buffer st["buffer_{x}"] (valid until the next block\'s call)."""')
        s(f'    return _mvn_stats(st["data_{x}"][lo:hi], st["centre"]["shift_{x}"], '
          f'st["buffer_{x}"])')

    def slot_value(self, slot) -> str:
        """numpy source for an argument (a param, scaled or shifted, or a known)."""
        if slot.param is None:
            return known(slot.known)
        value = f'params["{slot.param}"]'
        if slot.scale is not None:
            value = f"{value} {'/' if slot.divide else '*'} ({known(slot.scale)})"
        if slot.offset is not None:
            value = f"{'-' if slot.sign < 0 else ''}{value} + ({known(slot.offset)})"
        return value

    def natural(self, s, const):
        x, gu = self.x, self.gu
        if gu.mean.param in self.w.us.variational:   # a Normal-Wishart q factor
            self.w.vb.normal_wishart_natural(s, gu, x)
            return f"A_{x}"
        s(f'mean_{x} = np.atleast_2d({self.slot_value(gu.mean)}) - st["centre"]["shift_{x}"]')
        s(f"spread_{x} = np.asarray({self.slot_value(gu.spread)}, dtype=float)")
        s(f"spread_{x} = spread_{x}[None] if spread_{x}.ndim == 2 else spread_{x}")
        s(f"G_{x} = max(len(mean_{x}), len(spread_{x}))  # the cells")
        s(f"eta_{x}, A_{x} = _mvn_natural(np.broadcast_to(mean_{x}, (G_{x}, mean_{x}.shape[1])), "
          f"{gu.keyword}=np.broadcast_to(spread_{x}, (G_{x},) + spread_{x}.shape[1:]))"
          "  # eta (G, P), A (G,)")
        if self.shared:
            prec = f"spread_{x}[0]" if gu.keyword == "prec" else f"_spd_inv(spread_{x}[0])"
            if gu.keyword != "prec":
                self.w.runtime.add("_spd_inv")
            s(f"dim_{x} = mean_{x}.shape[1]")
            s(f"lin_{x} = eta_{x}[:, :dim_{x}]  # the component terms: (K, D)")
            s(f"lam_{x} = {prec}  # the shared precision (D, D)")
        return f"A_{x}"

    def block(self, s):
        x = self.x
        if self.shared:
            self.w.log_joint_term(s, f'lin_{x} @ t_block["{x}"].T', "(K, D) @ (D, B)",
                                  (f"lin_{x}", f't_block["{x}"].T'))
            self.w.row_term(s, f'-0.5 * np.einsum("bi,bi->b", t_block["{x}"] @ lam_{x}, '
                               f't_block["{x}"])', f'-0.5 * float(np.sum(lam_{x} * '
                               f'ess["Sxx_{x}"][0]))', "-1/2 x^T Lambda x")
        elif self.gu.grid:
            self.w.log_joint_term(s, f'eta_{x} @ t_block["{x}"].T',
                                  "(K, P) @ (P, B): eta . t(x), eq. 12",
                                  (f"eta_{x}", f't_block["{x}"].T'))
        else:
            self.w.row_term(s, f'(eta_{x}[0] @ t_block["{x}"].T)', f'float(eta_{x}[0] @ '
                            f'ess["S_{x}"][0])', "eta . t(x) of a density without z")

    def stats(self, s):
        x = self.x
        if self.shared:
            s(f'_add(ess, "S_{x}", resp_t @ t_block["{x}"])  # (K, D) = R^T x')
            s(f'_add(ess, "Sxx_{x}", (t_block["{x}"].T @ t_block["{x}"])[None])'
              "  # (1, D, D): sum of x x^T over all items (the cells share the spread)")
        elif self.gu.grid:
            s(f'_add(ess, "S_{x}", _stats_product(resp_t, t_block["{x}"].T))  # R^T T (K, P)')
        else:
            s(f'_add(ess, "S_{x}", t_block["{x}"].sum(axis=0)[None])')

    def finish(self, s):
        x = self.x
        s(f'ess["shift_{x}"] = st["centre"]["shift_{x}"]  # the statistics are of x - shift')
        if self.gu.grid:
            s(f'ess["N_{x}"] = count_k')
        else:
            s(f'ess["N_{x}"] = np.array([float(st["n_rows"])])')
