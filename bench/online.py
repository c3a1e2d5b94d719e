#!/usr/bin/env python
"""Stepwise EM against batch EM on a full-covariance Gaussian mixture read from a memmap.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/online.py            # ~3 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/online.py --memory   # + N = 8e6

Data: N rows of D = 10 from K = 8 Gaussians, written once to a ``.npy`` file and opened as
a memmap. Batch EM runs to ``tol=1e-6``; stepwise EM (``batch_size``, ``kappa``) runs
until its mean log likelihood per item is within 1e-3 of batch EM's final one. Times
exclude the per-pass evaluation of the objective (a callback measures it). ``--memory``
also reports the peak of Python/numpy allocations (tracemalloc) of one stepwise pass at
N and at 4 N: the memmap's pages are the OS's, not the fit's.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import emdsl  # noqa: E402


def write(path, n, D=10, K=8, seed=0, chunk=500_000):
    """x (n, D) from K well-mixed Gaussians, written chunk by chunk to ``path``."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 2.0, (K, D))
    L = np.array([np.linalg.cholesky(np.eye(D) * rng.uniform(0.5, 1.5) + 0.2)
                  for _ in range(K)])
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, D))
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        z = rng.integers(K, size=m)
        out[lo:lo + m] = mu[z] + np.einsum("nij,nj->ni", L[z], rng.normal(size=(m, D)))
    out.flush()
    return np.load(path, mmap_mode="r")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--kappa", type=float, default=0.6)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--memory", action="store_true")
    a = ap.parse_args(argv)
    model = emdsl.load(ROOT / "models" / "gaussian_mixture.emm")
    with tempfile.TemporaryDirectory() as tmp:
        x = write(Path(tmp) / "x.npy", a.n)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = model.fit(x=x, K=8, seed=0, tol=1e-6, max_iter=500)
        t_batch = time.perf_counter() - t0
        final = batch.elbo[-1] / a.n
        print(f"N = {a.n}: batch EM {batch.n_iter} iterations in {t_batch:.1f} s, final mean "
              f"log likelihood {final:.6f} (converged {batch.converged})")
        # the stepwise clock: total time minus the per-pass evaluations (timed separately)
        evals = []
        mod = model.module
        h = {"N": a.n, "K": 8}

        def callback(it, value, params):
            evals.append((time.perf_counter(), value / a.n))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step = model.fit(x=x, K=8, seed=0, method="stepwise", batch_size=a.batch_size,
                             kappa=a.kappa, max_iter=a.passes, tol=0.0, callback=callback)
        total = time.perf_counter() - t0
        t_eval = _eval_time(mod, x, step.params, h)
        reached = None
        for i, (stamp, value) in enumerate(evals):
            clock = stamp - t0 - (i + 1) * t_eval
            print(f"  stepwise pass {i + 1}: mean log likelihood {value:.6f} "
                  f"({value - final:+.2e} vs batch) at {clock:.1f} s")
            if reached is None and value >= final - 1e-3:
                reached = clock
        print(f"stepwise (B = {a.batch_size}, kappa = {a.kappa}): {total:.1f} s for "
              f"{a.passes} passes incl. evaluations ({t_eval:.1f} s each); within 1e-3 of "
              f"batch at " + (f"{reached:.1f} s = {reached / t_batch:.2f} x batch's time"
                              if reached is not None else "never"))
        if a.memory:
            for n in (a.n, 4 * a.n):
                xm = x if n == a.n else write(Path(tmp) / "x4.npy", n)
                tracemalloc.start()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(x=xm, K=8, seed=0, method="stepwise", batch_size=a.batch_size,
                              max_iter=1, tol=0.0)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                print(f"peak allocations of one stepwise pass at N = {n}: {peak / 2**20:.1f} MiB")


def _eval_time(mod, x, params, h, chunk=65536):
    """Seconds of one evaluation of the objective (what the driver does after a pass)."""
    t0 = time.perf_counter()
    centre = mod.centring({"x": x}, h)
    for lo in range(0, len(x), chunk):
        part = np.asarray(x[lo:lo + chunk])
        hc = {**h, "N": len(part)}
        mod.e_step(mod.prepare({"x": part}, hc, centre), params, hc)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
