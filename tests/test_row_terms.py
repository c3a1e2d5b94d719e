"""Terms of log p(x_n, z_n = k) that are the same for every k - a shared covariance's
-1/2 x^T Lambda x, an MvNormal emission without the component index - cancel in the
responsibilities: the E-step leaves them out of the (K, B) log joint and adds their sum
to the log likelihood from the statistics, and each row's value only when per-row log
likelihoods are asked for. Models written for this test; the E-step (in 512-row blocks
and in one block) is checked against scipy.stats, per row and in total, and a fit's
objective never decreases. The local fit of a grouped model keeps such a term in its
log joint (its ELBO needs it); a mixed-membership model with a shared covariance checks
that path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning
from test_scalar_layouts import assert_e_step_in_any_blocks

N, K = 1300, 3

TIED = """
model Tied
dim N, D
dim K = 3
data x[N] : real[D]
param w : simplex[K]
param mu[K] : real[D]
param S : spd[D]
hyper m0 : real[D]
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  x[n] ~ MvNormal(mu[z[n]] + m0, S)
}
"""

BESIDE = """
model Beside
dim N, D
dim K = 3
data u[N] : real
data y[N] : real[D]
param w : simplex[K]
param a[K] : real
param v[K] : pos
param m : real[D]
param P : spd[D]
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  u[n] ~ Normal(a[z[n]], v[z[n]])
  y[n] ~ MvNormal(m, prec=P)
}
"""


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


CASES = {
    "tied_shifted_mean": (
        TIED,
        lambda rng: {"x": rng.normal(4.0, 2.0, (N, 4)), "m0": np.full(4, 0.5)},
        lambda rng: {"mu": rng.normal(3.5, 2.0, (K, 4)), "S": _spd(rng, 4)},
        lambda p, kw: np.stack([stats.multivariate_normal.logpdf(kw["x"], p["mu"][k] + kw["m0"],
                                                                 p["S"]) for k in range(K)], 1)),
    "mvnormal_without_the_component": (
        BESIDE,
        lambda rng: {"u": rng.normal(0.0, 3.0, N), "y": rng.normal(-2.0, 1.5, (N, 3))},
        lambda rng: {"a": rng.normal(0, 3, K), "v": rng.gamma(2, 1, K),
                     "m": rng.normal(-2, 1, 3), "P": _spd(rng, 3)},
        lambda p, kw: (stats.norm.logpdf(kw["u"][:, None], p["a"], np.sqrt(p["v"]))
                       + stats.multivariate_normal.logpdf(kw["y"], p["m"],
                                                          np.linalg.inv(p["P"]))[:, None])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_e_step_log_likelihood_per_row_and_in_total_match_scipy(name):
    source, data, params, reference = CASES[name]
    rng = np.random.default_rng(0)
    m = emdsl.loads(source, name=f"{name}.emm", use_cache=False)
    kw = data(rng)
    p = {"w": rng.dirichlet(np.ones(K)), **params(rng)}
    b = m._bind({**kw, "K": K})
    h = {**b.dims, **b.hypers}
    log_joint = np.log(p["w"]) + reference(p, kw)
    assert_e_step_in_any_blocks(m.module, b.data, h, p, log_joint, per_row=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)      # 25 iterations at tol 0
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        res = m.fit(**kw, K=K, seed=1, max_iter=25, tol=0)
    assert np.all(np.diff(res.elbo) >= -1e-9 * np.abs(res.elbo[1:]))
    if name == "tied_shifted_mean":   # score_samples: the same per-row values, fitted
        fitted = np.log(res.params["w"]) + reference(res.params, kw)
        np.testing.assert_allclose(res.score_samples(**kw), logsumexp(fitted, axis=1),
                                   rtol=1e-10)


MIXED_MEMBERSHIP = """
model MixedMembership
dim T, G, D
dim K = 3
data   grp[T]     : cat[G]
data   x[T]       : real[D]
hyper  alpha      : pos = 0.5
param  mu[K]      : real[D]
param  S          : spd[D]
latent theta[G]   : simplex[K]
latent c[T]       : cat[K]
for g in 1:G { theta[g] ~ Dirichlet(alpha) }
for t in 1:T {
    c[t] ~ Categorical(theta[grp[t]])
    x[t] ~ MvNormal(mu[c[t]], S)
}
"""


def test_the_local_fit_keeps_the_shared_term_and_its_elbo_never_decreases():
    rng = np.random.default_rng(3)
    G, per, D = 40, 25, 2
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    theta = rng.dirichlet(np.full(K, 0.5), G)
    grp = np.repeat(np.arange(G), per)
    c = np.array([rng.choice(K, p=theta[g]) for g in grp])
    x = centres[c] + rng.normal(size=(len(c), D))
    m = emdsl.loads(MIXED_MEMBERSHIP, name="mixed_membership.emm", use_cache=False)
    assert "-1/2 x^T Lambda x: the same for every k" in m.code   # in the local fit's log joint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        res = m.fit(grp=grp, x=x, G=G, K=K, seed=0, max_iter=30, tol=0)
    assert np.all(np.diff(res.elbo) >= -1e-9 * np.abs(res.elbo[1:]))
    found = res.params["mu"][np.argsort(res.params["mu"][:, 0])]
    np.testing.assert_allclose(found, centres, atol=0.5)
