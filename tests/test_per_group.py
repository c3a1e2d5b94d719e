"""One latent per group of items in long format, for any scalar family: the items
``y[t] ~ F(theta[z[doc[t]]])`` of group d all belong to its component z[d], so a group's
statistics are its items' summed and A(theta_k) counts once per item. Models written for
this test, each against EM (or CAVI) written out here with scipy.stats from the same
start: params and objective after 8 iterations; the E-step in 512-row blocks equals one
block; per-group log likelihoods; `emdsl check` recovers a simulation."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma, logsumexp

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning
from test_scalar_layouts import assert_e_step_in_any_blocks

MIXED = """model Mixed
dim T, D, V
dim K = 2
data doc[T] : cat[D]
data y[T] : real
data w[T] : cat[V]
data nl[D] : count
param pi : simplex[K]
param mu[K] : real
param v : pos
param phi[K] : simplex[V]
param lam[K] : pos
latent z[D] : cat[K]
for d in 1:D {
  z[d] ~ Categorical(pi)
  nl[d] ~ Poisson(lam[z[d]])
}
for t in 1:T {
  y[t] ~ Normal(mu[z[doc[t]]], v)
  w[t] ~ Categorical(phi[z[doc[t]]])
}
"""

BAYES = """model BayesCounts
dim T, D
dim K = 2
data doc[T] : cat[D]
data y[T] : count
latent pi : simplex[K]
latent rate[K] : pos
latent z[D] : cat[K]
pi ~ Dirichlet(1.0)
for k in 1:K { rate[k] ~ Gamma(2.0, 0.5) }
for d in 1:D { z[d] ~ Categorical(pi) }
for t in 1:T { y[t] ~ Poisson(rate[z[doc[t]]]) }
"""

# the same model by maximum likelihood: its weights and rates point params, no priors
COUNTS = (BAYES.replace("latent pi", "param pi").replace("latent rate", "param rate")
          .replace("pi ~ Dirichlet(1.0)\n", "")
          .replace("for k in 1:K { rate[k] ~ Gamma(2.0, 0.5) }\n", ""))


def _groups(rng, D, most=6):
    z = rng.integers(0, 2, D)
    doc = np.repeat(np.arange(D), rng.integers(1, most, D))
    order = rng.permutation(len(doc))   # items in any order
    return z, doc[order]


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        return fn(*a, **kw)


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_scalar_categorical_and_per_group_data_equal_em_by_hand(offset):
    """A Normal (tied variance) and a Categorical per item, a Poisson per group, the data
    around 0 and around 1e6 (the items' statistics are centred before they are summed)."""
    m = emdsl.loads(MIXED, name="mixed.emm", use_cache=False)
    rng = np.random.default_rng(1)
    D, V = 50, 6
    z, doc = _groups(rng, D)
    y = rng.normal(np.array([-1.0, 2.0])[z[doc]], 1.0) + offset
    w, nl = rng.integers(0, V, len(doc)), rng.poisson(np.array([3.0, 7.0])[z])
    p = dict(pi=np.array([0.5, 0.5]), mu=np.array([0.0, 1.0]) + offset, v=2.0,
             phi=rng.dirichlet(np.ones(V), 2), lam=np.array([2.0, 5.0]))
    res = _quiet(m.fit, doc=doc, y=y, w=w, nl=nl, D=D, V=V, init=dict(p), max_iter=8, tol=0,
                 reg=0)
    for _ in range(8):
        L = np.log(p["pi"]) + stats.poisson.logpmf(nl[:, None], p["lam"]) + np.stack(
            [np.bincount(doc, weights=stats.norm.logpdf(y, p["mu"][k], np.sqrt(p["v"]))
                         + np.log(p["phi"][k][w]), minlength=D) for k in range(2)], 1)
        R = np.exp(L - logsumexp(L, 1, keepdims=True))
        Rt = R[doc]
        p["pi"], p["lam"] = R.mean(0), (R * nl[:, None]).sum(0) / R.sum(0)
        p["mu"] = (Rt * y[:, None]).sum(0) / Rt.sum(0)
        p["v"] = (Rt * (y[:, None] - p["mu"]) ** 2).sum() / len(y)
        phi = np.stack([np.bincount(w, weights=Rt[:, k], minlength=V) for k in range(2)])
        p["phi"] = phi / phi.sum(1, keepdims=True)
    for k, want in p.items():
        np.testing.assert_allclose(res.params[k], want, rtol=1e-9, atol=1e-12 * offset)


def test_blocks_per_group_log_likelihoods_and_the_bayesian_version():
    rng = np.random.default_rng(0)
    D = 1300
    z, doc = _groups(rng, D, most=4)
    y = rng.poisson(np.array([2.0, 9.0])[z[doc]])
    m = emdsl.loads(COUNTS, name="counts.emm", use_cache=False)
    p = {"pi": np.array([0.4, 0.6]), "rate": np.array([1.5, 6.0])}
    L = np.log(p["pi"]) + np.stack([np.bincount(doc, weights=stats.poisson.logpmf(
        y, p["rate"][k]), minlength=D) for k in range(2)], 1)
    b = m._bind({"doc": doc, "y": y, "D": D})
    assert_e_step_in_any_blocks(m.module, b.data, {**b.dims, **b.hypers}, p, L, per_row=True,
                                resp_atol=1e-12)
    bayes = emdsl.loads(BAYES, name="bayes_counts.emm", use_cache=False)
    q = {"pi.concentration": np.array([10.0, 10.0]), "rate.shape": np.array([3.0, 12.0]),
         "rate.rate": np.array([1.0, 1.0])}
    res = _quiet(bayes.fit, doc=doc, y=y, D=D, init=dict(q), max_iter=6, tol=0)
    a, sh, rt = q["pi.concentration"], q["rate.shape"], q["rate.rate"]
    for _ in range(6):   # CAVI by hand: q(z) from E_q[log pi], E_q[log rate], E_q[rate]
        L = digamma(a) - digamma(a.sum()) + np.stack([np.bincount(
            doc, weights=y * (digamma(sh[k]) - np.log(rt[k])) - sh[k] / rt[k], minlength=D)
            for k in range(2)], 1)
        R = np.exp(L - logsumexp(L, 1, keepdims=True))
        Rt = R[doc]
        a, sh, rt = 1.0 + R.sum(0), 2.0 + (Rt * y[:, None]).sum(0), 0.5 + Rt.sum(0)
    for key, want in (("pi.concentration", a), ("rate.shape", sh), ("rate.rate", rt)):
        np.testing.assert_allclose(res.params[key], want, rtol=1e-11)


def test_the_cli_check_recovers_a_simulation_with_groups(tmp_path, capsys):
    from emdsl.cli import main
    src = tmp_path / "counts.emm"
    src.write_text(COUNTS)
    assert main(["check", str(src), "--set", "T=4000", "D=500"]) == 0
    assert "recovered" in capsys.readouterr().out
