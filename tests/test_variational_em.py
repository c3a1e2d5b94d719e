"""Variational EM with scalar point params beside variational latents in one statement:
`x[n] ~ Normal(mu[z[n]], s2)` with q(mu) Normal and s2 a point estimate (shared or one per
component), and a Gamma emission whose shape `a` is a point param beside a variational
rate (no closed form: a numerical M-step). Each M-step maximises E_q[log p] over the point
params given the q factors, then the q factors are updated given the new params; checked
against one sweep written out by hand, a stationary point by finite differences, and an
ELBO that never decreases."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special
from scipy.special import logsumexp

import emdsl
from emdsl.runtime.batch import ConvergenceWarning

NORMAL = """model NormalVEM
dim N
dim K = 2
data   x[N]     : real
param  w        : simplex[K]
param  s2{axis}    : pos
latent mu[K]    : real
latent z[N]     : cat[K]
for k in 1:K {{
    mu[k] ~ Normal(1, 100)
}}
for n in 1:N {{
    z[n] ~ Categorical(w)
    x[n] ~ Normal(mu[z[n]], s2{index})
}}
"""
GAMMA = """model GammaShapeVEM
dim N
dim K = 2
data   x[N]     : pos
param  w        : simplex[K]
param  a        : pos
latent rate[K]  : pos
latent z[N]     : cat[K]
for k in 1:K {
    rate[k] ~ Gamma(2, 1)
}
for n in 1:N {
    z[n] ~ Categorical(w)
    x[n] ~ Gamma(a, rate[z[n]])
}
"""
RNG = np.random.default_rng(0)
X = np.r_[RNG.normal(0.0, 1.0, 120), RNG.normal(5.0, 0.5, 80)]
Y = np.r_[RNG.gamma(3.0, 1 / 2.0, 150), RNG.gamma(3.0, 1 / 0.2, 150)]


def _sweep(mod, x, params, h):
    """emdsl's E-step and M-step from ``params`` (reg = 0): (responsibilities, new)."""
    st = mod.prepare({"x": x}, h)
    resp, ess, _ = mod.e_step(st, params, h)
    return resp, mod.m_step(ess, params, h, 0.0)


@pytest.mark.parametrize("tied", [True, False])
def test_a_sweep_is_the_hand_written_variational_em(tied):
    m = emdsl.loads(NORMAL.format(axis="" if tied else "[K]", index="" if tied else "[z[n]]"),
                    name="vem.emm", use_cache=False)
    assert m.module.ALGORITHM == "variational EM"
    params = {"w": np.array([0.3, 0.7]), "s2": np.array(2.0) if tied else np.array([2.0, 0.7]),
              "mu.mean": np.array([4.0, 0.5]), "mu.var": np.array([0.3, 0.2])}
    resp, new = _sweep(m.module, X, params, {"N": len(X), "K": 2})
    # by hand: q(z) from E_q[log N(x | mu_k, s2)], then w, s2 (given the old q(mu)), q(mu)
    Em, Em2 = params["mu.mean"], params["mu.mean"] ** 2 + params["mu.var"]
    s2 = params["s2"]
    L = np.log(params["w"]) - 0.5 * np.log(2 * np.pi * s2) \
        - (X[:, None] ** 2 - 2 * X[:, None] * Em + Em2) / (2 * s2)
    R = np.exp(L - logsumexp(L, axis=1, keepdims=True))
    np.testing.assert_allclose(resp, R, rtol=1e-10, atol=1e-14)
    Nk, S1, S2 = R.sum(0), R.T @ X, R.T @ X ** 2
    scatter = S2 - 2 * Em * S1 + Nk * Em2
    s2_new = scatter.sum() / len(X) if tied else scatter / Nk
    prec = 1 / 100 + Nk / s2_new
    ref = {"w": Nk / len(X), "s2": s2_new, "mu.var": 1 / prec,
           "mu.mean": (1 / 100 + S1 / s2_new) / prec}
    for k, v in ref.items():
        np.testing.assert_allclose(new[k], v, rtol=1e-10, err_msg=k)


@pytest.mark.parametrize("tied", [True, False])
def test_the_elbo_never_decreases(tied):
    m = emdsl.loads(NORMAL.format(axis="" if tied else "[K]", index="" if tied else "[z[n]]"),
                    name="vem.emm", use_cache=False)
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = m.fit(x=X, seed=seed, max_iter=100)
        assert np.all(np.diff(r.elbo) >= -1e-10 * abs(r.elbo[-1])), seed


def test_a_point_shape_beside_a_variational_rate_is_a_stationary_point():
    """Gamma(a, rate[z[n]]): a has no closed form (digamma); its update makes the
    derivative of E_q[log p] in a zero given the responsibilities and the old q(rate)."""
    m = emdsl.loads(GAMMA, name="gamma_vem.emm", use_cache=False)
    params = {"w": np.array([0.5, 0.5]), "a": np.array(1.5),
              "rate.shape": np.array([20.0, 30.0]), "rate.rate": np.array([10.0, 100.0])}
    resp, new = _sweep(m.module, Y, params, {"N": len(Y), "K": 2})
    e_log_rate = special.digamma(params["rate.shape"]) - np.log(params["rate.rate"])

    def expected_loglik(a):
        return np.sum(resp * (a * e_log_rate - special.gammaln(a)
                              + (a - 1) * np.log(Y)[:, None]))
    a, h = float(new["a"]), 1e-5
    assert (expected_loglik(a + h) - expected_loglik(a - h)) / (2 * h) == \
        pytest.approx(0.0, abs=1e-6 * len(Y))
    assert expected_loglik(a) >= max(expected_loglik(a * 0.99), expected_loglik(a * 1.01))
    r = m.fit(x=Y, seed=0)
    assert np.all(np.diff(r.elbo) >= -1e-10 * abs(r.elbo[-1])) and r.converged
    assert r.params["a"] == pytest.approx(3.0, rel=0.15)


SCALE_MIXTURE = """model ScaleMixtureVEM
dim N
dim K = 2
data   x[N]     : real
param  w        : simplex[K]
param  m        : real
latent tau[K]   : pos
latent z[N]     : cat[K]
m ~ Normal(0, 10)
for k in 1:K {
    tau[k] ~ Gamma(2, 1)
}
for n in 1:N {
    z[n] ~ Categorical(w)
    x[n] ~ Normal(m, prec=tau[z[n]])
}
"""


def test_a_shared_point_mean_beside_variational_precisions():
    """A scale mixture: the mean a point param (MAP, Normal prior) shared by components
    whose precisions are variational; its update is the E[tau_k]-weighted mean with the
    prior's pull, the q(tau) updates use the new mean."""
    m = emdsl.loads(SCALE_MIXTURE, name="scale.emm", use_cache=False)
    rng = np.random.default_rng(1)
    z = rng.random(600) < 0.3
    x = np.where(z, rng.normal(1.0, 1.4, 600), rng.normal(1.0, 0.3, 600))
    params = {"w": np.array([0.5, 0.5]), "m": np.array(0.2),
              "tau.shape": np.array([3.0, 4.0]), "tau.rate": np.array([2.0, 0.5])}
    resp, new = _sweep(m.module, x, params, {"N": len(x), "K": 2})
    a, b = params["tau.shape"], params["tau.rate"]
    e_tau, e_log_tau = a / b, special.digamma(a) - np.log(b)
    L = np.log(params["w"]) + 0.5 * e_log_tau - 0.5 * np.log(2 * np.pi) \
        - 0.5 * e_tau * (x[:, None] - params["m"]) ** 2
    R = np.exp(L - logsumexp(L, axis=1, keepdims=True))
    np.testing.assert_allclose(resp, R, rtol=1e-10, atol=1e-14)
    mean = np.sum(R * e_tau * x[:, None]) / (np.sum(R * e_tau) + 1 / 10)   # prior N(0, 10)
    np.testing.assert_allclose(new["m"], mean, rtol=1e-10)
    Nk = R.sum(0)
    np.testing.assert_allclose(new["tau.shape"], 2 + Nk / 2, rtol=1e-10)
    np.testing.assert_allclose(new["tau.rate"], 1 + 0.5 * (R * (x[:, None] - mean) ** 2).sum(0),
                               rtol=1e-10)
    r = m.fit(x=x, seed=0, n_init=2)
    assert np.all(np.diff(r.elbo) >= -1e-10 * abs(r.elbo[-1]))
    assert r.params["m"] == pytest.approx(1.0, abs=0.05)


REGRESSION = """model RegressionVEM
dim N, P
data   X[N]      : real[P]
data   y[N]      : real
hyper  a0        : pos = 1
hyper  b0        : pos = 1
param  beta      : pos
latent w         : real[P]
latent alpha     : pos
{prior}
alpha ~ Gamma(a0, b0)
w ~ MvNormal(zeros(P), prec=alpha * eye(P))
for n in 1:N {{
    y[n] ~ Normal(dot(w, X[n]), prec=beta)
}}
"""


@pytest.mark.parametrize("prior", ["", "beta ~ Gamma(3, 2)"])
def test_a_point_noise_precision_beside_global_latents(prior):
    """Bayesian regression with q(w) q(alpha) and the noise precision beta a point estimate
    (ML, or MAP with a Gamma prior) - variational EM without a discrete latent: q(w) given
    the old beta, beta given the new q(w), q(alpha); one sweep by hand."""
    m = emdsl.loads(REGRESSION.format(prior=prior), name="reg_vem.emm", use_cache=False)
    assert m.module.ALGORITHM == "variational EM"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.normal(size=150)
    h = {"N": 150, "P": 3, "a0": 1.0, "b0": 1.0}
    params = {"w.mean": np.zeros(3), "w.cov": np.eye(3), "beta": np.asarray(2.0),
              "alpha.shape": np.asarray(2.0), "alpha.rate": np.asarray(3.0)}
    st = m.module.prepare({"X": X, "y": y}, h)
    new = m.module.m_step(m.module.e_step(st, params, h)[1], params, h, 0.0)
    C = np.linalg.inv(2.0 / 3.0 * np.eye(3) + 2.0 * X.T @ X)
    mean = 2.0 * C @ X.T @ y
    resid = y @ y - 2 * mean @ X.T @ y + np.trace((C + np.outer(mean, mean)) @ X.T @ X)
    beta = (150 / 2 + (3 - 1 if prior else 0)) / (resid / 2 + (2 if prior else 0))
    np.testing.assert_allclose(new["w.mean"], mean, rtol=1e-10)
    np.testing.assert_allclose(new["w.cov"], C, rtol=1e-10)
    np.testing.assert_allclose(new["beta"], beta, rtol=1e-10)
    np.testing.assert_allclose(new["alpha.rate"], 1 + 0.5 * (np.trace(C) + mean @ mean),
                               rtol=1e-10)
    r = m.fit(X=X, y=y)
    assert np.all(np.diff(r.elbo) >= -1e-10 * abs(r.elbo[-1])) and r.converged
    assert float(r.params["beta"]) == pytest.approx(4.0, rel=0.3)


def test_the_derivation_shows_the_params_update():
    m = emdsl.loads(REGRESSION.format(prior=""), name="reg_vem.emm", use_cache=False)
    text, tex = m.derivation("text"), m.derivation("latex")
    assert "beta (a param): maximise Q(beta)" in text and "dQ/dbeta = 0 gives beta =" in text
    assert r"\quad\text{(the stationary point of }Q(" in tex and "\t" not in tex


def test_a_param_in_a_latents_prior_is_a_located_error():
    src = NORMAL.format(axis="", index="").replace("mu[k] ~ Normal(1, 100)",
                                                   "mu[k] ~ Normal(m0, 100)")
    src = src.replace("param  s2    : pos", "param  s2    : pos\nparam  m0 : real")
    with pytest.raises(emdsl.errors.NonConjugateError) as info:
        emdsl.loads(src, name="m0.emm", use_cache=False)
    text = str(info.value)
    assert "param 'm0' in the prior of latent 'mu'" in text and "m0.emm:11:" in text
