"""Models the 0.1 mixture template rejected, each through the full harness of
``test_generality`` (recovery, the objective against scipy, the M-step against the textbook
closed form, a monotone objective): params tied across components or inner loops, known
per-component hypers, params through expressions that only a range analysis types."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from test_generality import Case, check_case, draw_z, ml_weights, w_se, wmean

CASES: dict[str, Case] = {}


def case(c: Case):
    CASES[c.name] = c
    return c


# ---- a variance shared by all components (sklearn's "tied" in one dimension)
case(Case(
    "tied_variance", """
model TiedVarianceMixture
dim N
dim K = 3
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s2        : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], s2)
}
""",
    simulate=lambda rng, N=3000: (lambda t, z: ({"x": rng.normal(t["mu"][z], np.sqrt(t["s2"])),
                                                 "K": 3}, t))(
        *(lambda t: (t, draw_z(rng, t["weights"], N)))(
            {"weights": np.array([0.3, 0.3, 0.4]), "mu": np.array([-4.0, 0.0, 5.0]),
             "s2": np.array(1.3)})),
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(p["s2"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["s2"] / (3000 * t["weights"])),
                      "s2": t["s2"] * np.sqrt(2 / 3000)},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]),
                         "s2": np.sum(r * (kw["x"][:, None] - wmean(r, kw["x"])) ** 2)
                         / len(kw["x"])},
    match_on="mu", kaxis={"s2": None}))


# ---- one success probability per component shared by the D pixels of an item
def _sim_shared_p(rng, N=2000):
    t = {"weights": np.array([0.5, 0.5]), "p": np.array([0.2, 0.7])}
    z = draw_z(rng, t["weights"], N)
    return {"x": (rng.uniform(size=(N, 6)) < t["p"][z][:, None]).astype(int), "K": 2}, t


case(Case(
    "bernoulli_shared_p", """
model SharedBernoulli
dim N, D
dim K = 2
data   x[N, D]   : bin
param  weights   : simplex[K]
param  p[K]      : unit
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { x[n, d] ~ Bernoulli(p[z[n]]) }
}
""", _sim_shared_p,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.binom.logpmf(
        kw["x"].sum(1)[:, None], kw["x"].shape[1], p["p"]) - np.log(special.comb(
            kw["x"].shape[1], kw["x"].sum(1)))[:, None],
    se=lambda kw, t: {"weights": w_se(t["weights"], 2000),
                      "p": np.sqrt(t["p"] * (1 - t["p"]) / (2000 * 6 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "p": r.T @ kw["x"].sum(1) / (kw["x"].shape[1] * r.sum(0))},
    match_on="p"))


# ---- a known variance per component (a hyper on the cells of the latent)
def _sim_known_var(rng, N=3000):
    t = {"weights": np.array([0.5, 0.5]), "mu": np.array([-1.0, 2.0])}
    v = np.array([0.25, 4.0])
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.normal(t["mu"][z], np.sqrt(v[z])), "v": v, "K": 2}, t


case(Case(
    "known_variance_per_component", """
model KnownVariances
dim N
dim K = 2
data   x[N]      : real
hyper  v         : pos[K]
param  weights   : simplex[K]
param  mu[K]     : real
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], v[z[n]])
}
""", _sim_known_var,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], np.sqrt(kw["v"])),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(kw["v"] / (3000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"])},
    match_on="mu"))


# ---- a Geometric whose success probability is 1 - q
def _sim_geo(rng, N=4000):
    t = {"weights": np.array([0.5, 0.5]), "q": np.array([0.9, 0.4])}
    z = draw_z(rng, t["weights"], N)
    return {"y": rng.geometric(1 - t["q"][z]) - 1, "K": 2}, t


case(Case(
    "geometric_one_minus_q", """
model GeometricFailures
dim N
dim K = 2
data   y[N]      : count
param  weights   : simplex[K]
param  q[K]      : unit
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Geometric(1 - q[z[n]])
}
""", _sim_geo,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.geom.logpmf(kw["y"][:, None] + 1,
                                                                     1 - p["q"]),
    se=lambda kw, t: {"weights": 1.5 * w_se(t["weights"], 4000),
                      "q": 1.5 * (1 - t["q"]) * np.sqrt(t["q"] / (4000 * t["weights"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r),
                         "q": r.T @ kw["y"] / (r.sum(0) + r.T @ kw["y"])},
    match_on="q"))


# ---- a Bernoulli through the logistic function of a real param
def _sim_logit(rng, N=4000):
    t = {"weights": np.array([0.4, 0.6]), "a": np.array([-1.5, 2.0])}
    z = draw_z(rng, t["weights"], N)
    return {"y": (rng.uniform(size=(N, 5)) < special.expit(t["a"][z])[:, None]).astype(int),
            "K": 2}, t


case(Case(
    "bernoulli_logistic", """
model LogisticBernoulli
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
""", _sim_logit,
    log_joint=lambda kw, p: np.log(p["weights"]) + (
        kw["y"].sum(1)[:, None] * np.log(special.expit(p["a"]))
        + (kw["y"].shape[1] - kw["y"].sum(1))[:, None] * np.log(special.expit(-p["a"]))),
    se=lambda kw, t: {"weights": w_se(t["weights"], 4000),
                      "a": 1 / np.sqrt(4000 * 5 * t["weights"] * special.expit(t["a"])
                                       * special.expit(-t["a"]))},
    mstep=lambda kw, r: {"weights": ml_weights(r), "a": special.logit(
        r.T @ kw["y"].sum(1) / (kw["y"].shape[1] * r.sum(0)))},
    match_on="a"))


# ---- one mean shared by all components, a variance each: the groups read each other
def _sim_scale(rng, N=4000):
    t = {"weights": np.array([0.6, 0.4]), "m": np.array(1.5), "v": np.array([0.5, 6.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.normal(t["m"], np.sqrt(t["v"][z])), "K": 2}, t


case(Case(
    "normal_scale_mixture", """
model NormalScaleMixture
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  m         : real
param  v[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(m, v[z[n]])
}
""", _sim_scale,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["m"], np.sqrt(p["v"])),
    se=lambda kw, t: {"weights": 2 * w_se(t["weights"], 4000), "m": np.array(0.05),
                      "v": 2 * t["v"] * np.sqrt(2 / (4000 * t["weights"]))},
    mstep=None, match_on="v", kaxis={"m": None}))


# ---- per-dimension variances shared by the components, per-component means (diag, tied)
def _sim_tied_diag(rng, N=3000):
    t = {"weights": np.array([0.5, 0.5]), "mu": np.array([[0.0, 0.0, 1.0], [3.0, -2.0, 1.0]]),
         "s2": np.array([1.0, 0.5, 2.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": t["mu"][z] + rng.normal(size=(N, 3)) * np.sqrt(t["s2"]), "K": 2}, t


case(Case(
    "tied_diagonal_variances", """
model TiedDiagonal
dim N, D
dim K = 2
data   x[N, D]   : real
param  weights   : simplex[K]
param  mu[K, D]  : real
param  s2[D]     : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    for d in 1:D { x[n, d] ~ Normal(mu[z[n], d], s2[d]) }
}
""", _sim_tied_diag,
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None, :], p["mu"][None], np.sqrt(p["s2"])).sum(-1),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(t["s2"] / (3000 * t["weights"][:, None])),
                      "s2": t["s2"] * np.sqrt(2 / 3000)},
    mstep=lambda kw, r: (lambda mu: {
        "weights": ml_weights(r), "mu": mu,
        "s2": np.einsum("nk,nkd->d", r, (kw["x"][:, None, :] - mu[None]) ** 2) / len(r)})(
        wmean(r, kw["x"])),
    match_on="mu", kaxis={"s2": None}))


@pytest.mark.parametrize("name", list(CASES))
def test_engine_model(name):
    check_case(CASES[name])
