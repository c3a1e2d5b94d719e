#!/usr/bin/env python
"""emdsl vs scikit-learn's GaussianMixture over several shapes and covariance types.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gmm_shapes.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gmm_shapes.py --quick

For each (N, D, K) and covariance type ("full", "tied", "diag"; the model written the way
a user would), both libraries run the same number of EM iterations from the same start,
interleaved, best of --repeat rounds: emdsl's generated e_step + m_step loop (one prepare
before, as sklearn validates its input once) against GaussianMixture.fit divided by its
iterations. Peak memory allocated above the data (tracemalloc) is measured for both fits.
Ratios < 1 mean emdsl is faster / smaller.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import emdsl  # noqa: E402

SHAPES = [(10_000, 2, 3), (200_000, 10, 8), (100_000, 50, 16), (1_000_000, 2, 5),
          (20_000, 5, 64)]
QUICK = [(10_000, 2, 3), (50_000, 10, 8), (20_000, 20, 16)]
SPREAD = {"full": ("param  Sigma[K] : spd[D]", "Sigma[z[n]]", "Sigma"),
          "tied": ("param  Sigma    : spd[D]", "Sigma", "Sigma"),
          "diag": ("param  s2[K]    : pos[D]", "diag(s2[z[n]])", "s2")}
SOURCE = """model GMM
dim N, D
dim K = 3
data   x[N]     : real[D]
param  weights  : simplex[K]
param  mu[K]    : real[D]
{decl}
latent z[N]     : cat[K]
for n in 1:N {{
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], {spread})
}}
"""


def simulate(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    z = rng.integers(k, size=n)
    return means[z] + rng.normal(size=(n, d))


def start(x, k, kind, seed=0):
    rng = np.random.default_rng(seed)
    mu = x[rng.choice(len(x), k, replace=False)]
    cov = np.cov(x.T, bias=True)
    spread = {"full": np.repeat(cov[None], k, 0), "tied": cov,
              "diag": np.tile(np.diag(cov), (k, 1))}[kind]
    prec = np.linalg.inv(spread) if kind != "diag" else 1.0 / spread
    return np.full(k, 1.0 / k), mu, spread, prec


def emdsl_loop(mod, st, h, params, iters):
    with np.errstate(divide="ignore", under="ignore"):
        for _ in range(iters):
            _, ess, _ = mod.e_step(st, params, h)
            params = mod.m_step(ess, params, h, 0.0)
    return params


def sklearn_fit(x, kind, w, mu, prec, iters):
    from sklearn.mixture import GaussianMixture
    gm = GaussianMixture(len(w), covariance_type=kind, reg_covar=0, tol=0, max_iter=iters,
                         weights_init=w, means_init=mu, precisions_init=prec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gm.fit(x)


def peak(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench(n, d, k, kind, iters, repeat, memory):
    x = simulate(n, d, k)
    decl, spread, name = SPREAD[kind]
    model = emdsl.loads(SOURCE.format(decl=decl, spread=spread), name=f"{kind}.emm",
                        use_cache=False)
    mod = model.module
    h = {"N": n, "D": d, "K": k}
    w, mu, sp, prec = start(x, k, kind)
    params = {"weights": w, "mu": mu, name: sp}
    t_em, t_sk = [], []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        st = mod.prepare({"x": x}, h)
        emdsl_loop(mod, st, h, dict(params), iters)
        t_em.append((time.perf_counter() - t0) / iters)
        del st
        gc.collect()
        t0 = time.perf_counter()
        sklearn_fit(x, kind, w, mu, prec, iters)
        t_sk.append((time.perf_counter() - t0) / iters)
    out = {"emdsl": min(t_em), "sklearn": min(t_sk)}
    if memory:
        out["emdsl_mem"] = peak(lambda: emdsl_loop(mod, mod.prepare({"x": x}, h), h,
                                                   dict(params), 2))
        out["sklearn_mem"] = peak(lambda: sklearn_fit(x, kind, w, mu, prec, 2))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes only")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kinds", default="full,tied,diag")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--shapes", type=int, nargs="+", metavar="I",
                    help="indices (0-4) into the five shapes, to run only some of them")
    args = ap.parse_args(argv)
    shapes = QUICK if args.quick else SHAPES
    if args.shapes:
        shapes = [SHAPES[i] for i in args.shapes]
    print(f"{'shape':>20} {'type':>5} {'emdsl s/it':>11} {'sklearn s/it':>13} {'ratio':>6}"
          f" {'mem emdsl':>10} {'mem sklearn':>12} {'ratio':>6}")
    for n, d, k in shapes:
        for kind in args.kinds.split(","):
            r = bench(n, d, k, kind, args.iters, args.repeat, not args.no_memory)
            mem = ""
            if "emdsl_mem" in r:
                mb = 2.0 ** 20
                mem = (f" {r['emdsl_mem'] / mb:9.1f}M {r['sklearn_mem'] / mb:11.1f}M "
                       f"{r['emdsl_mem'] / r['sklearn_mem']:6.2f}")
            print(f"{str((n, d, k)):>20} {kind:>5} {r['emdsl']:11.4f} {r['sklearn']:13.4f} "
                  f"{r['emdsl'] / r['sklearn']:6.3f}{mem}", flush=True)


if __name__ == "__main__":
    main()
