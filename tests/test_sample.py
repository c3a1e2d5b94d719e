"""model.sample -> model.fit recovers the parameters, for every compiling model.

The simulation is emdsl's own (statement by statement; inverse-CDF tables for families
declared only by their log density), so these tests also check the sampler against
scipy.stats where a reference exists.
"""
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
from scipy.optimize import linear_sum_assignment

import emdsl

MODELS = Path(__file__).resolve().parent.parent / "models"


def model(name):
    return emdsl.load(MODELS / f"{name}.emm")


CASES = {
    "gaussian_mixture": (dict(N=3000, K=2, D=2), {
        "weights": [0.4, 0.6], "mu": [[0.0, 0.0], [4.0, 3.0]],
        "Sigma": [[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]]}, "mu"),
    "gmm_identity_map": (dict(N=3000, K=2, D=2), {
        "weights": [0.3, 0.7], "mu": [[-2.0, 0.0], [2.0, 1.0]]}, "mu"),
    "poisson_mixture": (dict(N=4000, K=2), {"weights": [0.5, 0.5], "rate": [2.0, 12.0]},
                        "rate"),
    "bernoulli_mixture": (dict(N=3000, K=2, D=8), {
        "weights": [0.5, 0.5],
        "p": [[0.9, 0.8, 0.9, 0.7, 0.2, 0.1, 0.2, 0.1], [0.1, 0.2, 0.1, 0.3, 0.8, 0.9, 0.8, 0.9]]},
        "p"),
    "gamma_mixture": (dict(N=4000, K=2), {"weights": [0.4, 0.6], "shape": [2.0, 12.0],
                                          "rate": [2.0, 1.0]}, "shape"),
    "rayleigh_mixture": (dict(N=4000, K=2), {"weights": [0.5, 0.5], "s2": [1.0, 30.0]}, "s2"),
}


def _matched(fit_params, true, key):
    """Permutation of fitted components that best matches the true ``key`` param."""
    a = np.asarray(true[key]).reshape(len(true[key]), -1)
    b = np.asarray(fit_params[key]).reshape(len(fit_params[key]), -1)
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return linear_sum_assignment(cost)[1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_then_fit_recovers(name):
    dims, true, key = CASES[name]
    m = model(name)
    sim = m.sample(params=true, seed=1, **dims)
    data = {v: sim[v] for v in m.module.DATA}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(**data, K=dims["K"], seed=0, n_init=3)
    perm = _matched(r.params, true, key)
    for p, value in true.items():
        got = np.asarray(r.params[p])[perm]
        # about 4 standard errors at these sample sizes
        np.testing.assert_allclose(got, np.asarray(value), rtol=0.15, atol=0.15,
                                   err_msg=f"{name}: {p}")


def test_topics_em_sample_then_fit():
    m = model("topics_em")
    rng = np.random.default_rng(3)
    D, K, V, per_doc = 40, 2, 30, 150
    doc = np.repeat(np.arange(D), per_doc)
    theta = np.where(np.arange(D)[:, None] % 2 == 0, [0.9, 0.1], [0.1, 0.9])
    phi = np.zeros((K, V))
    phi[0, :15], phi[1, 15:] = 1 / 15, 1 / 15
    phi = 0.98 * phi + 0.02 / V
    sim = m.sample(params={"theta": theta, "phi": phi}, seed=2, doc=doc, T=len(doc), D=D,
                   K=K, V=V)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(doc=doc, w=sim["w"], K=K, V=V, D=D, seed=0, n_init=3)
    perm = _matched(r.params, {"phi": phi}, "phi")
    np.testing.assert_allclose(r.params["phi"][perm], phi, atol=0.03)
    err = np.abs(r.params["theta"][:, perm] - theta)
    assert err.mean() < 0.06 and err.max() < 0.2  # ML per document, 150 tokens each
    del rng


def test_user_family_sampler_matches_scipy():
    """Rayleigh declared by its log density only: draws follow scipy.stats.rayleigh."""
    m = model("rayleigh_mixture")
    sim = m.sample(params={"weights": [1.0, 0.0], "s2": [4.0, 1.0]}, seed=5, N=3000, K=2)
    assert st.kstest(sim["y"], st.rayleigh(scale=2.0).cdf).pvalue > 1e-3


def test_builtin_sampler_matches_scipy():
    m = model("gamma_mixture")
    sim = m.sample(params={"weights": [1.0, 0.0], "shape": [3.0, 1.0], "rate": [2.0, 1.0]},
                   seed=6, N=3000, K=2)
    assert st.kstest(sim["y"], st.gamma(3.0, scale=0.5).cdf).pvalue > 1e-3
