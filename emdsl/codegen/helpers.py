"""Helper functions copied verbatim into every generated module (numpy/scipy only).

They are kept here as source text so that the generated file stays self-contained.
"""

HELPERS = r'''
_EPS10 = 10 * np.finfo(float).eps


def _on_grid(a, own, grid):
    """Lay out array ``a`` (its axes named by the einsum letters ``own``) on the cells named
    by ``grid``: axes in the grid's order, length 1 where ``a`` does not vary."""
    a = np.asarray(a, dtype=float)
    order = "".join(c for c in grid if c in own)
    if own:
        a = np.einsum(f"{own}->{order}", a)
    return a.reshape(tuple(a.shape[order.index(c)] if c in order else 1 for c in grid))


def _add(ess, key, value):
    """ess[key] += value, creating the entry on the first block."""
    if key in ess:
        ess[key] += value
    else:
        ess[key] = np.array(value, dtype=float)


def _to_columns(x, shift, out):
    """out (..., B) = x - shift, the block's rows x (B, ...) written statistic-buffer style
    (row index last); shift (..., 1) or 0. Returns out seen as (B, ...). The transposition
    costs what numpy's iteration order makes it cost: rows of 32 or more numbers are read
    whole, 64 rows at a time (the tile's columns stay in cache: 15.7 -> 11.0 ms per pass
    over 1e5 rows at D = 50 here), shorter rows are written column by column (twice as
    fast at D = 16, the same from D = 20 to 28)."""
    b = len(x)
    tiles = b // 64 * 64 if int(np.prod(x.shape[1:])) >= 32 else 0
    if tiles:
        cols = out[..., :tiles].reshape(out.shape[:-1] + (-1, 64))     # (..., tiles, 64)
        np.subtract(x[:tiles].reshape((-1, 64) + x.shape[1:]), np.squeeze(shift, -1)
                    if np.ndim(shift) else shift, out=np.moveaxis(cols, (-2, -1), (0, 1)))
    if tiles < b:
        np.subtract(np.moveaxis(x[tiles:], 0, -1), shift, out=out[..., tiles:])
    return np.moveaxis(out, -1, 0)


def _stats_product(resp_t, Tt):
    """R^T T (K, P) of a block's responsibilities resp_t (K, B) and statistics Tt (P, B),
    both stored along the rows B. BLAS runs the two orientations of this product at
    different speeds: with more statistics than components Tt @ R (P, K), transposed
    back, was 1.5x faster here (D = 10 and 50), with fewer (K = 64) R @ Tt^T was."""
    if len(Tt) >= len(resp_t):
        return (Tt @ resp_t.T).T
    return resp_t @ Tt.T


def _log_normalise(Lt, rows=None):
    """In place, Lt (K, B) log p(x_n, z_n = k) -> responsibilities r[k, n] (a softmax over
    k, the rows: every operation runs along contiguous rows of length B).

    Returns sum_n log p(x_n), log p(x_n) = log sum_k p(x_n, z_n = k) computed stably
    (logsumexp); ``rows`` (B,), when given, receives each log p(x_n). Ratios below e^-500
    are raised to it before the exponential (one pass, in place): exponentials near the
    end of the normal range take slow paths - numpy 2.4's AVX2 exp costs ~1 ns per element
    down to -707 and 16 ns at -708 (71 at -709), glibc's scalar exp treats |x| > 512 as a
    special case - and well separated components make such ratios the common case; a
    responsibility of e^-500 (7e-218) instead of a smaller one changes no sum of them (the
    largest is 1, so 2^-52 of it is 1e202 times more). Without ``rows`` the sum of
    the logs of the normalisers (each in [1, K]) is taken as the logs of products of up
    to 2^1000 each: a few logs per block instead of one per row (float64 log costs
    ~20 ns where numpy has no SIMD version), the rounding the same as summing B logs.
    """
    top = Lt.max(axis=0)
    np.subtract(Lt, top, out=Lt)
    np.maximum(Lt, -500.0, out=Lt)   # exp stays on its fast path
    np.exp(Lt, out=Lt)
    total = Lt.sum(axis=0)
    Lt *= 1.0 / total
    if rows is not None:
        np.log(total, out=rows)
        rows += top
        return float(rows.sum())
    m = max(1, int(1000.0 / np.log2(max(float(Lt.shape[0]), 2.0))))   # total <= K
    pad = -len(total) % m
    if pad:
        total = np.concatenate([total, np.ones(pad)])
    return float(np.log(total.reshape(-1, m).prod(axis=1)).sum() + top.sum())


def _keep_empty(new, old, count):
    """Keep the previous value of parameter cells whose expected count is ~0: ``old`` is
    a function that returns it (the previous value, or a neutral start before the first
    M-step), called only when a cell is empty."""
    empty = np.broadcast_to(count, new.shape[:np.ndim(count)]) <= 1e-8
    if not np.any(empty):
        return new
    mask = empty.reshape(empty.shape + (1,) * (new.ndim - empty.ndim))
    return np.where(mask, old(), new)


def _keep_unless_prior(new, old, count):
    """Under MAP, an empty cell's update is the maximiser of its log prior alone - the
    prior's mode - and stays (a component that lost its items restarts from the mode
    and can win items back); only where that is not finite (a prior without a mode) is
    the previous value kept, as ``_keep_empty`` does for maximum likelihood."""
    empty = np.broadcast_to(count, new.shape[:np.ndim(count)]) <= 1e-8
    if not np.any(empty):
        return new
    bad = ~np.isfinite(new)
    bad = bad.reshape(bad.shape[:empty.ndim] + (-1,)).any(-1) if new.ndim > empty.ndim else bad
    return _keep_empty(new, old, np.where(empty & bad, 0.0, 1.0))


def _toward_infinity(new, old):
    """Where a closed-form M-step is infinite (Q grows without bound that way: separated
    data, as a logistic component whose items all have y = 0), one unit from the previous
    value (``old``, or a neutral start) toward it: Q still increases (generalized EM), the
    fit stays finite and its ELBO converges as the value grows."""
    new = np.asarray(new, dtype=float)
    infinite = np.isinf(new)
    if not np.any(infinite):
        return new
    return np.where(infinite, np.broadcast_to(np.asarray(old, dtype=float), new.shape)
                    + np.sign(new), new)


def _unique_rows(cols):
    """(distinct rows (M, C) in lexicographic order, each item's row (N,), counts (M,)) of
    the non-negative integer columns ``cols``: one int64 key per item when they fit in
    one (a 1-D sort: several times faster than np.unique(axis=0)), else np.unique's rows."""
    sizes = [int(c.max()) + 1 if len(c) else 1 for c in cols]
    if float(np.prod(np.array(sizes, dtype=float))) < 2.0 ** 62:
        key = np.zeros(len(cols[0]), dtype=np.int64)
        for c, size in zip(cols, sizes):
            key = key * size + c
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        rows = np.empty((len(uniq), len(cols)), dtype=np.int64)
        for j in range(len(cols) - 1, -1, -1):
            uniq, rows[:, j] = np.divmod(uniq, sizes[j])
        return rows, inverse, counts
    return np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True, return_counts=True)


def _newton(q, grad, hess, start, kinds, iters=100, tol=1e-10):
    """Maximise the profiled objective q cell by cell (generalized EM).

    start: list of m arrays (one per unknown, same grid shape). Positive unknowns are
    optimised on the log scale. A step is halved until q does not decrease, so the
    M-step never lowers the expected complete-data log likelihood.
    """
    theta = [np.array(s, dtype=float) for s in start]
    logs = [k in ("pos", "unit") for k in kinds]
    for _ in range(iters):
        g = np.stack(np.broadcast_arrays(*grad(*theta)))
        H = np.stack([np.stack(np.broadcast_arrays(*row)) for row in hess(*theta)])
        th = np.stack(np.broadcast_arrays(*theta))
        jac = np.where(np.array(logs)[:, None], th.reshape(len(theta), -1), 1.0)
        gshape = g.shape
        g = g.reshape(len(theta), -1) * jac
        H = H.reshape(len(theta), len(theta), -1) * jac[:, None] * jac[None, :]
        H = H + np.eye(len(theta))[:, :, None] * np.where(np.array(logs)[:, None], g, 0.0)[:, None]
        Hm = np.moveaxis(H, -1, 0)
        try:
            step = -np.linalg.solve(Hm, np.moveaxis(g, -1, 0)[..., None])[..., 0].T
            bad = np.einsum("ij,ij->j", step, g) <= 0
        except np.linalg.LinAlgError:
            step, bad = g.copy(), np.ones(g.shape[1], bool)
        step[:, bad] = g[:, bad] * 1e-3
        step = np.clip(step, -5, 5)
        q0 = np.asarray(q(*theta), dtype=float).reshape(-1)
        t = np.ones(step.shape[1])
        for _ in range(40):
            # positive unknowns stay within [1e-12, 1e12]: beyond, a component has collapsed
            cand = [np.where(lg, np.clip(th_i.reshape(-1) * np.exp(t * s), 1e-12, 1e12),
                             th_i.reshape(-1) + t * s)
                    for lg, th_i, s in zip(logs, theta, step)]
            q1 = np.asarray(q(*[c.reshape(gshape[1:]) for c in cand]), dtype=float).reshape(-1)
            worse = ~(q1 >= q0 - 1e-12 * np.abs(q0))
            if not np.any(worse):
                break
            t = np.where(worse, t / 2, t)
        theta = [c.reshape(gshape[1:]) for c in cand]
        if np.max(np.abs(t * step)) < tol:
            break
    return theta


def _kmeanspp_resp(F, K, rng):
    """Hard responsibilities (N, K) from k-means++ seeding on standardised features F (N, M)."""
    F = (F - F.mean(0)) / np.where(F.std(0) > 0, F.std(0), 1.0)
    N = F.shape[0]
    centres = [F[rng.integers(N)]]
    d2 = ((F - centres[0]) ** 2).sum(1)
    for _ in range(1, K):
        total = d2.sum()
        i = rng.integers(N) if total <= 0 else rng.choice(N, p=d2 / total)
        centres.append(F[i])
        d2 = np.minimum(d2, ((F - F[i]) ** 2).sum(1))
    C = np.array(centres)
    dist = (F ** 2).sum(1)[:, None] - 2 * F @ C.T + (C ** 2).sum(1)[None]
    resp = np.zeros((N, K))
    resp[np.arange(N), dist.argmin(1)] = 1.0
    return resp
'''
