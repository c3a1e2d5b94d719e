"""Structured factors of scalar pairs, q(v, u) = q(v | u) q(u), derived from the log
densities (a mean whose prior's spread is scaled by a latent precision or variance): a
Normal-Gamma mixture (Bishop section 10.2's 1-D analogue), a Normal-InverseGamma
mixture and a precision shared by the components, nobody's model before this test; each
checked against its updates written out by hand, the update as a stationary point of the
ELBO, the ELBO never decreasing, and the ELBO against Monte Carlo."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special, stats

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning
from test_variational_scalar import _elbo_at, _elog_dir, _softmax_rows

HEAD = """model M
dim N
dim K = 3
data x[N] : real
hyper alpha0 : pos = 2.0
hyper m0 : real = 100.0
hyper beta0 : pos = 0.05
hyper a0 : pos = 2.0
hyper b0 : pos = 1.5
latent weights : simplex[K]
latent mu[K] : real
latent z[N] : cat[K]
weights ~ Dirichlet(alpha0)
"""

NORMAL_GAMMA = HEAD + """latent tau[K] : pos
for k in 1:K {
    tau[k] ~ Gamma(a0, b0)
    mu[k] ~ Normal(m0, prec=beta0 * tau[k])
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], prec=tau[z[n]])
}
"""

NORMAL_INVGAMMA = HEAD + """latent s2[K] : pos
for k in 1:K {
    s2[k] ~ InvGamma(a0, b0)
    mu[k] ~ Normal(m0, s2[k] / beta0)
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""

SHARED_PRECISION = HEAD + """latent tau : pos
tau ~ Gamma(a0, b0)
for k in 1:K { mu[k] ~ Normal(m0, prec=beta0 * tau) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], prec=tau)
}
"""


def _normal_mixture_statistics(x, R, h):
    """N_k, the component means and the two terms of the Normal-Gamma scale update:
    N_k S_k (within) + beta0 N_k / (beta0 + N_k) (xbar_k - m0)^2 (between)."""
    N = R.sum(0)
    xbar = R.T @ x / N
    within = np.sum(R * (x[:, None] - xbar) ** 2, axis=0)
    between = h["beta0"] * N / (h["beta0"] + N) * (xbar - h["m0"]) ** 2
    return N, xbar, within + between


def _posterior_by_hand(x, R, h):
    """Bishop's Normal-Gamma posterior per component (PRML 2.3.6; Murphy 2007 eq. 85-89):
    beta = beta0 + N, m = (beta0 m0 + N xbar) / beta, a = a0 + N / 2,
    b = b0 + (N S + beta0 N (xbar - m0)^2 / (beta0 + N)) / 2; q(mu | tau) = N(m, 1 / (beta tau))."""
    N, xbar, sq = _normal_mixture_statistics(x, R, h)
    beta = h["beta0"] + N
    return N, {"weights.concentration": h["alpha0"] + N,
               "mu.mean": (h["beta0"] * h["m0"] + N * xbar) / beta, "mu.var": 1 / beta}, sq


def _responsibilities(x, q, e_prec, e_log_prec):
    """The E-step by hand: E[log N(x | mu, 1/prec)] = (E[log prec] - log 2 pi
    - E[prec] (x - m)^2 - var) / 2, with q(mu | prec) = N(m, var / prec)."""
    m, v = q["mu.mean"], q["mu.var"]
    L = _elog_dir(q["weights.concentration"]) + 0.5 * (
        e_log_prec - np.log(2 * np.pi) - e_prec * (x[:, None] - m) ** 2 - v)
    return _softmax_rows(L)


def _normal_gamma_by_hand(x, q, h):
    """q(tau) = Gamma(a, b): E[tau] = a / b, E[log tau] = digamma(a) - log b."""
    a, b = q["tau.shape"], q["tau.rate"]
    R = _responsibilities(x, q, a / b, special.digamma(a) - np.log(b))
    N, out, sq = _posterior_by_hand(x, R, h)
    return {**out, "tau.shape": h["a0"] + N / 2, "tau.rate": h["b0"] + sq / 2}


def _normal_invgamma_by_hand(x, q, h):
    """q(s2) = InvGamma(a, b): E[1/s2] = a / b, E[log s2] = log b - digamma(a); q(mu | s2)
    = N(m, s2 / beta): the same statistics, the update of the variance's scale as above."""
    a, b = q["s2.shape"], q["s2.scale"]
    R = _responsibilities(x, q, a / b, special.digamma(a) - np.log(b))
    N, out, sq = _posterior_by_hand(x, R, h)
    return {**out, "s2.shape": h["a0"] + N / 2, "s2.scale": h["b0"] + sq / 2}


def _shared_precision_by_hand(x, q, h):
    """One tau for all components: q(tau) = Gamma(a0 + N / 2, b0 + sum_k (N_k S_k +
    beta0 N_k (xbar_k - m0)^2 / (beta0 + N_k)) / 2); the K prior terms' 1/2 log tau
    cancel against the entropies of the q(mu_k | tau)."""
    a, b = q["tau.shape"], q["tau.rate"]
    R = _responsibilities(x, q, a / b, special.digamma(a) - np.log(b))
    N, out, sq = _posterior_by_hand(x, R, h)
    return {**out, "tau.shape": h["a0"] + N.sum() / 2, "tau.rate": h["b0"] + sq.sum() / 2}


CASES = {
    "normal_gamma": (NORMAL_GAMMA, _normal_gamma_by_hand),
    "normal_invgamma": (NORMAL_INVGAMMA, _normal_invgamma_by_hand),
    "shared_precision": (SHARED_PRECISION, _shared_precision_by_hand),
}


@pytest.fixture(scope="module")
def models():
    return {name: emdsl.loads(src, name=f"{name}.emm", use_cache=False)
            for name, (src, _) in CASES.items()}


def _data(rng, n=300):
    """Three components around 100 (the centred E-step and updates are exercised)."""
    z = rng.integers(3, size=n)
    return rng.normal(np.array([-4.0, 0.0, 5.0])[z] + 100.0, np.array([0.5, 1.0, 0.7])[z])


def _setup(m, x):
    h = {**m._bind({"x": x, "N": len(x)}).hypers, "N": len(x), "K": 3}
    return m.module, m.module.prepare({"x": x}, h), h


@pytest.mark.parametrize("name", list(CASES))
def test_one_sweep_equals_the_updates_written_by_hand(models, name):
    m, by_hand = models[name], CASES[name][1]
    x = _data(np.random.default_rng(7))
    mod, st, h = _setup(m, x)
    q = mod.init(st, {"x": x}, h, np.random.default_rng(1), 0.0)
    q = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    ours = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    theirs = by_hand(x, q, h)
    assert set(theirs) == set(ours)
    for k, v in theirs.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-9, err_msg=k)


@pytest.mark.parametrize("name", list(CASES))
def test_the_pair_update_is_a_stationary_point_of_the_elbo(models, name):
    """With q(z) held at R, q(v | u) q(u) from one update is the joint optimum of the
    pair (q(v | u) is optimal for every u, then q(u) given it): the ELBO's derivative in
    every variational parameter vanishes (central differences, random directions); away
    from it, it does not."""
    rng = np.random.default_rng(11)
    x = _data(rng, n=120)
    mod, st, h = _setup(models[name], x)
    R = rng.dirichlet(np.ones(3), size=len(x))
    q = mod.m_step(mod.expected_stats(st, R), None, h, 0.0)
    base = _elbo_at(mod, st, h, R, q)
    for key in mod.PARAMS:
        for _ in range(2):
            d = rng.normal(size=np.shape(q[key])) * np.abs(q[key])
            up = _elbo_at(mod, st, h, R, {**q, key: q[key] + 1e-6 * d})
            down = _elbo_at(mod, st, h, R, {**q, key: q[key] - 1e-6 * d})
            assert abs(up - down) / 2e-6 <= 1e-6 * abs(base), key
    key = next(k for k in mod.PARAMS if k.endswith(".rate") or k.endswith(".scale"))
    moved = {**q, key: q[key] * 1.3}
    d = np.abs(q[key])
    slope = (_elbo_at(mod, st, h, R, {**moved, key: moved[key] + 1e-6 * d})
             - _elbo_at(mod, st, h, R, {**moved, key: moved[key] - 1e-6 * d})) / 2e-6
    assert abs(slope) > 1e-2


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("name", list(CASES))
def test_elbo_never_decreases(models, name, seed):
    x = _data(np.random.default_rng(seed), n=150)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = models[name].fit(x=x, seed=seed, max_iter=40, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def test_normal_gamma_elbo_matches_monte_carlo(models):
    """E_q[log p(x, z, weights, mu, tau)] - E_q[log q] by sampling tau ~ q(tau), then
    mu ~ q(mu | tau) = N(m, var / tau), with scipy's densities."""
    m = models["normal_gamma"]
    x = _data(np.random.default_rng(3), n=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=x, seed=1, max_iter=3, tol=0.0)
    mod, st, h = _setup(m, x)
    R, _, loglik = mod.e_step(st, r.params, h)
    ours = loglik + mod.log_prior(r.params, h)
    p = r.params
    rng = np.random.default_rng(0)
    S = 200000
    pi = stats.dirichlet(p["weights.concentration"]).rvs(S, random_state=rng)
    tau = rng.gamma(p["tau.shape"], 1 / p["tau.rate"], size=(S, 3))
    mu = rng.normal(p["mu.mean"], np.sqrt(p["mu.var"] / tau))
    f = stats.dirichlet(np.full(3, h["alpha0"])).logpdf(pi.T) \
        - stats.dirichlet(p["weights.concentration"]).logpdf(pi.T)
    f += (stats.gamma(h["a0"], scale=1 / h["b0"]).logpdf(tau)
          - stats.gamma(p["tau.shape"], scale=1 / p["tau.rate"]).logpdf(tau)).sum(1)
    f += (stats.norm(h["m0"], 1 / np.sqrt(h["beta0"] * tau)).logpdf(mu)
          - stats.norm(p["mu.mean"], np.sqrt(p["mu.var"] / tau)).logpdf(mu)).sum(1)
    f += np.log(pi) @ R.sum(0)
    N, S1, S2 = R.sum(0), R.T @ x, R.T @ x ** 2   # sum_n r log N(x | mu, 1/tau), exactly
    f += (0.5 * (np.log(tau) - np.log(2 * np.pi)) * N
          - 0.5 * tau * (S2 - 2 * mu * S1 + mu ** 2 * N)).sum(1)
    mc = f.mean() - np.sum(special.xlogy(R, R))
    se = f.std() / np.sqrt(S)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)


def test_posterior_by_name_and_the_conditional_form(models):
    x = _data(np.random.default_rng(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = models["normal_gamma"].fit(x=x, seed=0)
    mu, tau = r.posterior["mu"], r.posterior["tau"]
    assert set(mu) == {"mean", "var", "E[mu]"}       # E[mu^2] needs E[1/tau]: left out
    assert set(tau) == {"shape", "rate", "E[tau]", "E[log(tau)]"}
    np.testing.assert_allclose(sorted(mu["E[mu]"]), [96.0, 100.0, 105.0], atol=0.3)
    np.testing.assert_allclose(sorted(1 / np.sqrt(tau["E[tau]"])), [0.5, 0.7, 1.0], rtol=0.25)
    assert models["normal_gamma"].module.Q_FACTORS["mu"]["given"] == "tau: Normal(mean, var/tau)"


def test_the_derivation_shows_the_pair():
    text = emdsl.loads(NORMAL_GAMMA, name="ng.emm", use_cache=False).derivation("text")
    assert "q(mu | tau) = Normal(mean, var/tau)" in text
    assert "E_q[mu**2 | tau] = q_mu_mean**2 + q_mu_var/tau" in text
    assert "-KL(q(mu | tau) || p(mu | tau))" in text
    assert "E_q(tau)[KL(q(mu | tau) || p(mu | tau))]" in text


def test_a_pair_that_is_not_conjugate_is_located():
    """tau^2 in the mean's prior: q(mu | tau)'s natural parameters are not combinations of
    1, tau and log tau, so q(tau) would not be a Gamma."""
    src = NORMAL_GAMMA.replace("prec=beta0 * tau[k])", "prec=beta0 * tau[k] * tau[k])")
    with pytest.raises(emdsl.errors.NonConjugateError,
                       match=r"structured factor q\(mu \| tau\).* has the term") as e:
        emdsl.loads(src, name="m.emm", use_cache=False)
    assert e.value.span.line == 1 + src.split("\n").index(
        "    mu[k] ~ Normal(m0, prec=beta0 * tau[k] * tau[k])")
