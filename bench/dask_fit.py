#!/usr/bin/env python
"""Batch EM / CAVI on Dask next to the same fit in memory (issue 7, item 5).

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/dask_fit.py     # ~2 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/dask_fit.py --lda-docs 20000

Two fits, each from the same start in memory and on a ``LocalCluster`` of 2 worker
processes (1 thread each) with the data as dask arrays of ``--partitions`` partitions:

- a full-covariance GMM, D = 10, K = 8, N = ``--n`` rows (batch EM);
- LDA, K = 10, on Reuters (``models/data/reuters.ldac``), or K = 20 on a synthetic corpus
  (``--lda-docs``); batch CAVI, local factors per document kept on the workers.

Reported: seconds per iteration (median over the iterations after the first, which
includes persisting the data), the ratio Dask / in memory, the largest relative
difference of the objectives (they must agree to 1e-10), and the bytes of statistics
each partition sends per iteration (what a cluster of many machines moves).
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import emdsl  # noqa: E402


def timed_fit(model, iters, **kw):
    """(the fit, seconds per iteration after the first) of ``iters`` iterations."""
    stamps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = model.fit(max_iter=iters, tol=0.0,
                        callback=lambda it, v, p: stamps.append(time.perf_counter()), **kw)
    stamps = np.array([t0] + stamps)
    return res, float(np.median(np.diff(stamps)[1:]))


def gmm(n, D=10, K=8, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 2.0, (K, D))
    return mu[rng.integers(K, size=n)] + rng.normal(size=(n, D))


def row(name, mem, dsk, stats_bytes):
    (r0, t0), (r1, t1) = mem, dsk
    diff = float(np.max(np.abs(r1.elbo - r0.elbo) / np.abs(r0.elbo)))
    print(f"{name:28s} {t0:10.3f} {t1:10.3f} {t1 / t0:8.2f} {diff:10.1e} {stats_bytes:12d}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--lda-docs", type=int, default=0, dest="lda_docs",
                    help="LDA on a synthetic corpus of this many documents (bench/lda.py's, "
                    "5,000 words, K = 20) instead of Reuters")
    a = ap.parse_args(argv)
    import dask.array as da
    from dask.distributed import Client, LocalCluster
    client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=None))
    print(f"{'fit':28s} {'memory s/it':>10s} {'dask s/it':>10s} {'ratio':>8s} "
          f"{'max rel diff':>10s} {'stats bytes':>12s}")

    m = emdsl.load(ROOT / "models" / "gaussian_mixture.emm")
    x = gmm(a.n)
    start = m.fit(x=x, K=8, max_iter=1, seed=0).params
    mem = timed_fit(m, a.iters, x=x, K=8, init=start)
    xd = da.from_array(x, chunks=(-(-a.n // a.partitions), 10))
    dsk = timed_fit(m, a.iters, x=xd, K=8, init=start)
    mod = m.module
    h = {"N": a.n // a.partitions, "D": 10, "K": 8}
    st = mod.prepare({"x": x[: h["N"]]}, h)
    stats = mod.e_step(st, start, h)[1]
    row(f"GMM full N={a.n:.0e} D=10 K=8", mem, dsk, len(pickle.dumps(stats)))

    lda = emdsl.load(ROOT / "models" / "lda.emm")
    if a.lda_docs:
        sys.path.insert(0, str(ROOT / "bench"))
        from lda import synthetic, tokens
        X = synthetic(docs=a.lda_docs)
        doc, w = tokens(X)
        data, dims, name = {"doc": doc, "w": w}, {"D": X.shape[0], "V": X.shape[1]}, \
            f"LDA synthetic K=20 ({a.lda_docs} docs)"
        fixed = {**dims, "K": 20}
    else:
        from emdsl.io.datafiles import read_data_file
        data, dims = read_data_file(ROOT / "models" / "data" / "reuters.ldac", lda.checked)
        name = f"LDA Reuters K=10 ({dims['D']} docs)"
        fixed = {"D": dims["D"], "V": dims["V"], "K": 10}
    start = lda.fit(**data, **fixed, max_iter=1, seed=0).params
    mem = timed_fit(lda, a.iters, **data, **fixed, init=start)
    n = -(-len(data["doc"]) // a.partitions)
    dsk = timed_fit(lda, a.iters, doc=da.from_array(data["doc"], chunks=n),
                    w=da.from_array(data["w"], chunks=n), **fixed, init=start)
    stats_bytes = 8 * fixed["K"] * (dims["V"] + 1)   # C_w (K, V) and the summed C_c (K,)
    row(name, mem, dsk, stats_bytes)
    client.close()


if __name__ == "__main__":
    main()
