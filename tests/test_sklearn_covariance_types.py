"""Gaussian mixtures with structured covariances against scikit-learn's GaussianMixture of
the same ``covariance_type`` ("diag", "spherical", "tied"), from identical starting values,
no regularisation and no early stopping: params equal after 1, 5 and 30 iterations.

Each model is written the way a user would; none is a special case of the compiler: the
diagonal and spherical MvNormals factorise into scalar Normals over their elements, the
tied covariance is one param shared by every component's cells."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn_mixture = pytest.importorskip("sklearn.mixture")
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning  # noqa: E402

import emdsl  # noqa: E402
from emdsl.runtime.batch import ConvergenceWarning  # noqa: E402
from test_sklearn import DATASETS, K, RTOL, assert_close  # noqa: E402

HEAD = """model M
dim N, D
dim K = 3
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
"""
LOOP = """latent z[N]      : cat[K]
for n in 1:N {{
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], {spread})
}}
"""
MODELS = {
    "diag": ("param  s2[K]     : pos[D]\n", "diag(s2[z[n]])", "s2"),
    "spherical": ("param  v[K]      : pos\n", "v[z[n]] * eye(D)", "v"),
    "tied": ("param  Sigma     : spd[D]\n", "Sigma", "Sigma"),
}


_COMPILED: dict = {}


def compiled(kind):
    if kind not in _COMPILED:
        decl, spread, _ = MODELS[kind]
        _COMPILED[kind] = emdsl.loads(HEAD + decl + LOOP.format(spread=spread),
                                      name=f"{kind}.emm")
    return _COMPILED[kind]


def start(X, kind, seed=3):
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), K, replace=False)].copy()
    cov = np.cov(X.T, bias=True)
    spread = {"diag": np.tile(np.diag(cov), (K, 1)), "tied": cov,
              "spherical": np.full(K, np.diag(cov).mean())}[kind]
    prec = np.linalg.inv(spread) if kind == "tied" else 1.0 / spread
    return np.full(K, 1.0 / K), means, spread, prec


def fit_both(kind, X, n_iter, reg=0.0):
    """scikit-learn's GaussianMixture (reg_covar = reg) and emdsl's fit from one start."""
    w0, mu0, spread0, prec0 = start(X, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = sklearn_mixture.GaussianMixture(
            n_components=K, covariance_type=kind, reg_covar=reg, tol=0, max_iter=n_iter,
            weights_init=w0, means_init=mu0, precisions_init=prec0, random_state=0).fit(X)
        r = compiled(kind).fit(x=X, K=K, reg=reg, tol=0, max_iter=n_iter,
                               init={"weights": w0, "mu": mu0, MODELS[kind][2]: spread0})
    return gm, r


@pytest.mark.parametrize("n_iter", [1, 5, 30])
@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_matches_sklearn_covariance_type(kind, dataset, n_iter):
    X = DATASETS[dataset]()
    name = MODELS[kind][2]
    gm, r = fit_both(kind, X, n_iter)
    assert r.n_iter == n_iter == gm.n_iter_
    p = r.params
    assert_close(p["weights"], gm.weights_, RTOL, what="weights")
    assert_close(p["mu"], gm.means_, RTOL, RTOL * np.abs(gm.means_).max(axis=0), "mu")
    cov = gm.covariances_
    scale = np.abs(cov).max() if kind != "tied" else np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert_close(p[name], cov, RTOL, RTOL * scale, name)
    assert r.elbo[-1] == pytest.approx(gm.lower_bound_ * len(X), rel=RTOL)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_reg_is_sklearns_reg_covar(kind):
    """`reg` is added to every covariance's diagonal - a full or tied matrix, the
    variances of a diagonal or spherical one alike - as scikit-learn's ``reg_covar``:
    params equal after 5 iterations with reg = reg_covar = 0.05."""
    X = DATASETS[sorted(DATASETS)[0]]()
    name = MODELS[kind][2]
    gm, r = fit_both(kind, X, 5, reg=0.05)
    assert_close(r.params["mu"], gm.means_, RTOL, RTOL * np.abs(gm.means_).max(axis=0), "mu")
    assert_close(r.params[name], gm.covariances_, RTOL, RTOL * np.abs(gm.covariances_).max(),
                 name)


SCALED = """model Scaled
dim N, D
dim K = 3
data   x[N]    : real[D]
param  w       : simplex[K]
param  mu[K]   : real[D]
param  S[K]    : spd[D]
hyper  c       : real[D]
hyper  m0      : real[D]
latent z[N]    : cat[K]
for n in 1:N {
    z[n] ~ Categorical(w)
    x[n] ~ MvNormal(MEAN, S[z[n]])
}
"""


@pytest.mark.parametrize("mean, to_mu", [
    ("c * mu[z[n]] + m0", lambda E, c, m0: (E - m0) / c),
    ("m0 - mu[z[n]] / c", lambda E, c, m0: (m0 - E) * c),
    ("mu[z[n]] * c", lambda E, c, m0: E / c),
])
def test_means_through_a_known_scale_and_shift_match_sklearn(mean, to_mu):
    """An MvNormal mean c * mu + m0 (c a known vector, element by element) is a bijective
    map of mu: its maximum-likelihood mu is scikit-learn's full-covariance mean mapped
    back, after 1, 5 and 30 iterations from the same start."""
    X = DATASETS[sorted(DATASETS)[0]]()
    c, m0 = np.array([2.0, -0.5]), np.array([1.0, 30.0])
    w0, means, cov, _ = start(X, "tied")
    m = emdsl.loads(SCALED.replace("MEAN", mean), name="scaled.emm", use_cache=False)
    for n_iter in (1, 5, 30):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm = sklearn_mixture.GaussianMixture(
                n_components=K, reg_covar=0, tol=0, max_iter=n_iter, weights_init=w0,
                means_init=means, precisions_init=np.repeat(np.linalg.inv(cov)[None], K, 0),
                random_state=0).fit(X)
            r = m.fit(x=X, c=c, m0=m0, reg=0, tol=0, max_iter=n_iter,
                      init={"w": w0, "mu": to_mu(means, c, m0), "S": np.repeat(cov[None], K, 0)})
        want = to_mu(gm.means_, c, m0)
        assert_close(r.params["mu"], want, RTOL, RTOL * np.abs(want).max(axis=0), "mu")
        assert_close(r.params["S"], gm.covariances_, RTOL,
                     RTOL * np.abs(gm.covariances_).max(), "S")
