#!/usr/bin/env python
"""emdsl's CAVI for models/bayes_gmm.emm vs scikit-learn's BayesianGaussianMixture.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bayes_gmm.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bayes_gmm.py --n 20000

Both start from the same random responsibilities (sklearn through its ``_initialize``),
with the same priors (sklearn's covariance_prior = W0^-1), reg_covar = 0, and run the
same number of iterations, interleaved, best of --repeat rounds: emdsl's generated
``e_step`` + ``m_step`` loop (one ``prepare``, as sklearn validates its input once)
against ``BayesianGaussianMixture.fit`` divided by its iterations.  The variational
parameters of the two after the run are compared (max relative difference).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import emdsl  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    from sklearn.mixture import BayesianGaussianMixture
    rng = np.random.default_rng(0)
    means = rng.normal(scale=4.0, size=(a.k, a.d))
    x = means[rng.integers(a.k, size=a.n)] + rng.normal(size=(a.n, a.d))
    R0 = rng.dirichlet(np.ones(a.k), size=a.n)
    hyp = dict(alpha0=0.1, beta0=1.0, nu0=float(a.d), m0=np.zeros(a.d), W0=np.eye(a.d))
    h = {"N": a.n, "D": a.d, "K": a.k, **hyp}
    mod = emdsl.load(ROOT / "models" / "bayes_gmm.emm").module

    class FromResp(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, R0)

    def sk():
        g = FromResp(n_components=a.k, covariance_type="full",
                     weight_concentration_prior_type="dirichlet_distribution",
                     weight_concentration_prior=hyp["alpha0"], mean_precision_prior=hyp["beta0"],
                     mean_prior=hyp["m0"], degrees_of_freedom_prior=hyp["nu0"],
                     covariance_prior=np.linalg.inv(hyp["W0"]), reg_covar=0.0,
                     max_iter=a.iters, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return g.fit(x)

    def ours():
        st = mod.prepare({"x": x}, h)
        q = mod.m_step(mod.expected_stats(st, R0), None, h, 0.0)
        with np.errstate(divide="ignore", under="ignore"):
            for _ in range(a.iters):
                q = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
        return q

    t_em, t_sk = [], []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        q = ours()
        t_em.append((time.perf_counter() - t0) / a.iters)
        t0 = time.perf_counter()
        g = sk()
        t_sk.append((time.perf_counter() - t0) / a.iters)
    diff = max(np.max(np.abs(q["mu.mean"] - g.means_)) / np.max(np.abs(g.means_)),
               np.max(np.abs(q["weights.concentration"] - g.weight_concentration_))
               / np.max(g.weight_concentration_))
    e, s = min(t_em), min(t_sk)
    print(f"(N, D, K) = ({a.n}, {a.d}, {a.k}), {a.iters} iterations, best of {a.repeat}")
    print(f"emdsl   {e:.4f} s/iter  (includes prepare and the first update, / iters)")
    print(f"sklearn {s:.4f} s/iter  (BayesianGaussianMixture.fit / iters)")
    print(f"ratio   {e / s:.3f}   max relative parameter difference {diff:.2e}")


if __name__ == "__main__":
    main()
