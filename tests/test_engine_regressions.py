"""Models a review of the engine found mishandled, kept as regression tests."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import emdsl
from test_generality import assert_monotone


def fit(src, name, **kw):
    m = emdsl.loads(src, name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m, m.fit(**kw)


def test_tied_precision_with_a_mean_prior_scaled_by_it():
    """The K mean priors each send a message to the one shared precision."""
    src = """model C
dim N, D
dim K = 2
data x[N] : real[D]
hyper m0 : real[D] = zeros(D)
hyper beta0 : pos = 0.5
hyper W0 : spd[D] = eye(D)
hyper nu0 : pos = D + 2
param w : simplex[K]
param mu[K] : real[D]
param Lam : spd[D]
latent z[N] : cat[K]
Lam ~ Wishart(W0, nu0)
for k in 1:K { mu[k] ~ MvNormal(m0, prec=beta0 * Lam) }
for n in 1:N {
  z[n] ~ Categorical(w)
  x[n] ~ MvNormal(mu[z[n]], prec=Lam)
}
"""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(3, 1, (300, 2))])
    m, r = fit(src, "tiedprior.emm", x=x, seed=0, n_init=2)
    assert_monotone(r.elbo)
    b = m._bind({"x": x})
    h = {**b.dims, **b.hypers}
    R = r.posterior["z"]
    new = m.module.m_step(m.module.expected_stats(m.module.prepare(b.data, h), R), r.params,
                          h, 0.0)
    n, b0, m0 = R.sum(0), 0.5, np.zeros(2)
    mu = (R.T @ x + b0 * m0) / (n + b0)[:, None]
    S = sum(np.einsum("n,ni,nj->ij", R[:, k], x - mu[k], x - mu[k])
            + b0 * np.outer(mu[k] - m0, mu[k] - m0) for k in range(2)) + np.eye(2)
    np.testing.assert_allclose(new["mu"], mu, rtol=1e-10)
    np.testing.assert_allclose(new["Lam"], (600 + 2 + 4 - 2 - 1) * np.linalg.inv(S), rtol=1e-10)
    p = r.params
    ref = stats.wishart(df=4, scale=np.eye(2)).logpdf(p["Lam"]) + sum(
        stats.multivariate_normal(m0, np.linalg.inv(b0 * p["Lam"])).logpdf(v) for v in p["mu"])
    assert m.module.log_prior(p, h) == pytest.approx(ref, rel=1e-10)


def test_a_mean_per_dimension_shared_by_the_components():
    src = """model A
dim N, D
dim K = 2
data x[N, D] : real
param w : simplex[K]
param m[D] : real
param v[K] : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  for d in 1:D { x[n, d] ~ Normal(m[d], v[z[n]]) }
}
"""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (400, 3)), rng.normal(0, 5, (400, 3))]) + [1, 2, 3]
    _, r = fit(src, "sharedmean.emm", x=x, seed=0, n_init=2)
    assert_monotone(r.elbo)
    np.testing.assert_allclose(r.params["m"], [1, 2, 3], atol=0.2)
    np.testing.assert_allclose(sorted(r.params["v"]), [1, 25], rtol=0.2)


def test_a_scaled_mean_with_a_known_variance():
    src = """model B
dim N
dim K = 2
data x[N] : real
hyper c : pos = 2.0
param w : simplex[K]
param mu[K] : real
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  x[n] ~ Normal(c * mu[z[n]], 1.0)
}
"""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, 300), rng.normal(4, 1, 300)])
    _, r = fit(src, "scaledmean.emm", x=x, seed=0, n_init=2)
    np.testing.assert_allclose(sorted(r.params["mu"]), [-1, 2], atol=0.1)


def test_a_lambert_w_m_step_is_real():
    src = """model L
dim N
dim K = 2
data y[N] : count
param w : simplex[K]
param a[K] : real
latent z[N] : cat[K]
for k in 1:K { a[k] ~ Normal(0, 1) }
for n in 1:N {
  z[n] ~ Categorical(w)
  y[n] ~ Poisson(exp(a[z[n]]))
}
"""
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.poisson(1.0, 300), rng.poisson(8.0, 300)])
    _, r = fit(src, "lambertw.emm", y=y, seed=0, n_init=2, tol=1e-8)   # (MAP: 1.149, 7.75)
    assert np.isrealobj(r.params["a"]) and np.all(np.isfinite(r.params["a"]))
    assert_monotone(r.elbo)
    np.testing.assert_allclose(sorted(np.exp(r.params["a"])), [1, 8], rtol=0.15)


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_a_mean_shared_across_an_inner_loop_with_per_dimension_variances(offset):
    """mu[k] is the mean of every dimension d, s2[d] each dimension's variance: the data are
    centred by one shift across d (a shift per d would not let mu's M-step separate)."""
    src = """model D
dim N, D
dim K = 2
data x[N, D] : real
param w : simplex[K]
param mu[K] : real
param s2[D] : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  for d in 1:D { x[n, d] ~ Normal(mu[z[n]], s2[d]) }
}
"""
    rng = np.random.default_rng(0)
    z = rng.integers(2, size=800)
    x = np.array([-3.0, 4.0])[z][:, None] + rng.normal(size=(800, 3)) * np.sqrt([.5, 1, 2])
    m, r = fit(src, "sharedloc.emm", x=x + offset, seed=0, n_init=2)
    assert_monotone(r.elbo)
    b = m._bind({"x": x + offset})
    h = {**b.dims, **b.hypers}
    R = r.posterior["z"]
    new = m.module.m_step(m.module.expected_stats(m.module.prepare(b.data, h), R), r.params,
                          h, 0.0)
    # ECM: mu given s2 (precision-weighted over d), then s2 given the new mu
    s2 = r.params["s2"]
    xs = x + offset
    mu = (R.T @ (xs / s2).sum(1)) / (R.sum(0) * (1 / s2).sum())
    np.testing.assert_allclose(new["mu"], mu, rtol=1e-9)
    dev = (xs[:, None, :] - mu[None, :, None]) ** 2
    np.testing.assert_allclose(new["s2"], np.einsum("nk,nkd->d", R, dev) / len(xs), rtol=1e-7)


def test_a_logistic_component_on_separated_data_stays_finite():
    """Every item of one component has y = 0: the closed-form M-step a = log(S / (N - S))
    is -inf there (Q grows without bound); the update steps toward it instead, so the fit
    stays finite, its log likelihood never decreases and p = expit(a) tends to 0 and 1."""
    src = """model LogisticBernoulli
dim N, D
dim K = 2
data   y[N, D]   : bin
param  weights   : simplex[K]
param  a[K]      : real
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { y[n, d] ~ Bernoulli(1 / (1 + exp(-a[z[n]]))) }
}
"""
    y = np.zeros((200, 5), dtype=int)
    y[:100] = 1
    for seed in range(3):
        m, r = fit(src, "separated.emm", y=y, seed=seed, max_iter=200)
        assert np.all(np.isfinite(r.params["a"])) and np.all(np.isfinite(r.elbo))
        assert_monotone(r.elbo)
        p = np.sort(1 / (1 + np.exp(-r.params["a"])))
        np.testing.assert_allclose(p, [0.0, 1.0], atol=1e-6)
        assert r.elbo[-1] > 200 * np.log(0.5) - 1e-6   # the mixture weights' part only
