"""CAVI for hierarchical models without a discrete latent: a latent per group of a
categorical covariate (y[n] ~ Normal(mu[g[n]], prec=tau)) whose prior holds global
latents (mu[j] ~ Normal(mu0, prec=lam)), and a Poisson-Gamma hierarchy with a latent
rate scale (the "pumps" model, Gelfand & Smith 1990). Models nobody wrote before this
test: one sweep against the updates written out by hand, the ELBO against Monte Carlo,
the ELBO never decreasing, parameter recovery."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning

NORMAL = """model HierarchicalNormal
dim N, G
data   g[N]   : cat[G]
data   y[N]   : real
hyper  v0     : pos = 100.0
hyper  a0     : pos = 1.0
hyper  b0     : pos = 1.0
hyper  c0     : pos = 1.0
hyper  d0     : pos = 1.0
latent mu0    : real
latent lam    : pos
latent tau    : pos
latent mu[G]  : real
mu0 ~ Normal(0, v0)
lam ~ Gamma(a0, b0)
tau ~ Gamma(c0, d0)
for j in 1:G { mu[j] ~ Normal(mu0, prec=lam) }
for n in 1:N { y[n] ~ Normal(mu[g[n]], prec=tau) }
"""
HN = {"v0": 100.0, "a0": 1.0, "b0": 1.0, "c0": 1.0, "d0": 1.0}

PUMPS = """model Pumps
dim N, G
data   g[N]    : cat[G]
data   y[N]    : count
hyper  a       : pos = 1.5
hyper  c0      : pos = 0.1
hyper  d0      : pos = 1.0
latent scale   : pos
latent rate[G] : pos
scale ~ Gamma(c0, d0)
for j in 1:G { rate[j] ~ Gamma(a, scale) }
for n in 1:N { y[n] ~ Poisson(rate[g[n]]) }
"""
HP = {"a": 1.5, "c0": 0.1, "d0": 1.0}


@pytest.fixture(scope="module")
def normal():
    return emdsl.loads(NORMAL, name="hn.emm", use_cache=False)


@pytest.fixture(scope="module")
def pumps():
    return emdsl.loads(PUMPS, name="pumps.emm", use_cache=False)


def _normal_data(seed, G=8, n=200):
    rng = np.random.default_rng(seed)
    g = rng.integers(G, size=n)
    mu = rng.normal(3.0, 2.0, G)
    return g, rng.normal(mu[g], 0.7), mu


def _pumps_data(seed, G=10, n=150):
    rng = np.random.default_rng(seed)
    g = rng.integers(G, size=n)
    rate = rng.gamma(1.5, 1 / 0.5, G)
    return g, rng.poisson(rate[g]), rate


def _normal_by_hand(g, y, q, G):
    """Each factor in the module's order (mu0, lam, tau, mu), from the newest others."""
    e_mu, e_mu2 = q["mu.mean"], q["mu.mean"] ** 2 + q["mu.var"]
    e_lam = q["lam.shape"] / q["lam.rate"]
    prec0 = 1 / HN["v0"] + G * e_lam
    m0 = e_lam * e_mu.sum() / prec0
    e_m0, e_m02 = m0, m0 ** 2 + 1 / prec0
    lam = (HN["a0"] + G / 2, HN["b0"] + 0.5 * np.sum(e_mu2 - 2 * e_m0 * e_mu + e_m02))
    e_lam = lam[0] / lam[1]
    tau = (HN["c0"] + len(y) / 2,
           HN["d0"] + 0.5 * np.sum(y ** 2 - 2 * y * e_mu[g] + e_mu2[g]))
    e_tau = tau[0] / tau[1]
    n_j, s_j = np.bincount(g, minlength=G), np.bincount(g, weights=y, minlength=G)
    prec = e_lam + e_tau * n_j
    return {"mu0.mean": m0, "mu0.var": 1 / prec0, "lam.shape": lam[0], "lam.rate": lam[1],
            "tau.shape": tau[0], "tau.rate": tau[1],
            "mu.mean": (e_lam * e_m0 + e_tau * s_j) / prec, "mu.var": 1 / prec}


def _pumps_by_hand(g, y, q, G):
    """q(scale) = Gamma(c0 + G a, d0 + sum_j E[rate_j]); q(rate_j) = Gamma(a + S_j,
    E[scale] + n_j)."""
    e_rate = q["rate.shape"] / q["rate.rate"]
    shape, rate = HP["c0"] + G * HP["a"], HP["d0"] + e_rate.sum()
    n_j, s_j = np.bincount(g, minlength=G), np.bincount(g, weights=y, minlength=G)
    return {"scale.shape": shape, "scale.rate": rate,
            "rate.shape": HP["a"] + s_j, "rate.rate": shape / rate + n_j}


CASES = {"normal": (_normal_data, _normal_by_hand, HN),
         "pumps": (_pumps_data, _pumps_by_hand, HP)}


@pytest.mark.parametrize("name", list(CASES))
def test_one_sweep_equals_the_updates_written_by_hand(normal, pumps, name):
    m = {"normal": normal, "pumps": pumps}[name]
    data_of, by_hand, hyp = CASES[name]
    g, y, _ = data_of(0)
    G = int(g.max()) + 1
    h = {**hyp, "N": len(y), "G": G}
    mod = m.module
    st = mod.prepare({"g": g, "y": y}, h)
    q = mod.init(st, {"g": g, "y": y}, h, np.random.default_rng(1), 0.0)
    q = mod.m_step(st["stats"], q, h, 0.0)
    ours = mod.m_step(st["stats"], q, h, 0.0)
    theirs = by_hand(g, y.astype(float), q, G)
    assert set(theirs) == set(ours)
    for k, v in theirs.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-10, err_msg=k)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("name", list(CASES))
def test_elbo_never_decreases(normal, pumps, name, seed):
    m = {"normal": normal, "pumps": pumps}[name]
    g, y, _ = CASES[name][0](seed, n=80)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = m.fit(g=g, y=y, G=int(g.max()) + 1, max_iter=40, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def test_hierarchical_normal_elbo_matches_monte_carlo(normal):
    g, y, _ = _normal_data(2, G=4, n=30)
    h = {**HN, "N": len(y), "G": 4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        q = normal.fit(g=g, y=y, G=4, max_iter=2, tol=0.0).params
    mod = normal.module
    st = mod.prepare({"g": g, "y": y}, h)
    ours = mod.e_step(st, q, h)[2] + mod.log_prior(q, h)
    rng = np.random.default_rng(0)
    S = 200000
    m0 = rng.normal(q["mu0.mean"], np.sqrt(q["mu0.var"]), S)
    lam = rng.gamma(q["lam.shape"], 1 / q["lam.rate"], S)
    tau = rng.gamma(q["tau.shape"], 1 / q["tau.rate"], S)
    mu = rng.normal(q["mu.mean"], np.sqrt(q["mu.var"]), (S, 4))
    f = stats.norm(0, np.sqrt(HN["v0"])).logpdf(m0) \
        - stats.norm(q["mu0.mean"], np.sqrt(q["mu0.var"])).logpdf(m0)
    f += stats.gamma(HN["a0"], scale=1 / HN["b0"]).logpdf(lam) \
        - stats.gamma(q["lam.shape"], scale=1 / q["lam.rate"]).logpdf(lam)
    f += stats.gamma(HN["c0"], scale=1 / HN["d0"]).logpdf(tau) \
        - stats.gamma(q["tau.shape"], scale=1 / q["tau.rate"]).logpdf(tau)
    f += (stats.norm(m0[:, None], 1 / np.sqrt(lam[:, None])).logpdf(mu)
          - stats.norm(q["mu.mean"], np.sqrt(q["mu.var"])).logpdf(mu)).sum(1)
    f += stats.norm(mu[:, g], 1 / np.sqrt(tau[:, None])).logpdf(y).sum(1)
    mc, se = f.mean(), f.std() / np.sqrt(S)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)


def test_the_group_means_are_recovered(normal):
    g, y, mu = _normal_data(3, G=6, n=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = normal.fit(g=g, y=y, G=6, max_iter=200, tol=1e-10)
    np.testing.assert_allclose(r.posterior["mu"]["mean"], mu, atol=0.1)
    np.testing.assert_allclose(1 / np.sqrt(r.posterior["tau"]["E[tau]"]), 0.7, rtol=0.05)
    assert r.posterior["mu"]["mean"].shape == (6,)


@pytest.mark.parametrize("edit, words", [
    (("Normal(mu[g[n]], prec=tau)", "Normal(mu[g[n]] + mu[1], prec=tau)"),
     r"'mu\[1\]' in .* indexed by a categorical covariate"),
    (("mu0 ~ Normal(0, v0)", "mu0 ~ Normal(0, v0)\nlatent nu[G] : real\n"
      "for j in 1:G { nu[j] ~ Normal(0, v0) }"), None),
])
def test_indexings_this_version_does_not_derive_are_located(edit, words):
    src = NORMAL.replace(*edit)
    if words is None:   # a latent per group that no statement uses: located, not internal
        with pytest.raises(emdsl.errors.NonConjugateError, match="latent 'nu'"):
            emdsl.loads(src, name="e.emm", use_cache=False)
        return
    with pytest.raises(emdsl.errors.NonConjugateError, match=words) as e:
        emdsl.loads(src, name="e.emm", use_cache=False)
    assert e.value.span is not None


BISHOP = """model UnivariateGaussian
dim N
data   x[N]   : real
hyper  mu0    : real = 0.5
hyper  lam0   : pos = 2
hyper  a0     : pos = 1.5
hyper  b0     : pos = 0.7
latent mu     : real
latent tau    : pos
tau ~ Gamma(a0, b0)
mu ~ Normal(mu0, prec=lam0 * tau)
for n in 1:N {
    x[n] ~ Normal(mu, prec=tau)
}
"""


def test_a_normal_gamma_pair_without_a_discrete_latent_is_bishops_mean_field():
    """PRML 10.1.3: mu ~ N(mu0, (lam0 tau)^-1), tau ~ Gamma(a0, b0), x_n ~ N(mu, 1/tau);
    q(mu) q(tau) from eqs. 10.26-10.30, iterated by hand, and the ELBO never decreasing
    (a mixture would join them, q(mu | tau) q(tau); CAVI over global latents does not)."""
    m = emdsl.loads(BISHOP, name="bishop.emm", use_cache=False)
    assert m.factor_graph is not None and "mean-field" in m.derivation("text")
    x = np.random.default_rng(0).normal(2.0, 0.5, size=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = m.fit(x=x, tol=0, max_iter=60)
    N, mu0, lam0, a0, b0 = len(x), 0.5, 2.0, 1.5, 0.7
    e_tau = a0 / b0
    for _ in range(60):
        mu_n, lam_n = (lam0 * mu0 + x.sum()) / (lam0 + N), (lam0 + N) * e_tau   # 10.26-27
        e_mu, e_mu2 = mu_n, mu_n ** 2 + 1 / lam_n
        a_n = a0 + (N + 1) / 2                                                  # 10.29
        b_n = b0 + 0.5 * (np.sum(x ** 2) - 2 * e_mu * x.sum() + N * e_mu2
                          + lam0 * (e_mu2 - 2 * e_mu * mu0 + mu0 ** 2))         # 10.30
        e_tau = a_n / b_n
    np.testing.assert_allclose([r.params["mu.mean"], r.params["mu.var"], r.params["tau.shape"],
                                r.params["tau.rate"]], [mu_n, 1 / lam_n, a_n, b_n], rtol=1e-10)
    assert np.all(np.diff(r.elbo) >= -1e-12 * abs(r.elbo[-1]))
