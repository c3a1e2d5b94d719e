"""``gaussian_mixture.emm`` against scikit-learn's ``GaussianMixture`` (an independent EM).

From identical starting values (weights, means, precisions = inverse covariances), with no
covariance regularisation (``reg=0`` / ``reg_covar=0``) and no early stopping (``tol=0``),
t iterations of emdsl's generated EM must reproduce t iterations of scikit-learn's: the
means, covariances and weights, and the objective (emdsl's ``elbo[-1]`` is the summed log
likelihood of the last E-step, scikit-learn's ``lower_bound_`` the per-sample mean of the
same quantity).  Data: Old Faithful (272 x 2) and the four Palmer penguin measurements
(342 x 4 after dropping rows with a missing value), K = 3.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn_mixture = pytest.importorskip("sklearn.mixture")
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning  # noqa: E402

import emdsl  # noqa: E402
from emdsl.runtime.batch import ConvergenceWarning  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
DATA = MODELS / "data"
RTOL = 1e-6
K = 3
PENGUIN_COLUMNS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


@pytest.fixture(scope="module")
def gmm(_emdsl_cache):
    return emdsl.load(MODELS / "gaussian_mixture.emm")


def faithful() -> np.ndarray:
    return np.loadtxt(DATA / "faithful.csv", delimiter=",", skiprows=1)


def penguins() -> np.ndarray:
    rows = []
    with open(DATA / "penguins.csv", newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            vals = [rec[c] for c in PENGUIN_COLUMNS]
            if any(v in ("", "NA") for v in vals):
                continue
            rows.append([float(v) for v in vals])
    return np.array(rows)


DATASETS = {"faithful": faithful, "penguins": penguins}


def test_penguins_loader_drops_missing_rows():
    X = penguins()
    assert X.shape == (342, 4)
    assert np.all(np.isfinite(X))


def start_values(X, seed=3):
    """K distinct data points as means, the data covariance for every component."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), K, replace=False)].copy()
    cov = np.cov(X.T, bias=True)
    return np.full(K, 1.0 / K), means, np.repeat(cov[None], K, axis=0)


def run_both(model, X, n_iter):
    w0, mu0, S0 = start_values(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = sklearn_mixture.GaussianMixture(
            n_components=K, covariance_type="full", reg_covar=0, tol=0, max_iter=n_iter,
            weights_init=w0, means_init=mu0, precisions_init=np.linalg.inv(S0),
            random_state=0).fit(X)
        r = model.fit(x=X, K=K, reg=0, tol=0, max_iter=n_iter,
                      init={"weights": w0, "mu": mu0, "Sigma": S0})
    return r, gm


def assert_close(actual, desired, rtol, atol=0.0, what=""):
    """|actual - desired| <= rtol |desired| + atol element-wise (atol may be an array)."""
    actual, desired = np.asarray(actual, float), np.asarray(desired, float)
    assert actual.shape == desired.shape, what
    err = np.abs(actual - desired)
    bound = rtol * np.abs(desired) + atol
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (f"{what}: worst entry {worst}: {actual[worst]!r} vs "
                                  f"{desired[worst]!r} (|diff| {err[worst]:.3g} > "
                                  f"{np.broadcast_to(bound, err.shape)[worst]:.3g})")


def rel_diff(a, b) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("n_iter", [1, 5, 30])
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_matches_sklearn_after_t_iterations(gmm, dataset, n_iter):
    X = DATASETS[dataset]()
    N = len(X)
    r, gm = run_both(gmm, X, n_iter)
    assert r.n_iter == n_iter == gm.n_iter_
    p = r.params
    # element-wise relative tolerance; the absolute floor only matters for covariance
    # entries that happen to be near 0 compared with the matrix they belong to
    assert_close(p["weights"], gm.weights_, RTOL, what="weights")
    assert_close(p["mu"], gm.means_, RTOL, RTOL * np.abs(gm.means_).max(axis=0), "mu")
    for k in range(K):
        scale = np.sqrt(np.outer(np.diag(gm.covariances_[k]), np.diag(gm.covariances_[k])))
        assert_close(p["Sigma"][k], gm.covariances_[k], RTOL, RTOL * scale, f"Sigma[{k}]")
    # the objective of the last E-step: summed log likelihood vs sklearn's per-sample mean
    assert r.elbo[-1] == pytest.approx(gm.lower_bound_ * N, rel=RTOL)
    # and the posterior of that E-step (taken before the last M-step in both libraries)
    assert r.posterior["z"].shape == (N, K)
    assert max(rel_diff(p["mu"], gm.means_), rel_diff(p["Sigma"], gm.covariances_),
               rel_diff(p["weights"], gm.weights_)) < RTOL


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_e_step_matches_predict_proba(gmm, dataset):
    """One E-step from given params gives sklearn's predict_proba and score_samples."""
    X = DATASETS[dataset]()
    N = len(X)
    # params that are not at a fixed point: a few iterations of sklearn from the start values
    _, gm = run_both(gmm, X, 3)
    params = {"weights": gm.weights_, "mu": gm.means_, "Sigma": gm.covariances_}
    h = {"N": N, "D": X.shape[1], "K": K}
    mod = gmm.module
    st = mod.prepare({"x": X}, h)
    resp, ess, loglik = mod.e_step(st, params, h)
    expected = gm.predict_proba(X)
    np.testing.assert_allclose(resp, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    assert loglik == pytest.approx(gm.score_samples(X).sum(), rel=1e-9)
    assert mod.elbo(st, params, h) == pytest.approx(gm.score(X) * N, rel=1e-9)
    np.testing.assert_allclose(ess["C_z"], expected.sum(axis=0), rtol=1e-6)
