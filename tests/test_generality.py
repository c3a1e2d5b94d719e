"""Generality: models nobody wrote before, made of supported pieces, must compile and be right.

Each model below is NEW (not one of ``models/``): it combines pieces the language supports
(scalar emission families, two emissions per item, Categorical and MvNormal emissions,
keyword parameterisations, params through ``exp``, ``1 / ...``, ``sqrt`` and ``let``, user
``family`` blocks, group-dependent mixture weights, priors for MAP-EM) in ways the
acceptance models do not.  For every model that compiles, on data simulated here with numpy
from known params:

* recovery: ``fit(..., n_init=3)``, components matched to the truth (Hungarian method),
  every param within 5 (textbook, complete-data) standard errors;
* the objective never decreases (``reg=0``), also from a few short runs on small data;
* the objective is right: ``r.elbo[-1]`` (the fit converged, so ``r.params`` are the params
  its last E-step saw) equals a fresh ``e_step`` + ``log_prior`` at ``r.params`` and the
  mixture log likelihood (+ log prior) computed independently with scipy.stats; the
  posterior equals the scipy responsibilities;
* the fitted params have the declared shapes (``param_shapes``);
* the M-step: one ``m_step`` from fixed responsibilities raises the expected complete-data
  log likelihood (+ log prior) computed with scipy, and equals the textbook closed form
  computed here (or, for the numerical M-steps, the weighted MLE found by scipy.optimize).

Combinations that are not supported must fail with a located ``not supported yet`` error
of the right class, never a traceback (``NOT_YET`` lists the combinations 0.1 rejects).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
from scipy import optimize, special, stats
from scipy.optimize import linear_sum_assignment

import emdsl
from emdsl.runtime.batch import ConvergenceWarning

SE_FACTOR = 5.0


# ============================================================================ the harness
@dataclass
class Case:
    name: str
    source: str
    simulate: Callable          # rng -> (fit kwargs: data, dims, hypers), true params
    log_joint: Callable         # (kw, params) -> (N, K) log p(x_n, z_n = k) with scipy.stats
    se: Callable                # (kw, truth) -> {param: SE array like truth[param]}
    mstep: Callable | None      # (kw, resp) -> {param: textbook M-step}; None: no closed form
    match_on: str               # the param the components are matched on
    log_prior: Callable = lambda kw, p: 0.0
    kaxis: dict = field(default_factory=dict)    # param -> axis of K (default 0, None: none)
    recover: Callable = lambda p: p              # params -> the quantities compared
    mstep_rtol: float = 1e-8
    algorithm: str = "EM"
    small: Callable | None = None  # rng -> kw for the short monotonicity runs (default N=300)


_MODELS: dict = {}


def compiled(case: Case):
    if case.name not in _MODELS:
        _MODELS[case.name] = emdsl.loads(case.source, name=f"{case.name}.emm")
    return _MODELS[case.name]


def bound(m, kw):
    b = m._bind(kw)
    return b.data, {**b.dims, **b.hypers}


def fit(m, kw, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return m.fit(**kw, **opts)


def permute(params, perm, kaxis):
    out = {}
    for k, v in params.items():
        ax = kaxis.get(k, 0)
        out[k] = v if ax is None else np.take(np.asarray(v), perm, axis=ax)
    return out


def match(true, est):
    t = np.asarray(true, float).reshape(len(true), -1)
    e = np.asarray(est, float).reshape(len(est), -1)
    rows, cols = linear_sum_assignment(np.abs(t[:, None, :] - e[None, :, :]).sum(-1))
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    return perm


def scipy_objective(case, kw, params):
    return float(special.logsumexp(case.log_joint(kw, params), axis=1).sum()
                 + case.log_prior(kw, params))


def scipy_resp(case, kw, params):
    L = case.log_joint(kw, params)
    return np.exp(L - special.logsumexp(L, axis=1, keepdims=True))


def assert_monotone(elbo):
    elbo = np.asarray(elbo)
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[:-1])), \
        f"objective decreased: min step {np.diff(elbo).min():.3g}"


def check_case(case: Case, seed=0):
    m = compiled(case)
    assert m.module.ALGORITHM == case.algorithm
    rng = np.random.default_rng(seed + 100)
    kw, truth = case.simulate(rng)

    # --- recovery, with reg=0: the objective is exact and never decreases
    r = fit(m, kw, seed=seed, n_init=3, max_iter=2000, tol=1e-10, reg=0.0)
    data, h = bound(m, kw)
    shapes = m.module.param_shapes(h)
    assert {k: np.shape(v) for k, v in r.params.items()} == shapes, \
        f"{case.name}: fitted param shapes differ from the declared ones {shapes}"
    assert r.converged, f"{case.name}: no convergence in {r.n_iter} iterations"
    assert_monotone(r.elbo)
    perm = match(case.recover(truth)[case.match_on], case.recover(r.params)[case.match_on])
    est = case.recover(permute(r.params, perm, case.kaxis))
    tru = case.recover(truth)
    se = case.se(kw, truth)
    for name, s in se.items():
        err = np.abs(np.asarray(est[name], float) - np.asarray(tru[name], float))
        bad = err > SE_FACTOR * np.asarray(s)
        assert not np.any(bad), (f"{case.name}: {name} = {est[name]} vs true {tru[name]} "
                                 f"(SE {s}, {SE_FACTOR} SE allowed)")

    # --- the objective: generated E-step vs scipy at the fitted params, and r.elbo[-1]
    st = m.module.prepare(data, h)
    resp, _, loglik = m.module.e_step(st, r.params, h)
    fresh = loglik + m.module.log_prior(r.params, h)
    ref = scipy_objective(case, kw, r.params)
    np.testing.assert_allclose(fresh, ref, rtol=1e-10, atol=1e-7,
                               err_msg=f"{case.name}: e_step + log_prior vs scipy")
    np.testing.assert_allclose(r.elbo[-1], fresh, rtol=1e-10, atol=1e-7,
                               err_msg=f"{case.name}: elbo[-1] vs a fresh E-step")
    np.testing.assert_allclose(resp, scipy_resp(case, kw, r.params), atol=1e-8)
    np.testing.assert_allclose(r.posterior[m.module.LATENT], resp, atol=1e-10)
    # and at the true params (away from a stationary point)
    resp_t, _, ll_t = m.module.e_step(st, truth_params(m, truth), h)
    np.testing.assert_allclose(ll_t + m.module.log_prior(truth_params(m, truth), h),
                               scipy_objective(case, kw, truth), rtol=1e-10, atol=1e-7)

    # --- one M-step from fixed responsibilities: it raises the expected complete-data log
    # likelihood (+ log prior), and equals the textbook closed form
    post = scipy_resp(case, kw, truth)
    noise = rng.dirichlet(np.ones(post.shape[1]), size=post.shape[0])
    fixed = 0.7 * post + 0.3 * noise
    start = truth_params(m, truth)
    new = m.module.m_step(m.module.expected_stats(st, fixed), start, h, 0.0)
    assert {k: np.shape(v) for k, v in new.items()} == shapes
    q = lambda p: float(np.sum(fixed * case.log_joint(kw, p)) + case.log_prior(kw, p))
    assert q(new) >= q(start) - 1e-9 * abs(q(start)), f"{case.name}: the M-step lowered Q"
    if case.mstep is not None:
        want = case.mstep(kw, fixed)
        assert set(want) == set(m.module.PARAMS)
        for name, value in want.items():
            np.testing.assert_allclose(new[name], value, rtol=case.mstep_rtol, atol=1e-12,
                                       err_msg=f"{case.name}: M-step of {name}")

    # --- the objective never decreases from poor starts on small data
    for s in range(3):
        small = (case.small or default_small(case))(np.random.default_rng(1000 + s))
        rs = fit(m, small, seed=s, max_iter=60, tol=0.0, reg=0.0)
        assert_monotone(rs.elbo)
    return r


def truth_params(m, truth):
    return {k: np.asarray(truth[k], float) for k in m.module.PARAMS}


def default_small(case):
    def small(rng):
        kw, _ = case.simulate(rng, 300)
        return kw
    return small


# ============================================================================ helpers
def wmean(resp, x):
    """Weighted means per component: resp (N, K), x (N, ...) -> (K, ...)."""
    return np.einsum("nk,n...->k...", resp, x) / resp.sum(0).reshape((-1,) + (1,) * (x.ndim - 1))


def wvar(resp, x):
    mu = wmean(resp, x)
    return np.einsum("nk,nk->k", resp, (x[:, None] - mu[None]) ** 2) / resp.sum(0)


def ml_weights(resp):
    return resp.sum(0) / resp.shape[0]


def w_se(w, N):
    return np.sqrt(w * (1 - w) / N)


def draw_z(rng, w, N):
    return rng.choice(len(w), size=N, p=w)


# ============================================================================ the models
CASES: dict[str, Case] = {}


def case(c: Case):
    CASES[c.name] = c
    return c


# ---- 1. two emissions of different families per item: Poisson counts + Normal measurements
POIS_NORMAL = """
# Each item has a count y and a measurement x, conditionally independent given z.
model PoissonNormalMixture
dim N
dim K = 2
data   y[N]     : count
data   x[N]     : real
param  weights  : simplex[K]
param  rate[K]  : pos
param  mu[K]    : real
param  s2[K]    : pos
latent z[N]     : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(rate[z[n]])
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_pois_normal(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "rate": np.array([3.0, 8.0]),
         "mu": np.array([-1.0, 1.0]), "s2": np.array([1.0, 0.5])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.poisson(t["rate"][z]),
            "x": rng.normal(t["mu"][z], np.sqrt(t["s2"][z])), "K": 2}, t


case(Case(
    "pois_normal", POIS_NORMAL, _sim_pois_normal,
    log_joint=lambda kw, p: (np.log(p["weights"])
                             + stats.poisson.logpmf(kw["y"][:, None], p["rate"])
                             + stats.norm.logpdf(kw["x"][:, None], p["mu"], np.sqrt(p["s2"]))),
    se=lambda kw, t: (lambda nk: {"weights": w_se(t["weights"], 3000),
                                  "rate": np.sqrt(t["rate"] / nk),
                                  "mu": np.sqrt(t["s2"] / nk),
                                  "s2": t["s2"] * np.sqrt(2 / nk)})(3000 * t["weights"]),
    mstep=lambda kw, r: {"weights": ml_weights(r), "rate": wmean(r, kw["y"].astype(float)),
                         "mu": wmean(r, kw["x"]), "s2": wvar(r, kw["x"])},
    match_on="mu"))


# ---- 2. Geometric mixture (failures before the first success)
GEOM = """
model GeometricMixture
dim N
dim K = 2
data   y[N]     : count
param  weights  : simplex[K]
param  p[K]     : unit
latent z[N]     : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Geometric(p[z[n]])
}
"""


def _sim_geom(rng, N=4000):
    t = {"weights": np.array([0.5, 0.5]), "p": np.array([0.1, 0.6])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.geometric(t["p"][z]) - 1, "K": 2}, t


case(Case(
    "geometric", GEOM, _sim_geom,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.geom.logpmf(kw["y"][:, None] + 1,
                                                                     p["p"]),
    # mixture SE: the components overlap, so use the complete-data SE with slack (x 1.5)
    se=lambda kw, t: {"weights": 1.5 * w_se(t["weights"], 4000),
                      "p": 1.5 * t["p"] * np.sqrt((1 - t["p"]) / (4000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "p": r.sum(0) / (r.sum(0) + r.T @ kw["y"])},
    match_on="p"))


# ---- 3. InvGamma mixture, both params unknown (numerical M-step for the shape)
INVGAMMA = """
model InvGammaMixture
dim N
dim K = 2
data   y[N]      : pos
param  weights   : simplex[K]
param  a[K]      : pos
param  b[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ InvGamma(a[z[n]], b[z[n]])
}
"""


def _sim_invgamma(rng, N=4000):
    t = {"weights": np.array([0.45, 0.55]), "a": np.array([4.0, 10.0]),
         "b": np.array([3.0, 90.0])}     # means 1 and 10
    z = draw_z(rng, t["weights"], N)
    return {"y": t["b"][z] / rng.gamma(t["a"][z]), "K": 2}, t


def _two_param_se(info, n):
    """SEs of a 2-param MLE from the per-observation Fisher information (2, 2, K)."""
    out = np.empty((2, info.shape[-1]))
    for k in range(info.shape[-1]):
        out[:, k] = np.sqrt(np.diag(np.linalg.inv(info[:, :, k])) / n[k])
    return out


def _invgamma_se(kw, t):
    a, b = t["a"], t["b"]
    info = np.array([[special.polygamma(1, a), -1 / b], [-1 / b, a / b ** 2]])
    sa, sb = _two_param_se(info, 4000 * t["weights"])
    return {"weights": w_se(t["weights"], 4000), "a": sa, "b": sb}


def _weighted_mle(logpdf, x, resp, start):
    """Weighted MLE of a 2-param family per component, by scipy (on the log scale)."""
    out = np.empty((2, resp.shape[1]))
    for k in range(resp.shape[1]):
        f = lambda th: -np.sum(resp[:, k] * logpdf(x, *np.exp(th))) / resp[:, k].sum()
        res = optimize.minimize(f, np.log(start[:, k]), method="BFGS",
                                options={"gtol": 1e-11, "maxiter": 2000})
        out[:, k] = np.exp(res.x)
    return out


def _invgamma_mstep(kw, r):
    y = kw["y"]
    start = np.array([[5.0, 5.0], [5.0, 50.0]])
    a, b = _weighted_mle(lambda x, a, b: stats.invgamma.logpdf(x, a, scale=b), y, r, start)
    return {"weights": ml_weights(r), "a": a, "b": b}


case(Case(
    "invgamma", INVGAMMA, _sim_invgamma,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.invgamma.logpdf(
        kw["y"][:, None], p["a"], scale=p["b"]),
    se=_invgamma_se, mstep=_invgamma_mstep, match_on="b", mstep_rtol=1e-5))


# ---- 4. Beta mixture, both shapes unknown (numerical M-step)
BETA = """
model BetaMixture
dim N
dim K = 2
data   y[N]      : unit
param  weights   : simplex[K]
param  a[K]      : pos
param  b[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Beta(a[z[n]], b[z[n]])
}
"""


def _sim_beta(rng, N=4000):
    t = {"weights": np.array([0.4, 0.6]), "a": np.array([2.0, 12.0]),
         "b": np.array([10.0, 3.0])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.beta(t["a"][z], t["b"][z]), "K": 2}, t


def _beta_se(kw, t):
    a, b = t["a"], t["b"]
    ab = special.polygamma(1, a + b)
    info = np.array([[special.polygamma(1, a) - ab, -ab], [-ab, special.polygamma(1, b) - ab]])
    sa, sb = _two_param_se(info, 4000 * t["weights"])
    return {"weights": w_se(t["weights"], 4000), "a": sa, "b": sb}


def _beta_mstep(kw, r):
    a, b = _weighted_mle(stats.beta.logpdf, kw["y"], r, np.array([[2.0, 5.0], [5.0, 2.0]]))
    return {"weights": ml_weights(r), "a": a, "b": b}


case(Case(
    "beta", BETA, _sim_beta,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.beta.logpdf(kw["y"][:, None],
                                                                     p["a"], p["b"]),
    se=_beta_se, mstep=_beta_mstep, match_on="a", mstep_rtol=1e-5))


# ---- 5. Binomial mixture, the known number of trials a `count` hyper (overridden at fit)
BINOM = """
model BinomialMixture
dim N
dim K = 2
hyper  trials    : count = 20
data   y[N]      : count
param  weights   : simplex[K]
param  p[K]      : unit
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Binomial(trials, p[z[n]])
}
"""


def _sim_binom(rng, N=3000):
    t = {"weights": np.array([0.3, 0.7]), "p": np.array([0.2, 0.65])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.binomial(12, t["p"][z]), "trials": 12, "K": 2}, t


case(Case(
    "binomial", BINOM, _sim_binom,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.binom.logpmf(
        kw["y"][:, None], kw["trials"], p["p"]),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "p": np.sqrt(t["p"] * (1 - t["p"]) / (12 * 3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "p": (r.T @ kw["y"]) / (kw["trials"] * r.sum(0))},
    match_on="p"))


# ---- 6. Normal with `sd=` (the param is the standard deviation)
NORMAL_SD = """
model NormalSdMixture
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], sd=s[z[n]])
}
"""


def _sim_normal(rng, N=3000):
    t = {"weights": np.array([0.35, 0.65]), "mu": np.array([-2.0, 3.0]),
         "s": np.array([1.0, 0.5])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.normal(t["mu"][z], t["s"][z]), "K": 2}, t


def _normal_se(t, N=3000):
    nk = N * t["weights"]
    return {"weights": w_se(t["weights"], N), "mu": t["s"] / np.sqrt(nk),
            "s": t["s"] / np.sqrt(2 * nk)}


case(Case(
    "normal_sd", NORMAL_SD, _sim_normal,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(kw["x"][:, None],
                                                                     p["mu"], p["s"]),
    se=lambda kw, t: _normal_se(t),
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "s": np.sqrt(wvar(r, kw["x"]))},
    match_on="mu"))


# ---- 7. Normal with `prec=` (the param is the precision)
NORMAL_PREC = """
model NormalPrecMixture
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  tau[K]    : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], prec=tau[z[n]])
}
"""


def _sim_normal_prec(rng, N=3000):
    kw, t = _sim_normal(rng, N)
    return kw, {"weights": t["weights"], "mu": t["mu"], "tau": 1 / t["s"] ** 2}


case(Case(
    "normal_prec", NORMAL_PREC, _sim_normal_prec,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], 1 / np.sqrt(p["tau"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": 1 / np.sqrt(t["tau"] * 3000 * t["weights"]),
                      "tau": t["tau"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "tau": 1 / wvar(r, kw["x"])},
    match_on="mu"))


# ---- 8. a param through exp(...): Poisson with a log-rate param
EXP_LINK = """
model LogRatePoissonMixture
dim N
dim K = 2
data   y[N]      : count
param  weights   : simplex[K]
param  logr[K]   : real
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(exp(logr[z[n]]))
}
"""


def _sim_exp_link(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "logr": np.log([2.0, 15.0])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.poisson(np.exp(t["logr"][z])), "K": 2}, t


case(Case(
    "exp_link", EXP_LINK, _sim_exp_link,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.poisson.logpmf(
        kw["y"][:, None], np.exp(p["logr"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "logr": 1 / np.sqrt(np.exp(t["logr"]) * 3000 * t["weights"])},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "logr": np.log(wmean(r, kw["y"].astype(float)))},
    match_on="logr"))


# ---- 9. a param through 1 / ...: Exponential parameterised by its mean
INV_LINK = """
model ExponentialScaleMixture
dim N
dim K = 2
data   y[N]      : pos
param  weights   : simplex[K]
param  scale[K]  : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Exponential(1 / scale[z[n]])
}
"""


def _sim_inv_link(rng, N=4000):
    t = {"weights": np.array([0.5, 0.5]), "scale": np.array([1.0, 20.0])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.exponential(t["scale"][z]), "K": 2}, t


case(Case(
    "inv_link", INV_LINK, _sim_inv_link,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.expon.logpdf(kw["y"][:, None],
                                                                      scale=p["scale"]),
    # exponentials overlap a lot: the complete-data SE is optimistic, allow x 1.5
    se=lambda kw, t: {"weights": 1.5 * w_se(t["weights"], 4000),
                      "scale": 1.5 * t["scale"] / np.sqrt(4000 * t["weights"])},
    mstep=lambda kw, r: {"weights": ml_weights(r), "scale": wmean(r, kw["y"])},
    match_on="scale"))


# ---- 10. a param through sqrt(...) and a `let`
SQRT_LET = """
model LetSqrtMixture
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  v[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    let s = sqrt(v[z[n]])
    x[n] ~ Normal(mu[z[n]], sd=s)
}
"""


def _sim_sqrt_let(rng, N=3000):
    kw, t = _sim_normal(rng, N)
    return kw, {"weights": t["weights"], "mu": t["mu"], "v": t["s"] ** 2}


case(Case(
    "sqrt_let", SQRT_LET, _sim_sqrt_let,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(kw["x"][:, None],
                                                                     p["mu"], np.sqrt(p["v"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["v"] / (3000 * t["weights"])),
                      "v": t["v"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "v": wvar(r, kw["x"])},
    match_on="mu"))


# ---- 11. an affine mean and a scaled variance: Normal(2 * mu + 1, s2 / 4)
AFFINE = """
model AffineNormalMixture
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(2 * mu[z[n]] + 1, s2[z[n]] / 4)
}
"""


def _sim_affine(rng, N=3000):
    t = {"weights": np.array([0.5, 0.5]), "mu": np.array([-2.0, 1.0]),
         "s2": np.array([4.0, 1.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.normal(2 * t["mu"][z] + 1, np.sqrt(t["s2"][z] / 4)), "K": 2}, t


case(Case(
    "affine_normal", AFFINE, _sim_affine,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], 2 * p["mu"] + 1, np.sqrt(p["s2"] / 4)),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["s2"] / 16 / (3000 * t["weights"])),
                      "s2": t["s2"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": (wmean(r, kw["x"]) - 1) / 2,
                         "s2": 4 * wvar(r, kw["x"])},
    match_on="mu"))


# ---- 12. Poisson mixture with a Gamma prior on the rates (MAP)
POIS_MAP = """
model PoissonGammaMAP
dim N
dim K = 2
hyper  a0        : pos = 2.0
hyper  b0        : pos = 0.5
data   y[N]      : count
param  weights   : simplex[K]
param  rate[K]   : pos
latent z[N]      : cat[K]
for k in 1:K { rate[k] ~ Gamma(a0, b0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(rate[z[n]])
}
"""


def _sim_pois_map(rng, N=3000):
    t = {"weights": np.array([0.35, 0.65]), "rate": np.array([2.0, 12.0])}
    z = draw_z(rng, t["weights"], N)
    # a strong prior (overriding the defaults) so that MAP != ML visibly
    return {"y": rng.poisson(t["rate"][z]), "K": 2, "a0": 30.0, "b0": 4.0}, t


case(Case(
    "poisson_gamma_map", POIS_MAP, _sim_pois_map, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.poisson.logpmf(kw["y"][:, None],
                                                                        p["rate"]),
    log_prior=lambda kw, p: float(stats.gamma.logpdf(p["rate"], kw["a0"],
                                                     scale=1 / kw["b0"]).sum()),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "rate": np.sqrt(t["rate"] / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "rate": (kw["a0"] - 1 + r.T @ kw["y"]) / (kw["b0"] + r.sum(0))},
    match_on="rate"))


# ---- 13. Normal mixture, InvGamma prior on the variances, Dirichlet on the weights (MAP)
NORMAL_IG_MAP = """
model NormalInvGammaVarMAP
dim N
dim K = 2
hyper  a0        : pos = 3.0
hyper  b0        : pos = 2.0
hyper  alpha     : pos = 2.0
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
weights ~ Dirichlet(alpha)
for k in 1:K { s2[k] ~ InvGamma(a0, b0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_normal_s2(rng, N=3000):
    kw, t = _sim_normal(rng, N)
    return {**kw, "alpha": 5.0, "a0": 20.0, "b0": 10.0}, \
        {"weights": t["weights"], "mu": t["mu"], "s2": t["s"] ** 2}


def _normal_ig_mstep(kw, r):
    nk = r.sum(0)
    a = kw["alpha"]
    mu = wmean(r, kw["x"])
    ss = np.einsum("nk,nk->k", r, (kw["x"][:, None] - mu) ** 2)
    return {"weights": (nk + a - 1) / (len(kw["x"]) + 2 * (a - 1)), "mu": mu,
            "s2": (kw["b0"] + ss / 2) / (kw["a0"] + 1 + nk / 2)}


case(Case(
    "normal_invgamma_map", NORMAL_IG_MAP, _sim_normal_s2, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(p["s2"])),
    log_prior=lambda kw, p: float(stats.dirichlet.logpdf(p["weights"], [kw["alpha"]] * 2)
                                  + stats.invgamma.logpdf(p["s2"], kw["a0"],
                                                          scale=kw["b0"]).sum()),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["s2"] / (3000 * t["weights"])),
                      "s2": t["s2"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=_normal_ig_mstep, match_on="mu"))


# ---- 14. mixture weights that depend on a group covariate, Normal emission
GROUP_W = """
model GroupWeightsMixture
dim N, G
dim K = 2
data   g[N]          : cat[G]
data   x[N]          : real
param  weights[G]    : simplex[K]
param  mu[K]         : real
param  s2[K]         : pos
latent z[N]          : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights[g[n]])
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_group(rng, N=3000):
    t = {"weights": np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]),
         "mu": np.array([-2.0, 2.0]), "s2": np.array([1.0, 1.5])}
    g = rng.integers(3, size=N)
    z = (rng.uniform(size=N) < t["weights"][g, 1]).astype(int)
    return {"g": g, "x": rng.normal(t["mu"][z], np.sqrt(t["s2"][z])), "G": 3, "K": 2}, t


def _group_mstep(kw, r):
    g = kw["g"]
    w = np.array([r[g == j].sum(0) / (g == j).sum() for j in range(kw["G"])])
    return {"weights": w, "mu": wmean(r, kw["x"]), "s2": wvar(r, kw["x"])}


def _group_se(kw, t):
    ng = np.bincount(kw["g"], minlength=3)[:, None]
    nk = (t["weights"] * ng).sum(0)
    return {"weights": 1.5 * w_se(t["weights"], ng), "mu": np.sqrt(t["s2"] / nk),
            "s2": t["s2"] * np.sqrt(2 / nk)}


case(Case(
    "group_weights", GROUP_W, _sim_group,
    log_joint=lambda kw, p: np.log(p["weights"][kw["g"]]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(p["s2"])),
    se=_group_se, mstep=_group_mstep, match_on="mu", kaxis={"weights": 1}))


# ---- 15. MvNormal mixture parameterised by precision matrices
MVN_PREC = """
model PrecisionGaussianMixture
dim N, D
dim K = 2
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
param  Lam[K]    : spd[D]
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], prec=Lam[z[n]])
}
"""

_SIG = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.2], [-0.2, 0.8]]])


def _sim_mvn_prec(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [4.0, 3.0]]),
         "Lam": np.linalg.inv(_SIG)}
    z = draw_z(rng, t["weights"], N)
    L = np.linalg.cholesky(_SIG)
    x = t["mu"][z] + np.einsum("nij,nj->ni", L[z], rng.standard_normal((N, 2)))
    return {"x": x, "K": 2}, t


def _mvn_logpdf_k(x, mu, cov):
    return np.stack([stats.multivariate_normal.logpdf(x, mu[k], cov[k])
                     for k in range(len(mu))], axis=1)


def _wcov(r, x):
    mu = wmean(r, x)
    d = x[:, None, :] - mu[None]
    return np.einsum("nk,nki,nkj->kij", r, d, d) / r.sum(0)[:, None, None]


def _mvn_se(t, N, cov):
    nk = (N * t["weights"])[:, None]
    var = np.diagonal(cov, axis1=1, axis2=2)
    cov_se = np.sqrt((cov ** 2 + var[:, :, None] * var[:, None, :]) / nk[:, :, None])
    return {"weights": w_se(t["weights"], N), "mu": np.sqrt(var / nk), "Sigma": cov_se}


case(Case(
    "mvn_prec", MVN_PREC, _sim_mvn_prec,
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(kw["x"], p["mu"],
                                                                 np.linalg.inv(p["Lam"])),
    recover=lambda p: {**p, "Sigma": np.linalg.inv(p["Lam"])},
    se=lambda kw, t: _mvn_se(t, 3000, _SIG),
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "Lam": np.linalg.inv(_wcov(r, kw["x"]))},
    match_on="mu", mstep_rtol=1e-7,
    small=lambda rng: _sim_mvn_prec(rng, 300)[0]))


# ---- 16. MvNormal mixture, known shared covariance hyper, MvNormal prior on the means (MAP)
MVN_MAP = """
model KnownCovarianceMixtureMAP
dim N, D
dim K = 3
hyper  S         : spd[D] = eye(D)
hyper  m0        : real[D] = zeros(D)
hyper  S0        : spd[D] = 10 * eye(D)
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
latent z[N]      : cat[K]
for k in 1:K { mu[k] ~ MvNormal(m0, S0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], S)
}
"""

_S = np.array([[1.0, 0.3], [0.3, 0.5]])
_S0 = np.array([[0.5, 0.1], [0.1, 0.3]])   # a strong prior, so that MAP != ML visibly
_M0 = np.array([1.0, -1.0])


def _sim_mvn_map(rng, N=3000):
    t = {"weights": np.array([0.3, 0.3, 0.4]),
         "mu": np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])}
    z = draw_z(rng, t["weights"], N)
    x = t["mu"][z] + rng.multivariate_normal(np.zeros(2), _S, size=N)
    return {"x": x, "K": 3, "S": _S, "m0": _M0, "S0": _S0}, t


def _mvn_map_mstep(kw, r):
    Si, S0i = np.linalg.inv(kw["S"]), np.linalg.inv(kw["S0"])
    nk, sx = r.sum(0), r.T @ kw["x"]
    mu = np.stack([np.linalg.solve(S0i + nk[k] * Si, S0i @ kw["m0"] + Si @ sx[k])
                   for k in range(r.shape[1])])
    return {"weights": ml_weights(r), "mu": mu}


def _mvn_map_se(kw, t):
    nk = (3000 * t["weights"])[:, None]
    # the prior shrinks by up to ~ 3 / (nk * 0.3) ~ 0.01 per unit of distance to m0: add it
    shrink = 3 * np.abs(t["mu"] - _M0) / (0.3 * nk)
    return {"weights": w_se(t["weights"], 3000),
            "mu": np.sqrt(np.diag(_S) / nk) + shrink / SE_FACTOR}


case(Case(
    "mvn_known_cov_map", MVN_MAP, _sim_mvn_map, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(
        kw["x"], p["mu"], np.broadcast_to(kw["S"], (len(p["mu"]), 2, 2))),
    log_prior=lambda kw, p: float(sum(stats.multivariate_normal.logpdf(m, kw["m0"], kw["S0"])
                                      for m in p["mu"])),
    se=_mvn_map_se, mstep=_mvn_map_mstep, match_on="mu",
    small=lambda rng: _sim_mvn_map(rng, 300)[0]))


# ---- 17. a user family that is exponential: Maxwell-Boltzmann with scale a
MAXWELL = """
model MaxwellMixture
family Maxwell(a : pos) on pos {
    logpdf(x) = log(sqrt(2 / pi)) + 2 * log(x) - x^2 / (2 * a^2) - 3 * log(a)
}
dim N
dim K = 2
data   x[N]      : pos
param  weights   : simplex[K]
param  a[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Maxwell(a[z[n]])
}
"""


def _sim_maxwell(rng, N=3000):
    t = {"weights": np.array([0.5, 0.5]), "a": np.array([1.0, 5.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": t["a"][z] * np.sqrt(rng.chisquare(3, size=N)), "K": 2}, t


case(Case(
    "maxwell_family", MAXWELL, _sim_maxwell,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.maxwell.logpdf(kw["x"][:, None],
                                                                        scale=p["a"]),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "a": t["a"] / np.sqrt(6 * 3000 * t["weights"])},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "a": np.sqrt((r.T @ kw["x"] ** 2) / (3 * r.sum(0)))},
    match_on="a"))


# ---- 18. a user family that is exponential: Lomax (Pareto II) with known scale 1
LOMAX = """
model LomaxMixture
family Lomax(alpha : pos) on pos {
    logpdf(x) = log(alpha) - (alpha + 1) * log(1 + x)
}
dim N
dim K = 2
data   x[N]      : pos
param  weights   : simplex[K]
param  alpha[K]  : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Lomax(alpha[z[n]])
}
"""


def _sim_lomax(rng, N=4000):
    t = {"weights": np.array([0.5, 0.5]), "alpha": np.array([1.0, 12.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.pareto(t["alpha"][z]), "K": 2}, t


case(Case(
    "lomax_family", LOMAX, _sim_lomax,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.lomax.logpdf(kw["x"][:, None],
                                                                      p["alpha"]),
    se=lambda kw, t: {"weights": 1.5 * w_se(t["weights"], 4000),
                      "alpha": 1.5 * t["alpha"] / np.sqrt(4000 * t["weights"])},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "alpha": r.sum(0) / (r.T @ np.log1p(kw["x"]))},
    match_on="alpha"))


# ---- 19. a Categorical and a Normal emission in one plate (mixed-type records)
CAT_NORMAL = """
model CategoricalNormalMixture
dim N, V
dim K = 2
data   w[N]      : cat[V]
data   x[N]      : real
param  weights   : simplex[K]
param  phi[K]    : simplex[V]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    w[n] ~ Categorical(phi[z[n]])
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_cat_normal(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]),
         "phi": np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.3, 0.5]]),
         "mu": np.array([0.0, 1.5]), "s2": np.array([1.0, 1.0])}
    z = draw_z(rng, t["weights"], N)
    w = np.array([rng.choice(4, p=t["phi"][k]) for k in z])
    return {"w": w, "x": rng.normal(t["mu"][z], np.sqrt(t["s2"][z])), "V": 4, "K": 2}, t


def _cat_normal_mstep(kw, r):
    onehot = np.eye(kw["V"])[kw["w"]]
    return {"weights": ml_weights(r), "phi": (r.T @ onehot) / r.sum(0)[:, None],
            "mu": wmean(r, kw["x"]), "s2": wvar(r, kw["x"])}


def _cat_normal_se(kw, t):
    nk = (3000 * t["weights"])
    # overlapping components: complete-data SEs with slack (x 2)
    return {"weights": 2 * w_se(t["weights"], 3000),
            "phi": 2 * np.sqrt(t["phi"] * (1 - t["phi"]) / nk[:, None]),
            "mu": 2 * np.sqrt(t["s2"] / nk), "s2": 2 * t["s2"] * np.sqrt(2 / nk)}


case(Case(
    "categorical_normal", CAT_NORMAL, _sim_cat_normal,
    log_joint=lambda kw, p: (np.log(p["weights"]) + np.log(p["phi"][:, kw["w"]].T)
                             + stats.norm.logpdf(kw["x"][:, None], p["mu"], np.sqrt(p["s2"]))),
    se=_cat_normal_se, mstep=_cat_normal_mstep, match_on="phi"))


# ---- 20. Gamma with a known shape hyper, unknown rates (closed form)
GAMMA_KNOWN = """
model KnownShapeGammaMixture
dim N
dim K = 2
hyper  alpha0    : pos = 3.0
data   y[N]      : pos
param  weights   : simplex[K]
param  rate[K]   : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Gamma(alpha0, rate[z[n]])
}
"""


def _sim_gamma_known(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "rate": np.array([4.0, 0.4])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.gamma(5.0, 1 / t["rate"][z]), "alpha0": 5.0, "K": 2}, t


case(Case(
    "gamma_known_shape", GAMMA_KNOWN, _sim_gamma_known,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.gamma.logpdf(
        kw["y"][:, None], kw["alpha0"], scale=1 / p["rate"]),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "rate": t["rate"] / np.sqrt(5.0 * 3000 * t["weights"])},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "rate": kw["alpha0"] * r.sum(0) / (r.T @ kw["y"])},
    match_on="rate"))


# ---- 21. multivariate counts: Poisson per dimension in an inner loop
POIS_MULTI = """
model MultiPoissonMixture
dim N, D
dim K = 2
data   y[N, D]      : count
param  weights      : simplex[K]
param  rate[K, D]   : pos
latent z[N]         : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { y[n, d] ~ Poisson(rate[z[n], d]) }
}
"""


def _sim_pois_multi(rng, N=3000):
    t = {"weights": np.array([0.45, 0.55]),
         "rate": np.array([[1.0, 5.0, 2.0], [4.0, 1.0, 2.5]])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.poisson(t["rate"][z]), "K": 2}, t


case(Case(
    "poisson_multi", POIS_MULTI, _sim_pois_multi,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.poisson.logpmf(
        kw["y"][:, None, :], p["rate"][None]).sum(-1),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "rate": np.sqrt(t["rate"] / (3000 * t["weights"])[:, None])},
    mstep=lambda kw, r: {"weights": ml_weights(r), "rate": wmean(r, kw["y"].astype(float))},
    match_on="rate"))


# ---- 22. a hyper inside the variance: Normal(mu, c * s2), c overridden at fit time
HYPER_SCALE = """
model HyperScaledVarianceMixture
dim N
dim K = 2
hyper  c         : pos = 2.0
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], c * s2[z[n]])
}
"""


def _sim_hyper_scale(rng, N=3000):
    kw, t = _sim_normal(rng, N)
    return {**kw, "c": 3.0}, {"weights": t["weights"], "mu": t["mu"], "s2": t["s"] ** 2 / 3}


case(Case(
    "hyper_scaled_var", HYPER_SCALE, _sim_hyper_scale,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(kw["c"] * p["s2"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(3 * t["s2"] / (3000 * t["weights"])),
                      "s2": t["s2"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "s2": wvar(r, kw["x"]) / kw["c"]},
    match_on="mu"))


# ---- 23. a second emission whose param is not indexed at all (shared by all components)
SHARED_PARAM = """
model SharedRateMixture
dim N
dim K = 2
data   x[N]      : real
data   y[N]      : count
param  weights   : simplex[K]
param  mu[K]     : real
param  s2[K]     : pos
param  lam       : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
    y[n] ~ Poisson(lam)
}
"""


def _sim_shared(rng, N=3000):
    kw, t = _sim_normal(rng, N)
    return {**kw, "y": rng.poisson(4.0, size=N)}, \
        {"weights": t["weights"], "mu": t["mu"], "s2": t["s"] ** 2, "lam": np.array(4.0)}


case(Case(
    "shared_unindexed_param", SHARED_PARAM, _sim_shared,
    log_joint=lambda kw, p: (np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(p["s2"]))
        + stats.poisson.logpmf(kw["y"], p["lam"])[:, None]),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["s2"] / (3000 * t["weights"])),
                      "s2": t["s2"] * np.sqrt(2 / (3000 * t["weights"])),
                      "lam": np.sqrt(4.0 / 3000)},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "s2": wvar(r, kw["x"]), "lam": np.mean(kw["y"])},
    match_on="mu", kaxis={"lam": None}))


# ---- 24. Gamma priors on rate[K, D] in an inner loop (MAP)
POIS_MULTI_MAP = """
model MultiPoissonGammaMAP
dim N, D
dim K = 2
hyper  a0           : pos = 2.0
hyper  b0           : pos = 1.0
data   y[N, D]      : count
param  weights      : simplex[K]
param  rate[K, D]   : pos
latent z[N]         : cat[K]
for k in 1:K {
    for d in 1:D { rate[k, d] ~ Gamma(a0, b0) }
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { y[n, d] ~ Poisson(rate[z[n], d]) }
}
"""


def _sim_pois_multi_map(rng, N=3000):
    kw, t = _sim_pois_multi(rng, N)
    return {**kw, "a0": 6.0, "b0": 2.0}, t


case(Case(
    "poisson_multi_gamma_map", POIS_MULTI_MAP, _sim_pois_multi_map, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.poisson.logpmf(
        kw["y"][:, None, :], p["rate"][None]).sum(-1),
    log_prior=lambda kw, p: float(stats.gamma.logpdf(p["rate"], kw["a0"],
                                                     scale=1 / kw["b0"]).sum()),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "rate": np.sqrt(t["rate"] / (3000 * t["weights"])[:, None])},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "rate": (kw["a0"] - 1 + r.T @ kw["y"]) / (kw["b0"] + r.sum(0))[:, None]},
    match_on="rate"))


# ---- 25. diagonal Gaussian mixture written with scalar Normals in an inner loop
DIAG_NORMAL = """
model DiagonalNormalMixture
dim N, D
dim K = 2
data   x[N, D]      : real
param  weights      : simplex[K]
param  mu[K, D]     : real
param  s2[K, D]     : pos
latent z[N]         : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { x[n, d] ~ Normal(mu[z[n], d], s2[z[n], d]) }
}
"""


def _sim_diag(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 2.0, -1.0], [3.0, 0.0, 1.0]]),
         "s2": np.array([[1.0, 0.5, 2.0], [0.3, 1.0, 1.0]])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.normal(t["mu"][z], np.sqrt(t["s2"][z])), "K": 2}, t


case(Case(
    "diag_normal_inner", DIAG_NORMAL, _sim_diag,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None, :], p["mu"][None], np.sqrt(p["s2"][None])).sum(-1),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["s2"] / (3000 * t["weights"])[:, None]),
                      "s2": t["s2"] * np.sqrt(2 / (3000 * t["weights"])[:, None])},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "s2": np.einsum("nk,nkd->kd", r,
                                         (kw["x"][:, None] - wmean(r, kw["x"])) ** 2)
                         / r.sum(0)[:, None]},
    match_on="mu"))


# ---- 26. group-dependent weights with a Dirichlet prior per group (MAP)
GROUP_DIR = """
model GroupWeightsDirichletMAP
dim N, G
dim K = 2
hyper  alpha         : pos = 2.0
data   g[N]          : cat[G]
data   x[N]          : real
param  weights[G]    : simplex[K]
param  mu[K]         : real
param  s2[K]         : pos
latent z[N]          : cat[K]
for j in 1:G { weights[j] ~ Dirichlet(alpha) }
for n in 1:N {
    z[n] ~ Categorical(weights[g[n]])
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_group_dir(rng, N=3000):
    kw, t = _sim_group(rng, N)
    return {**kw, "alpha": 20.0}, t


def _group_dir_mstep(kw, r):
    g, a = kw["g"], kw["alpha"]
    w = np.array([(r[g == j].sum(0) + a - 1) / ((g == j).sum() + 2 * (a - 1))
                  for j in range(kw["G"])])
    return {"weights": w, "mu": wmean(r, kw["x"]), "s2": wvar(r, kw["x"])}


def _group_dir_se(kw, t):
    se = _group_se(kw, t)
    # the strong prior (alpha = 20) pulls each group's weights towards 1/2 by up to ~ 0.02
    return {**se, "weights": se["weights"] + 0.03 / SE_FACTOR}


case(Case(
    "group_weights_dirichlet_map", GROUP_DIR, _sim_group_dir, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"][kw["g"]]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(p["s2"])),
    log_prior=lambda kw, p: float(sum(stats.dirichlet.logpdf(w, [kw["alpha"]] * 2)
                                      for w in p["weights"])),
    se=_group_dir_se, mstep=_group_dir_mstep, match_on="mu", kaxis={"weights": 1}))


# ---- 27. a param through exp(-...): Exponential(exp(-a)), a the log of the mean
EXP_NEG = """
model LogMeanExponentialMixture
dim N
dim K = 2
data   y[N]      : pos
param  weights   : simplex[K]
param  a[K]      : real
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Exponential(exp(-a[z[n]]))
}
"""


def _sim_exp_neg(rng, N=4000):
    kw, t = _sim_inv_link(rng, N)
    return kw, {"weights": t["weights"], "a": np.log(t["scale"])}


case(Case(
    "exp_neg_link", EXP_NEG, _sim_exp_neg,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.expon.logpdf(kw["y"][:, None],
                                                                      scale=np.exp(p["a"])),
    se=lambda kw, t: {"weights": 1.5 * w_se(t["weights"], 4000),
                      "a": 1.5 / np.sqrt(4000 * t["weights"])},
    mstep=lambda kw, r: {"weights": ml_weights(r), "a": np.log(wmean(r, kw["y"]))},
    match_on="a"))


# ---- 28. a vector Dirichlet hyper on the weights (MAP), a Poisson emission
DIR_VEC = """
model VectorDirichletPoissonMAP
dim N
dim K = 3
hyper  alpha     : pos[K] = ones(K) * 2
data   y[N]      : count
param  weights   : simplex[K]
param  rate[K]   : pos
latent z[N]      : cat[K]
weights ~ Dirichlet(alpha)
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(rate[z[n]])
}
"""


def _sim_dir_vec(rng, N=3000):
    t = {"weights": np.array([0.2, 0.3, 0.5]), "rate": np.array([1.0, 10.0, 30.0])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.poisson(t["rate"][z]), "alpha": np.array([30.0, 2.0, 50.0])}, t


case(Case(
    "dirichlet_vector_map", DIR_VEC, _sim_dir_vec, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.poisson.logpmf(kw["y"][:, None],
                                                                        p["rate"]),
    log_prior=lambda kw, p: float(stats.dirichlet.logpdf(p["weights"], kw["alpha"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000) + 0.02 / SE_FACTOR,
                      "rate": np.sqrt(t["rate"] / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": (r.sum(0) + kw["alpha"] - 1)
                         / (r.shape[0] + kw["alpha"].sum() - 3),
                         "rate": wmean(r, kw["y"].astype(float))},
    match_on="rate"))


# ---- 29. one param shared by two emissions of different families (Poisson and Exponential)
TWO_FAM_ONE_PARAM = """
model SharedRateTwoFamilies
dim N
dim K = 2
data   x[N]      : count
data   y[N]      : pos
param  weights   : simplex[K]
param  rate[K]   : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Poisson(rate[z[n]])
    y[n] ~ Exponential(rate[z[n]])
}
"""


def _sim_two_fam(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "rate": np.array([1.0, 6.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.poisson(t["rate"][z]), "y": rng.exponential(1 / t["rate"][z]), "K": 2}, t


case(Case(
    "one_param_two_families", TWO_FAM_ONE_PARAM, _sim_two_fam,
    log_joint=lambda kw, p: (np.log(p["weights"])
                             + stats.poisson.logpmf(kw["x"][:, None], p["rate"])
                             + stats.expon.logpdf(kw["y"][:, None], scale=1 / p["rate"])),
    # Fisher information per item: 1 / rate + 1 / rate^2
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "rate": 1 / np.sqrt(3000 * t["weights"] * (1 / t["rate"]
                                                                 + 1 / t["rate"] ** 2))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "rate": (r.T @ kw["x"] + r.sum(0)) / (r.sum(0) + r.T @ kw["y"])},
    match_on="rate"))


# ---- 30. Categorical emissions per inner position: phi[K, D] : simplex[V]
CAT_INNER = """
model PositionCategoricalMixture
dim N, D, V
dim K = 2
data   w[N, D]          : cat[V]
param  weights          : simplex[K]
param  phi[K, D]        : simplex[V]
latent z[N]             : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { w[n, d] ~ Categorical(phi[z[n], d]) }
}
"""


def _sim_cat_inner(rng, N=3000):
    phi = np.array([[[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]],
                    [[0.1, 0.1, 0.1, 0.7], [0.1, 0.1, 0.7, 0.1], [0.4, 0.1, 0.1, 0.4]]])
    t = {"weights": np.array([0.45, 0.55]), "phi": phi}
    z = draw_z(rng, t["weights"], N)
    cum = np.cumsum(phi[z], axis=-1)
    w = (rng.uniform(size=(N, 3, 1)) > cum).sum(-1)
    return {"w": w, "V": 4, "K": 2}, t


def _cat_inner_mstep(kw, r):
    onehot = np.eye(kw["V"])[kw["w"]]              # (N, D, V)
    return {"weights": ml_weights(r),
            "phi": np.einsum("nk,ndv->kdv", r, onehot) / r.sum(0)[:, None, None]}


case(Case(
    "categorical_inner", CAT_INNER, _sim_cat_inner,
    log_joint=lambda kw, p: np.log(p["weights"]) + np.stack(
        [np.log(p["phi"][k][np.arange(kw["w"].shape[1]), kw["w"]]).sum(-1)
         for k in range(len(p["weights"]))], axis=1),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "phi": np.sqrt(t["phi"] * (1 - t["phi"])
                                     / (3000 * t["weights"])[:, None, None])},
    mstep=_cat_inner_mstep, match_on="phi"))


# ---- 31. MvNormal with a known precision hyper and a prior given by its precision (MAP)
MVN_PREC_MAP = """
model KnownPrecisionMixtureMAP
dim N, D
dim K = 3
hyper  L         : spd[D] = eye(D)
hyper  m0        : real[D] = zeros(D)
hyper  P0        : spd[D] = eye(D)
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
latent z[N]      : cat[K]
for k in 1:K { mu[k] ~ MvNormal(m0, prec=P0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], prec=L)
}
"""


def _sim_mvn_prec_map(rng, N=3000):
    kw, t = _sim_mvn_map(rng, N)
    return {"x": kw["x"], "K": 3, "L": np.linalg.inv(_S), "m0": _M0,
            "P0": np.linalg.inv(_S0)}, t


def _mvn_prec_map_mstep(kw, r):
    return _mvn_map_mstep({"x": kw["x"], "S": np.linalg.inv(kw["L"]), "m0": kw["m0"],
                           "S0": np.linalg.inv(kw["P0"])}, r)


case(Case(
    "mvn_known_prec_map", MVN_PREC_MAP, _sim_mvn_prec_map, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(
        kw["x"], p["mu"], np.broadcast_to(np.linalg.inv(kw["L"]), (len(p["mu"]), 2, 2))),
    log_prior=lambda kw, p: float(sum(stats.multivariate_normal.logpdf(
        m, kw["m0"], np.linalg.inv(kw["P0"])) for m in p["mu"])),
    se=_mvn_map_se, mstep=_mvn_prec_map_mstep, match_on="mu", mstep_rtol=1e-7,
    small=lambda rng: _sim_mvn_prec_map(rng, 300)[0]))


# ---- 32. Geometric mixture with a Beta prior on p (MAP)
GEOM_MAP = """
model GeometricBetaMAP
dim N
dim K = 2
hyper  a         : pos = 2.0
hyper  b         : pos = 3.0
data   y[N]      : count
param  weights   : simplex[K]
param  p[K]      : unit
latent z[N]      : cat[K]
for k in 1:K { p[k] ~ Beta(a, b) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Geometric(p[z[n]])
}
"""


def _sim_geom_map(rng, N=4000):
    kw, t = _sim_geom(rng, N)
    return {**kw, "a": 3.0, "b": 4.0}, t


case(Case(
    "geometric_beta_map", GEOM_MAP, _sim_geom_map, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.geom.logpmf(kw["y"][:, None] + 1,
                                                                     p["p"]),
    log_prior=lambda kw, p: float(stats.beta.logpdf(p["p"], kw["a"], kw["b"]).sum()),
    se=lambda kw, t: {"weights": 1.5 * w_se(t["weights"], 4000),
                      "p": 1.5 * t["p"] * np.sqrt((1 - t["p"]) / (4000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "p": (r.sum(0) + kw["a"] - 1)
                         / (r.sum(0) + r.T @ kw["y"] + kw["a"] + kw["b"] - 2)},
    match_on="p"))


# ---- 33. two MvNormal emissions per item, one by covariance and one by precision
TWO_MVN = """
model TwoBlockGaussianMixture
dim N, D, E
dim K = 2
data   x[N]      : real[D]
data   y[N]      : real[E]
param  weights   : simplex[K]
param  mu[K]     : real[D]
param  Sigma[K]  : spd[D]
param  nu[K]     : real[E]
param  Tau[K]    : spd[E]
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], Sigma[z[n]])
    y[n] ~ MvNormal(nu[z[n]], prec=Tau[z[n]])
}
"""

_SIG3 = np.array([[[1.0, 0.2, 0.0], [0.2, 0.5, 0.1], [0.0, 0.1, 2.0]],
                  [[0.6, 0.0, 0.2], [0.0, 1.0, -0.3], [0.2, -0.3, 0.8]]])


def _sim_two_mvn(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [4.0, 3.0]])}
    zz = draw_z(rng, t["weights"], N)
    x = t["mu"][zz] + np.einsum("nij,nj->ni", np.linalg.cholesky(_SIG)[zz],
                                rng.standard_normal((N, 2)))
    nu = np.array([[1.0, 0.0, -1.0], [-1.0, 1.0, 0.5]])
    y = nu[zz] + np.einsum("nij,nj->ni", np.linalg.cholesky(_SIG3)[zz],
                           rng.standard_normal((N, 3)))
    return {"x": x, "y": y, "K": 2}, {"weights": t["weights"], "mu": t["mu"], "Sigma": _SIG,
                                      "nu": nu, "Tau": np.linalg.inv(_SIG3)}


def _two_mvn_se(kw, t):
    a = _mvn_se(t, 3000, _SIG)
    b = _mvn_se(t, 3000, _SIG3)
    return {"weights": a["weights"], "mu": a["mu"], "Sigma": a["Sigma"], "nu": b["mu"],
            "Sigma_y": b["Sigma"]}


case(Case(
    "two_mvnormals", TWO_MVN, _sim_two_mvn,
    log_joint=lambda kw, p: (np.log(p["weights"]) + _mvn_logpdf_k(kw["x"], p["mu"], p["Sigma"])
                             + _mvn_logpdf_k(kw["y"], p["nu"], np.linalg.inv(p["Tau"]))),
    recover=lambda p: {**p, "Sigma_y": np.linalg.inv(p["Tau"])},
    se=_two_mvn_se,
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "Sigma": _wcov(r, kw["x"]), "nu": wmean(r, kw["y"]),
                         "Tau": np.linalg.inv(_wcov(r, kw["y"]))},
    match_on="mu", mstep_rtol=1e-7,
    small=lambda rng: _sim_two_mvn(rng, 300)[0]))


# ---- 34. an MvNormal and a Poisson emission per item
MVN_POIS = """
model GaussianPoissonMixture
dim N, D
dim K = 2
data   x[N]      : real[D]
data   y[N]      : count
param  weights   : simplex[K]
param  mu[K]     : real[D]
param  Sigma[K]  : spd[D]
param  rate[K]   : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], Sigma[z[n]])
    y[n] ~ Poisson(rate[z[n]])
}
"""


def _sim_mvn_pois(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [4.0, 3.0]])}
    zz = draw_z(rng, t["weights"], N)
    x = t["mu"][zz] + np.einsum("nij,nj->ni", np.linalg.cholesky(_SIG)[zz],
                                rng.standard_normal((N, 2)))
    rate = np.array([2.0, 9.0])
    return {"x": x, "y": rng.poisson(rate[zz]), "K": 2}, \
        {"weights": t["weights"], "mu": t["mu"], "Sigma": _SIG, "rate": rate}


case(Case(
    "mvnormal_poisson", MVN_POIS, _sim_mvn_pois,
    log_joint=lambda kw, p: (np.log(p["weights"]) + _mvn_logpdf_k(kw["x"], p["mu"], p["Sigma"])
                             + stats.poisson.logpmf(kw["y"][:, None], p["rate"])),
    se=lambda kw, t: {**_mvn_se(t, 3000, _SIG),
                      "rate": np.sqrt(t["rate"] / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "Sigma": _wcov(r, kw["x"]), "rate": wmean(r, kw["y"].astype(float))},
    match_on="mu", mstep_rtol=1e-7,
    small=lambda rng: _sim_mvn_pois(rng, 300)[0]))


# ---- 35. grouped (long-format) topic model with a Normal emission per token as well
TOPICS_NORMAL = """
model TopicsWithMeasurements
dim T, D, V
dim K = 3
data   doc[T]      : cat[D]
data   w[T]        : cat[V]
data   x[T]        : real
param  theta[D]    : simplex[K]
param  phi[K]      : simplex[V]
param  mu[K]       : real
param  s2[K]       : pos
latent c[T]        : cat[K]
for t in 1:T {
    c[t] ~ Categorical(theta[doc[t]])
    w[t] ~ Categorical(phi[c[t]])
    x[t] ~ Normal(mu[c[t]], s2[c[t]])
}
"""


def _sim_topics_normal(rng, N=3000):
    Dn, V, K = max(N // 150, 2), 12, 3
    phi = np.full((K, V), 0.05 / 8)
    for k in range(K):
        phi[k, 4 * k:4 * k + 4] = 0.95 / 4
    phi /= phi.sum(1, keepdims=True)
    theta = rng.dirichlet(np.full(K, 2.0), size=Dn)
    doc = np.repeat(np.arange(Dn), N // Dn)
    c = (rng.uniform(size=(len(doc), 1)) > np.cumsum(theta[doc], 1)).sum(1)
    w = (rng.uniform(size=(len(doc), 1)) > np.cumsum(phi[c], 1)).sum(1)
    t = {"theta": theta, "phi": phi, "mu": np.array([-3.0, 0.0, 3.0]),
         "s2": np.array([1.0, 0.5, 1.0])}
    x = rng.normal(t["mu"][c], np.sqrt(t["s2"][c]))
    return {"doc": doc, "w": w, "x": x, "D": Dn, "V": V, "K": K}, t


def _topics_normal_mstep(kw, r):
    doc = kw["doc"]
    theta = np.array([r[doc == d].sum(0) / (doc == d).sum() for d in range(kw["D"])])
    onehot = np.eye(kw["V"])[kw["w"]]
    return {"theta": theta, "phi": (r.T @ onehot) / r.sum(0)[:, None],
            "mu": wmean(r, kw["x"]), "s2": wvar(r, kw["x"])}


def _topics_normal_se(kw, t):
    nd = np.bincount(kw["doc"])[:, None]
    nk = (t["theta"] * nd).sum(0)
    return {"theta": 1.5 * np.sqrt(t["theta"] * (1 - t["theta"]) / nd) + 1e-3,
            "phi": 1.5 * np.sqrt(t["phi"] * (1 - t["phi"]) / nk[:, None]),
            "mu": np.sqrt(t["s2"] / nk), "s2": t["s2"] * np.sqrt(2 / nk)}


case(Case(
    "topics_with_normal", TOPICS_NORMAL, _sim_topics_normal,
    log_joint=lambda kw, p: (np.log(p["theta"][kw["doc"]]) + np.log(p["phi"][:, kw["w"]].T)
                             + stats.norm.logpdf(kw["x"][:, None], p["mu"], np.sqrt(p["s2"]))),
    se=_topics_normal_se, mstep=_topics_normal_mstep, match_on="mu", kaxis={"theta": 1},
    small=lambda rng: _sim_topics_normal(rng, 600)[0]))


# ---- 36. a Categorical mixture with a Dirichlet prior on each component's probabilities
CAT_DIR = """
model CategoricalDirichletMAP
dim N, V
dim K = 2
hyper  eta       : pos = 1.5
data   w[N]      : cat[V]
data   x[N]      : real
param  weights   : simplex[K]
param  phi[K]    : simplex[V]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
for k in 1:K { phi[k] ~ Dirichlet(eta) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    w[n] ~ Categorical(phi[z[n]])
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_cat_dir(rng, N=3000):
    kw, t = _sim_cat_normal(rng, N)
    t = {**t, "mu": np.array([0.0, 3.0])}
    z = draw_z(rng, t["weights"], N)
    w = (rng.uniform(size=(N, 1)) > np.cumsum(t["phi"][z], 1)).sum(1)
    return {"w": w, "x": rng.normal(t["mu"][z], 1.0), "V": 4, "K": 2, "eta": 3.0}, t


def _cat_dir_mstep(kw, r):
    onehot = np.eye(kw["V"])[kw["w"]]
    e = kw["eta"]
    return {"weights": ml_weights(r),
            "phi": (r.T @ onehot + e - 1) / (r.sum(0)[:, None] + kw["V"] * (e - 1)),
            "mu": wmean(r, kw["x"]), "s2": wvar(r, kw["x"])}


case(Case(
    "categorical_dirichlet_map", CAT_DIR, _sim_cat_dir, algorithm="MAP-EM",
    log_joint=lambda kw, p: (np.log(p["weights"]) + np.log(p["phi"][:, kw["w"]].T)
                             + stats.norm.logpdf(kw["x"][:, None], p["mu"], np.sqrt(p["s2"]))),
    log_prior=lambda kw, p: float(sum(stats.dirichlet.logpdf(f, [kw["eta"]] * kw["V"])
                                      for f in p["phi"])),
    se=lambda kw, t: {**_cat_normal_se(kw, t), "phi": 1.5 * np.sqrt(
        t["phi"] * (1 - t["phi"]) / (3000 * t["weights"])[:, None]) + 0.01 / SE_FACTOR},
    mstep=_cat_dir_mstep, match_on="mu"))


# ---- 37. MvNormal mixture with one covariance shared by all components (tied)
TIED_COV = """
model TiedCovarianceMixture
dim N, D
dim K = 2
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
param  Sigma     : spd[D]
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], Sigma)
}
"""


def _sim_tied_cov(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [3.0, 2.0]]),
         "Sigma": _SIG[0]}
    z = draw_z(rng, t["weights"], N)
    return {"x": t["mu"][z] + rng.multivariate_normal([0, 0], _SIG[0], N), "K": 2}, t


def _tied_mstep(kw, r):
    mu = wmean(r, kw["x"])
    d = kw["x"][:, None, :] - mu[None]
    return {"weights": ml_weights(r), "mu": mu,
            "Sigma": np.einsum("nk,nki,nkj->ij", r, d, d) / r.shape[0]}


def _tied_se(kw, t):
    nk = (3000 * t["weights"])[:, None]
    S, v = t["Sigma"], np.diag(t["Sigma"])
    return {"weights": w_se(t["weights"], 3000), "mu": np.sqrt(v / nk),
            "Sigma": np.sqrt((S ** 2 + np.outer(v, v)) / 3000)}


case(Case(
    "tied_covariance", TIED_COV, _sim_tied_cov,
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(
        kw["x"], p["mu"], np.broadcast_to(p["Sigma"], (len(p["mu"]),) + np.shape(p["Sigma"])[-2:])),
    se=_tied_se, mstep=_tied_mstep, match_on="mu", kaxis={"Sigma": None}, mstep_rtol=1e-7,
    small=lambda rng: _sim_tied_cov(rng, 300)[0]))


# ---- 38. a scale mixture: one shared mean, a covariance per component (no closed form)
SCALE_MIX = """
model GaussianScaleMixture
dim N, D
dim K = 2
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu        : real[D]
param  Sigma[K]  : spd[D]
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu, Sigma[z[n]])
}
"""


def _sim_scale_mix(rng, N=3000):
    Sig = np.array([_SIG[0], 9 * _SIG[0]])
    t = {"weights": np.array([0.6, 0.4]), "mu": np.array([1.0, 2.0]), "Sigma": Sig}
    z = draw_z(rng, t["weights"], N)
    x = t["mu"] + np.einsum("nij,nj->ni", np.linalg.cholesky(Sig)[z],
                            rng.standard_normal((N, 2)))
    return {"x": x, "K": 2}, t


def _scale_se(kw, t):
    se = _mvn_se(t, 3000, t["Sigma"])
    return {"weights": 1.5 * se["weights"], "mu": 1.5 * np.sqrt(np.diag(t["Sigma"][0]) / 1800),
            "Sigma": 1.5 * se["Sigma"]}


case(Case(
    "scale_mixture", SCALE_MIX, _sim_scale_mix,
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(
        kw["x"], np.broadcast_to(p["mu"], (len(p["weights"]), len(p["mu"]))), p["Sigma"]),
    se=_scale_se, mstep=None, match_on="Sigma", kaxis={"mu": None},
    small=lambda rng: _sim_scale_mix(rng, 300)[0]))


# ---- 39. a Categorical emission whose probabilities depend on a group covariate only
CAT_COV = """
model GroupCategoricalMixture
dim N, G, V
dim K = 2
data   g[N]      : cat[G]
data   w[N]      : cat[V]
data   x[N]      : real
param  weights   : simplex[K]
param  phi[G]    : simplex[V]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    w[n] ~ Categorical(phi[g[n]])
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""


def _sim_cat_cov(rng, N=3000):
    kw, t = _sim_normal(rng, N)
    g = rng.integers(3, size=N)
    phi = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    w = (rng.uniform(size=(N, 1)) > np.cumsum(phi[g], 1)).sum(1)
    return {**kw, "g": g, "w": w, "G": 3, "V": 3}, \
        {"weights": t["weights"], "phi": phi, "mu": t["mu"], "s2": t["s"] ** 2}


def _cat_cov_mstep(kw, r):
    onehot = np.eye(kw["V"])[kw["w"]]
    phi = np.array([onehot[kw["g"] == j].mean(0) for j in range(kw["G"])])
    return {"weights": ml_weights(r), "phi": phi, "mu": wmean(r, kw["x"]),
            "s2": wvar(r, kw["x"])}


case(Case(
    "categorical_by_covariate", CAT_COV, _sim_cat_cov,
    log_joint=lambda kw, p: (np.log(p["weights"]) + np.log(p["phi"][kw["g"], kw["w"]])[:, None]
                             + stats.norm.logpdf(kw["x"][:, None], p["mu"], np.sqrt(p["s2"]))),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "phi": np.sqrt(t["phi"] * (1 - t["phi"]) / 1000),
                      "mu": np.sqrt(t["s2"] / (3000 * t["weights"])),
                      "s2": t["s2"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=_cat_cov_mstep, match_on="mu", kaxis={"phi": None}))


# ---- 40. M repeated MvNormal measurements per item in an inner loop
MVN_INNER = """
model RepeatedGaussianMixture
dim N, M, D
dim K = 2
data   x[N, M]   : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
param  Sigma[K]  : spd[D]
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for m in 1:M { x[n, m] ~ MvNormal(mu[z[n]], Sigma[z[n]]) }
}
"""


def _sim_mvn_inner(rng, N=1500):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [2.0, 1.0]]),
         "Sigma": _SIG}
    z = draw_z(rng, t["weights"], N)
    L = np.linalg.cholesky(_SIG)[z]
    x = t["mu"][z][:, None] + np.einsum("nij,nmj->nmi", L, rng.standard_normal((N, 3, 2)))
    return {"x": x, "K": 2}, t


def _mvn_inner_mstep(kw, r):
    x = kw["x"]
    M = x.shape[1]
    nk = r.sum(0) * M
    mu = np.einsum("nk,nmd->kd", r, x) / nk[:, None]
    d = x[:, None] - mu[None, :, None]                       # (N, K, M, D)
    return {"weights": ml_weights(r), "mu": mu,
            "Sigma": np.einsum("nk,nkmi,nkmj->kij", r, d, d) / nk[:, None, None]}


case(Case(
    "mvnormal_inner_loop", MVN_INNER, _sim_mvn_inner,
    log_joint=lambda kw, p: np.log(p["weights"]) + np.stack(
        [stats.multivariate_normal.logpdf(kw["x"].reshape(-1, kw["x"].shape[-1]), p["mu"][k],
                                          p["Sigma"][k]).reshape(kw["x"].shape[:2]).sum(1)
         for k in range(len(p["weights"]))], axis=1),
    se=lambda kw, t: {**_mvn_se(t, 1500 * 3, _SIG), "weights": w_se(t["weights"], 1500)},
    mstep=_mvn_inner_mstep, match_on="mu", mstep_rtol=1e-7,
    small=lambda rng: _sim_mvn_inner(rng, 200)[0]))


# Models of supported pieces whose combination 0.1 does not derive: each must be rejected
# with a located "not supported yet" error (their simulators and references above stay, for
# the day they are supported).  The words each message must contain:
NOT_YET = {
    "categorical_inner": ["not supported yet", "inner plate"],
    "categorical_by_covariate": ["not supported yet", "covariate"],
    "mvnormal_inner_loop": ["not supported yet", "inner plate"],
}


@pytest.mark.parametrize("name", list(NOT_YET))
def test_combination_not_supported_yet(name):
    with pytest.raises(emdsl.NonConjugateError) as info:
        emdsl.loads(CASES[name].source, name=f"{name}.emm")
    text = str(info.value)
    assert f"{name}.emm:" in text and "^" in text, text
    for w in NOT_YET[name]:
        assert w in text, f"{w!r} not in {text!r}"


@pytest.mark.parametrize("name", [n for n in CASES if n not in NOT_YET])
def test_new_model_compiles_fits_and_is_right(name):
    check_case(CASES[name])


def test_binomial_trials_hyper_default_is_used():
    """Without `trials` at fit time the default 20 is the Binomial's n (here the true n)."""
    m = compiled(CASES["binomial"])
    rng = np.random.default_rng(5)
    p_true = np.array([0.2, 0.65])
    z = draw_z(rng, np.array([0.3, 0.7]), 3000)
    y = rng.binomial(20, p_true[z])
    r = fit(m, {"y": y}, seed=0, n_init=2, tol=1e-10)
    kw = {"y": y, "trials": 20}
    np.testing.assert_allclose(r.elbo[-1], scipy_objective(CASES["binomial"], kw, r.params),
                               rtol=1e-10)
    np.testing.assert_allclose(np.sort(r.params["p"]), p_true, atol=0.02)  # SE <= 0.005


# ============================================================================ known bugs
NORMAL_FULL_MAP = """
model NormalMeanVarMAP
dim N
dim K = 2
hyper  m0        : real = 0.0
hyper  v0        : pos = 100.0
hyper  a0        : pos = 3.0
hyper  b0        : pos = 2.0
hyper  alpha     : pos = 2.0
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s2[K]     : pos
latent z[N]      : cat[K]
weights ~ Dirichlet(alpha)
for k in 1:K {
    mu[k] ~ Normal(m0, v0)
    s2[k] ~ InvGamma(a0, b0)
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""

# the smallest model with the same problem: a Normal prior on the means alone
NORMAL_MU_MAP = NORMAL_FULL_MAP.replace("    s2[k] ~ InvGamma(a0, b0)\n", "")

HANG_GUARD = 120.0   # seconds: a guard against a hang (these sources' symbolic solves
#                      once ran for minutes), not a speed check; compile times are
#                      measured by hand in bench/compile_times.py


def _compile_in_subprocesses(sources: dict, timeout: float) -> dict:
    """Compile each source in its own process (in parallel); name -> seconds or None if hung."""
    code = "import sys, emdsl; emdsl.loads(sys.stdin.read(), name='x.emm', use_cache=False)"
    procs = {}
    for name, src in sources.items():
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ))
        p.stdin.write(src)
        p.stdin.close()
        procs[name] = (p, time.monotonic())
    deadline = time.monotonic() + timeout
    out = {}
    for name, (p, t0) in procs.items():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
            err = p.stderr.read()
            assert p.returncode == 0, f"{name}: compile failed:\n{err}"
            out[name] = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            out[name] = None
    return out


def _normal_map_case(source, name, with_s2_prior):
    def log_prior(kw, p):
        lp = stats.dirichlet.logpdf(p["weights"], [kw["alpha"]] * 2)
        lp += stats.norm.logpdf(p["mu"], kw["m0"], np.sqrt(kw["v0"])).sum()
        if with_s2_prior:
            lp += stats.invgamma.logpdf(p["s2"], kw["a0"], scale=kw["b0"]).sum()
        return float(lp)

    def mstep(kw, r):  # coordinate-wise stationarity is not a closed form: solve numerically
        nk, x = r.sum(0), kw["x"]
        out_mu, out_s2 = np.empty(2), np.empty(2)
        for k in range(2):
            def negq(th):
                mu, s2 = th[0], np.exp(th[1])
                q = np.sum(r[:, k] * stats.norm.logpdf(x, mu, np.sqrt(s2)))
                q += stats.norm.logpdf(mu, kw["m0"], np.sqrt(kw["v0"]))
                if with_s2_prior:
                    q += stats.invgamma.logpdf(s2, kw["a0"], scale=kw["b0"])
                return -q
            res = optimize.minimize(negq, [np.sum(r[:, k] * x) / nk[k], 0.0], method="BFGS",
                                    options={"gtol": 1e-10})
            out_mu[k], out_s2[k] = res.x[0], np.exp(res.x[1])
        a = kw["alpha"]
        return {"weights": (nk + a - 1) / (len(x) + 2 * (a - 1)), "mu": out_mu, "s2": out_s2}

    def sim(rng, N=3000):
        kw, t = _sim_normal(rng, N)
        return {**kw, "alpha": 3.0, "m0": 0.0, "v0": 0.5, "a0": 10.0, "b0": 5.0}, \
            {"weights": t["weights"], "mu": t["mu"], "s2": t["s"] ** 2}

    return Case(name, source, sim, algorithm="MAP-EM",
                log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
                    kw["x"][:, None], p["mu"], np.sqrt(p["s2"])),
                log_prior=log_prior,
                se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                                  "mu": np.sqrt(t["s2"] / (3000 * t["weights"])) + 0.01},
                mstep=mstep, match_on="mu", mstep_rtol=1e-5)


def test_normal_mixture_with_normal_prior_on_means_map():
    times = _compile_in_subprocesses({"mu+s2 priors": NORMAL_FULL_MAP,
                                      "mu prior only": NORMAL_MU_MAP}, HANG_GUARD)
    hung = [k for k, v in times.items() if v is None]
    assert not hung, f"compilation hung (not finished after {HANG_GUARD:g} s): {hung}"
    check_case(_normal_map_case(NORMAL_FULL_MAP, "normal_full_map", True))
    check_case(_normal_map_case(NORMAL_MU_MAP, "normal_mu_map", False))


# ============================================================================ unsupported
UNSUPPORTED = {
    # a param indexed by a covariate and the latent at once
    "covariate_and_latent_index": ("""
model GroupRates
dim N, G
dim K = 2
data   g[N]        : cat[G]
data   y[N]        : count
param  weights     : simplex[K]
param  rate[G, K]  : pos
latent z[N]        : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(rate[g[n], z[n]])
}
""", emdsl.NonConjugateError, 12, ["not supported yet", "covariate"]),
    # a user family that is not exponential in its parameter (Cauchy scale)
    "cauchy_family": ("""
model CauchyMixture
family Cauchy(s : pos) on real {
    logpdf(x) = -log(pi * s) - log(1 + (x / s)^2)
}
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  s[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Cauchy(s[z[n]])
}
""", emdsl.NonConjugateError, 4, ["not an exponential family", "Cauchy"]),
    # a user family exponential in one parameter but not in the other (Lomax scale)
    "lomax_unknown_scale": ("""
model LomaxScaleMixture
family Lomax(alpha : pos, lam : pos) on pos {
    logpdf(x) = log(alpha) - log(lam) - (alpha + 1) * log(1 + x / lam)
}
dim N
dim K = 2
data   x[N]      : pos
param  weights   : simplex[K]
param  alpha[K]  : pos
param  lam[K]    : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Lomax(alpha[z[n]], lam[z[n]])
}
""", emdsl.NonConjugateError, 15, ["not supported yet", "not an exponential family", "lam"]),
    # Laplace with abs(): abs is not a function of the language
    "laplace_abs": ("""
model LaplaceMixture
family Laplace(b : pos) on real {
    logpdf(x) = -log(2 * b) - abs(x) / b
}
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  b[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Laplace(b[z[n]])
}
""", (emdsl.NonConjugateError, emdsl.EmmSemanticError), 4, ["abs", "not supported"]),
    # known per-item trials given as data: data inside a family's arguments
    "binomial_trials_as_data": ("""
model PerItemTrials
dim N
dim K = 2
data   m[N]      : count
data   y[N]      : count
param  weights   : simplex[K]
param  p[K]      : unit
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Binomial(m[n], p[z[n]])
}
""", emdsl.NonConjugateError, 12, ["not supported yet", "'m'"]),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_combination_gives_located_error(name):
    source, cls, line, words = UNSUPPORTED[name]
    with pytest.raises(emdsl.EmmError) as info:
        emdsl.loads(source, name=f"{name}.emm")
    exc = info.value
    assert isinstance(exc, cls), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert f"{name}.emm:{line}:" in text, text
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"
    assert "Traceback" not in text
