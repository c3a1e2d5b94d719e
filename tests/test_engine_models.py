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




# ============================================================================ MvNormal params
from test_generality import _SIG, _mvn_logpdf_k, _mvn_se, _wcov  # noqa: E402


def _scatter(r, x, mu):
    """sum_n r[n, k] (x_n - mu_k)(x_n - mu_k)^T -> (K, D, D)."""
    d = x[:, None, :] - mu[None]
    return np.einsum("nk,nki,nkj->kij", r, d, d)


def _sim_mvn(rng, N=3000, shift=np.zeros(2)):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [4.0, 3.0]]), "Sigma": _SIG}
    z = draw_z(rng, t["weights"], N)
    x = t["mu"][z] + np.einsum("nij,nj->ni", np.linalg.cholesky(_SIG)[z],
                               rng.standard_normal((N, 2))) + shift
    return x, t


# ---- a mean through an affine expression: mu[k] + m0 with a known offset m0
def _sim_affine(rng, N=3000):
    m0 = np.array([10.0, -5.0])
    x, t = _sim_mvn(rng, N, m0)
    return {"x": x, "m0": m0, "K": 2}, t


case(Case(
    "mvn_affine_mean", """
model AffineMeans
dim N, D
dim K = 2
data   x[N]       : real[D]
hyper  m0         : real[D] = zeros(D)
param  weights    : simplex[K]
param  mu[K]      : real[D]
param  Sigma[K]   : spd[D]
latent z[N]       : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]] + m0, Sigma[z[n]])
}
""", _sim_affine,
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(kw["x"], p["mu"] + kw["m0"],
                                                                 p["Sigma"]),
    se=lambda kw, t: _mvn_se(t, 3000, _SIG),
    mstep=lambda kw, r: {"weights": ml_weights(r), "mu": wmean(r, kw["x"]) - kw["m0"],
                         "Sigma": _wcov(r, kw["x"])},
    match_on="mu", mstep_rtol=1e-7))


# ---- MAP covariances under an inverse-Wishart prior
def _sim_iw(rng, N=3000):
    x, t = _sim_mvn(rng, N)
    return {"x": x, "Psi": np.eye(2) * 0.5, "nu": 5.0, "K": 2}, t


def _iw_mstep(kw, r):
    mu = wmean(r, kw["x"])
    S = _scatter(r, kw["x"], mu)
    return {"weights": ml_weights(r), "mu": mu,
            "Sigma": (S + kw["Psi"]) / (r.sum(0) + kw["nu"] + 2 + 1)[:, None, None]}


case(Case(
    "mvn_invwishart_map", """
model InvWishartMAP
dim N, D
dim K = 2
data   x[N]       : real[D]
hyper  Psi        : spd[D] = eye(D)
hyper  nu         : pos = D + 2
param  weights    : simplex[K]
param  mu[K]      : real[D]
param  Sigma[K]   : spd[D]
latent z[N]       : cat[K]
for k in 1:K { Sigma[k] ~ InvWishart(Psi, nu) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], Sigma[z[n]])
}
""", _sim_iw, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(kw["x"], p["mu"], p["Sigma"]),
    log_prior=lambda kw, p: float(sum(stats.invwishart(df=kw["nu"], scale=kw["Psi"]).logpdf(S)
                                      for S in p["Sigma"])),
    se=lambda kw, t: _mvn_se(t, 3000, _SIG), mstep=_iw_mstep, match_on="mu", mstep_rtol=1e-7))


# ---- MAP precisions under a Wishart prior, one precision shared by the components
def _sim_tied_wishart(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([[0.0, 0.0], [3.0, 2.0]]),
         "Lam": np.linalg.inv(_SIG[0])}
    z = draw_z(rng, t["weights"], N)
    x = t["mu"][z] + rng.multivariate_normal([0, 0], _SIG[0], N)
    return {"x": x, "W": np.eye(2) * 0.3, "nu": 6.0, "K": 2}, t


def _tied_wishart_mstep(kw, r):
    mu = wmean(r, kw["x"])
    S = _scatter(r, kw["x"], mu).sum(0)
    return {"weights": ml_weights(r), "mu": mu,
            "Lam": (len(r) + kw["nu"] - 2 - 1) * np.linalg.inv(S + np.linalg.inv(kw["W"]))}


case(Case(
    "mvn_tied_wishart_map", """
model TiedPrecisionMAP
dim N, D
dim K = 2
data   x[N]       : real[D]
hyper  W          : spd[D] = eye(D)
hyper  nu         : pos = D + 2
param  weights    : simplex[K]
param  mu[K]      : real[D]
param  Lam        : spd[D]
latent z[N]       : cat[K]
Lam ~ Wishart(W, nu)
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], prec=Lam)
}
""", _sim_tied_wishart, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(
        kw["x"], p["mu"], np.broadcast_to(np.linalg.inv(p["Lam"]), (2, 2, 2))),
    log_prior=lambda kw, p: float(stats.wishart(df=kw["nu"], scale=kw["W"]).logpdf(p["Lam"])),
    recover=lambda p: {**p, "Sigma": np.linalg.inv(p["Lam"])},
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": np.sqrt(np.diag(_SIG[0]) / (3000 * t["weights"])[:, None]),
                      "Sigma": np.sqrt((_SIG[0] ** 2 + np.outer(np.diag(_SIG[0]),
                                                                np.diag(_SIG[0]))) / 3000)},
    mstep=_tied_wishart_mstep, match_on="mu", kaxis={"Lam": None, "Sigma": None},
    mstep_rtol=1e-7))


# ---- joint MAP of mean and precision under a Normal-Wishart prior
def _sim_nw(rng, N=3000):
    x, t = _sim_mvn(rng, N)
    t = {"weights": t["weights"], "mu": t["mu"], "Lam": np.linalg.inv(_SIG)}
    return {"x": x, "m0": np.array([1.0, 1.0]), "beta0": 0.5, "W0": np.eye(2), "nu0": 5.0,
            "K": 2}, t


def _nw_mstep(kw, r):
    x, b, m0 = kw["x"], kw["beta0"], kw["m0"]
    n = r.sum(0)
    mu = (r.T @ x + b * m0) / (n + b)[:, None]
    dev = mu - m0
    S = _scatter(r, x, mu) + b * np.einsum("ki,kj->kij", dev, dev) + np.linalg.inv(kw["W0"])
    return {"weights": ml_weights(r), "mu": mu,
            "Lam": (n + kw["nu0"] - 2)[:, None, None] * np.linalg.inv(S)}


case(Case(
    "mvn_normal_wishart_map", """
model NormalWishartMAP
dim N, D
dim K = 2
data   x[N]       : real[D]
hyper  m0         : real[D] = zeros(D)
hyper  beta0      : pos = 1.0
hyper  W0         : spd[D] = eye(D)
hyper  nu0        : pos = D + 1
param  weights    : simplex[K]
param  mu[K]      : real[D]
param  Lam[K]     : spd[D]
latent z[N]       : cat[K]
for k in 1:K {
    Lam[k] ~ Wishart(W0, nu0)
    mu[k]  ~ MvNormal(m0, prec=beta0 * Lam[k])
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], prec=Lam[z[n]])
}
""", _sim_nw, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + _mvn_logpdf_k(kw["x"], p["mu"],
                                                                 np.linalg.inv(p["Lam"])),
    log_prior=lambda kw, p: float(sum(
        stats.wishart(df=kw["nu0"], scale=kw["W0"]).logpdf(L)
        + stats.multivariate_normal(kw["m0"], np.linalg.inv(kw["beta0"] * L)).logpdf(m)
        for m, L in zip(p["mu"], p["Lam"]))),
    recover=lambda p: {**p, "Sigma": np.linalg.inv(p["Lam"])},
    se=lambda kw, t: _mvn_se(t, 3000, _SIG),
    mstep=_nw_mstep, match_on="mu", kaxis={"Lam": 0, "Sigma": 0}, mstep_rtol=1e-7))


# ============================================================================ grouped latents
# ---- a mixture of unigrams: one topic per document, tokens in long format
def _doc_term(kw):
    X = np.zeros((kw["D"], kw["V"]))
    np.add.at(X, (kw["doc"], kw["w"]), 1.0)
    return X


def _sim_unigrams(rng, N=400):
    K, V = 3, 30
    t = {"pi": np.array([0.3, 0.3, 0.4]),
         "phi": np.random.default_rng(7).dirichlet(np.ones(V) * 0.3, size=K)}
    z = draw_z(rng, t["pi"], N)
    lens = rng.integers(15, 40, size=N)
    doc = np.repeat(np.arange(N), lens)
    w = np.concatenate([rng.choice(V, size=n, p=t["phi"][z[d]]) for d, n in enumerate(lens)])
    return {"doc": doc, "w": w, "D": N, "V": V, "K": K}, t


def _unigram_se(kw, t):
    tokens = len(kw["w"]) * t["pi"][:, None]
    return {"pi": 1.5 * w_se(t["pi"], kw["D"]),
            "phi": np.sqrt(t["phi"] * (1 - t["phi"]) / tokens) + 1e-3}


case(Case(
    "mixture_of_unigrams", """
model MixtureOfUnigrams
dim T, D, V
dim K = 3
data   doc[T]   : cat[D]
data   w[T]     : cat[V]
param  pi       : simplex[K]
param  phi[K]   : simplex[V]
latent z[D]     : cat[K]
for d in 1:D { z[d] ~ Categorical(pi) }
for t in 1:T { w[t] ~ Categorical(phi[z[doc[t]]]) }
""", _sim_unigrams,
    log_joint=lambda kw, p: np.log(p["pi"]) + _doc_term(kw) @ np.log(p["phi"]).T,
    se=_unigram_se,
    mstep=lambda kw, r: {"pi": ml_weights(r), "phi": (lambda C: C / C.sum(1, keepdims=True))(
        r.T @ _doc_term(kw))},
    match_on="phi"))


# ---- a scalar Normal-Gamma prior under MAP: the mean's prior precision scaled by the
# component's precision (the mean and the precision solved together from one Q + log prior)
def _sim_ng_map(rng, N=3000):
    t = {"weights": np.array([0.4, 0.6]), "mu": np.array([-2.0, 3.0]),
         "tau": np.array([1.0, 4.0])}
    z = draw_z(rng, t["weights"], N)
    return {"x": rng.normal(t["mu"][z], 1 / np.sqrt(t["tau"][z])), "K": 2}, t


def _ng_map_mstep(kw, r):
    x, Nk = kw["x"], r.sum(0)
    S1, S2 = r.T @ x, r.T @ x ** 2
    mu = (S1 + 0.5 * 1.0) / (Nk + 0.5)          # (sum r x + beta0 m0) / (N_k + beta0)
    rate = 0.8 + 0.5 * (S2 - 2 * mu * S1 + Nk * mu ** 2 + 0.5 * (mu - 1.0) ** 2)
    return {"weights": ml_weights(r), "mu": mu, "tau": (3.0 - 1 + (Nk + 1) / 2) / rate}


case(Case(
    "normal_gamma_map", """
model NormalGammaMAP
dim N
dim K = 2
data   x[N]     : real
param  weights  : simplex[K]
param  mu[K]    : real
param  tau[K]   : pos
latent z[N]     : cat[K]
for k in 1:K {
    tau[k] ~ Gamma(3, 0.8)
    mu[k] ~ Normal(1, prec=0.5 * tau[k])
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], prec=tau[z[n]])
}
""", _sim_ng_map, algorithm="MAP-EM",
    log_joint=lambda kw, p: np.log(p["weights"]) + stats.norm.logpdf(
        kw["x"][:, None], p["mu"], 1 / np.sqrt(p["tau"])),
    log_prior=lambda kw, p: float(np.sum(stats.gamma.logpdf(p["tau"], 3.0, scale=1 / 0.8))
                                  + np.sum(stats.norm.logpdf(p["mu"], 1.0,
                                                             1 / np.sqrt(0.5 * p["tau"])))),
    se=lambda kw, t: {"weights": w_se(t["weights"], 3000),
                      "mu": 1 / np.sqrt(3000 * t["weights"] * t["tau"]),
                      "tau": t["tau"] * np.sqrt(2 / (3000 * t["weights"]))},
    mstep=_ng_map_mstep, mstep_rtol=1e-5,   # (reg = 1e-6 is added to the variance 1/tau)
    match_on="mu"))


@pytest.mark.parametrize("name", list(CASES))
def test_engine_model(name):
    check_case(CASES[name])
