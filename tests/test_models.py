"""End-to-end fits of every compiling model on data simulated in this file with numpy.

* Parameter recovery: data from known, well separated params (N in the thousands; a small
  synthetic corpus for ``topics_em``), ``fit(..., n_init=3)``, components matched to the
  truth with the Hungarian method, estimates within a few standard errors.
* The EM objective never decreases (``reg=0``, 50 iterations, 20 seeds per model, N ~ 300).
* ``gaussian_mixture`` on Old Faithful converges.

The simulators are written from the model files' generative stories, independently of
``emdsl`` (so they do not rely on ``Model.sample``).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
DATA = MODELS / "data"

MODEL_NAMES = ["gaussian_mixture", "gmm_identity_map", "poisson_mixture", "bernoulli_mixture",
               "gamma_mixture", "rayleigh_mixture", "topics_em"]


_LOADED: dict = {}


def model(name):
    if name not in _LOADED:
        _LOADED[name] = emdsl.load(MODELS / f"{name}.emm")
    return _LOADED[name]


def fit(name, kwargs, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model(name).fit(**kwargs, **opts)


def match(cost):
    """Permutation perm with estimate perm[k] <-> true component k (Hungarian method)."""
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    return perm


def pairwise(true, est):
    """Cost matrix: L1 distance between true component k and estimated component j."""
    t = np.asarray(true, float).reshape(len(true), -1)
    e = np.asarray(est, float).reshape(len(est), -1)
    return np.abs(t[:, None, :] - e[None, :, :]).sum(-1)


# ----------------------------------------------------------------------------- simulators
# Each returns (fit kwargs: data and dims, true params).  ``big`` selects the recovery size.
def sim_gaussian_mixture(rng, N):
    w = np.array([0.2, 0.3, 0.5])
    mu = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    Sigma = np.array([[[1.0, 0.5], [0.5, 1.0]], [[2.0, -0.3], [-0.3, 0.5]],
                      [[0.7, 0.0], [0.0, 1.5]]])
    z = rng.choice(3, size=N, p=w)
    L = np.linalg.cholesky(Sigma)
    x = mu[z] + np.einsum("nij,nj->ni", L[z], rng.standard_normal((N, 2)))
    return {"x": x, "K": 3}, {"weights": w, "mu": mu, "Sigma": Sigma}


def sim_gmm_identity_map(rng, N):
    w = np.array([0.3, 0.3, 0.4])
    mu = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    z = rng.choice(3, size=N, p=w)
    x = mu[z] + rng.standard_normal((N, 2))
    return {"x": x, "K": 3}, {"weights": w, "mu": mu}


def sim_poisson_mixture(rng, N):
    w = np.array([0.35, 0.65])
    rate = np.array([3.0, 20.0])
    z = rng.choice(2, size=N, p=w)
    return {"y": rng.poisson(rate[z]), "K": 2}, {"weights": w, "rate": rate}


def sim_bernoulli_mixture(rng, N):
    K, D = 3, 16
    w = np.array([0.25, 0.35, 0.4])
    pattern = np.array([[1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0],
                        [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1],
                        [1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0]])
    p = np.where(pattern == 1, 0.85, 0.1)
    z = rng.choice(K, size=N, p=w)
    x = (rng.uniform(size=(N, D)) < p[z]).astype(np.int64)
    return {"x": x, "K": K}, {"weights": w, "p": p}


def sim_gamma_mixture(rng, N):
    w = np.array([0.4, 0.6])
    shape = np.array([2.0, 30.0])
    rate = np.array([2.0, 3.0])           # means 1 and 10
    z = rng.choice(2, size=N, p=w)
    return {"y": rng.gamma(shape[z], 1 / rate[z]), "K": 2}, \
        {"weights": w, "shape": shape, "rate": rate}


def sim_rayleigh_mixture(rng, N):
    w = np.array([0.5, 0.5])
    s2 = np.array([1.0, 64.0])
    z = rng.choice(2, size=N, p=w)
    return {"y": rng.rayleigh(np.sqrt(s2[z])), "K": 2}, {"weights": w, "s2": s2}


def sim_topics_em(rng, n_docs, V=30, K=3, doc_len=150):
    """Topics on (mostly) disjoint blocks of V / K words, theta_d ~ Dirichlet(0.5)."""
    phi = np.full((K, V), 0.02 / (V - V // K))
    for k in range(K):
        phi[k, k * (V // K):(k + 1) * (V // K)] = 0.98 / (V // K)
    phi /= phi.sum(1, keepdims=True)
    theta = rng.dirichlet(np.full(K, 0.5), size=n_docs)
    doc = np.repeat(np.arange(n_docs), doc_len)
    c = np.array([rng.choice(K, p=theta[d]) for d in doc])
    w = np.array([rng.choice(V, p=phi[k]) for k in c])
    return {"doc": doc, "w": w, "D": n_docs, "V": V, "K": K}, {"theta": theta, "phi": phi}


SIMULATORS = {
    "gaussian_mixture": sim_gaussian_mixture,
    "gmm_identity_map": sim_gmm_identity_map,
    "poisson_mixture": sim_poisson_mixture,
    "bernoulli_mixture": sim_bernoulli_mixture,
    "gamma_mixture": sim_gamma_mixture,
    "rayleigh_mixture": sim_rayleigh_mixture,
    "topics_em": sim_topics_em,
}


# ------------------------------------------------------------------------------ recovery
def test_gaussian_mixture_recovers_params():
    data, true = sim_gaussian_mixture(np.random.default_rng(11), 3000)
    r = fit("gaussian_mixture", data, seed=0, n_init=3, max_iter=300)
    p = r.params
    perm = match(pairwise(true["mu"], p["mu"]))
    np.testing.assert_allclose(p["weights"][perm], true["weights"], atol=0.03)
    # SE of a mean is sd / sqrt(N_k) <= 0.06 here; of a covariance entry ~ 0.1
    np.testing.assert_allclose(p["mu"][perm], true["mu"], atol=0.2)
    np.testing.assert_allclose(p["Sigma"][perm], true["Sigma"], atol=0.3)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))


def test_gmm_identity_map_recovers_params():
    data, true = sim_gmm_identity_map(np.random.default_rng(12), 3000)
    r = fit("gmm_identity_map", data, seed=0, n_init=3, max_iter=300)
    p = r.params
    perm = match(pairwise(true["mu"], p["mu"]))
    np.testing.assert_allclose(p["weights"][perm], true["weights"], atol=0.03)
    np.testing.assert_allclose(p["mu"][perm], true["mu"], atol=0.15)   # SE ~ 0.035


def test_poisson_mixture_recovers_params():
    data, true = sim_poisson_mixture(np.random.default_rng(13), 4000)
    r = fit("poisson_mixture", data, seed=0, n_init=3, max_iter=300)
    p = r.params
    perm = np.argsort(p["rate"])
    np.testing.assert_allclose(p["weights"][perm], true["weights"], atol=0.03)
    np.testing.assert_allclose(p["rate"][perm], true["rate"], rtol=0.06)  # SE <= 1.6 %
    assert r.converged


def test_bernoulli_mixture_recovers_params():
    data, true = sim_bernoulli_mixture(np.random.default_rng(14), 3000)
    r = fit("bernoulli_mixture", data, seed=0, n_init=3, max_iter=300)
    p = r.params
    perm = match(pairwise(true["p"], p["p"]))
    np.testing.assert_allclose(p["weights"][perm], true["weights"], atol=0.03)
    np.testing.assert_allclose(p["p"][perm], true["p"], atol=0.06)  # SE <= 0.013
    assert np.all((p["p"] > 0) & (p["p"] < 1))


def test_gamma_mixture_recovers_params_and_never_decreases():
    data, true = sim_gamma_mixture(np.random.default_rng(15), 4000)
    r = fit("gamma_mixture", data, seed=0, n_init=3, max_iter=500)
    p = r.params
    perm = np.argsort(p["shape"] / p["rate"])   # by mean
    np.testing.assert_allclose(p["weights"][perm], true["weights"], atol=0.03)
    # the shape MLE's SE is ~ 3.5 % (shape 2, N_k 1600) and ~ 3 % (shape 30, N_k 2400)
    np.testing.assert_allclose(p["shape"][perm], true["shape"], rtol=0.15)
    np.testing.assert_allclose(p["rate"][perm], true["rate"], rtol=0.15)
    np.testing.assert_allclose((p["shape"] / p["rate"])[perm], true["shape"] / true["rate"],
                               rtol=0.03)
    assert r.converged
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))


def test_gamma_mixture_objective_never_decreases_from_poor_starts():
    data, _ = sim_gamma_mixture(np.random.default_rng(16), 1000)
    # means 0.1 and 20, and 10 and 10 with very different spreads (truth: 1 and 10)
    for init in ({"shape": np.array([0.5, 10.0]), "rate": np.array([5.0, 0.5])},
                 {"shape": np.array([20.0, 1.0]), "rate": np.array([2.0, 0.1])}):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ObjectiveDecreaseWarning)
            r = fit("gamma_mixture", data, seed=0, max_iter=200, init=init)
        assert r.converged
        assert r.elbo[-1] > r.elbo[0] + 100
        assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))


def test_rayleigh_mixture_recovers_params():
    data, true = sim_rayleigh_mixture(np.random.default_rng(17), 4000)
    r = fit("rayleigh_mixture", data, seed=0, n_init=3, max_iter=300)
    p = r.params
    perm = np.argsort(p["s2"])
    np.testing.assert_allclose(p["weights"][perm], true["weights"], atol=0.03)
    np.testing.assert_allclose(p["s2"][perm], true["s2"], rtol=0.1)   # SE ~ 2-3 %


def test_topics_em_recovers_topics_and_proportions():
    data, true = sim_topics_em(np.random.default_rng(18), 60)
    r = fit("topics_em", data, seed=0, n_init=3, max_iter=500)
    p = r.params
    perm = match(pairwise(true["phi"], p["phi"]))
    # ~3000 tokens per topic: SE of a word probability <= 0.006
    np.testing.assert_allclose(p["phi"][perm], true["phi"], atol=0.03)
    theta = p["theta"][:, perm]
    np.testing.assert_allclose(theta.sum(1), 1.0, rtol=1e-9)
    # 150 tokens per document: SE of a proportion <= 0.04
    err = np.abs(theta - true["theta"])
    assert err.mean() < 0.04 and err.max() < 0.2, (err.mean(), err.max())
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))


def reuters_long_format():
    """Expand models/data/reuters.ldac (``n id:count ...`` per document) to tokens."""
    doc, w = [], []
    with open(DATA / "reuters.ldac", encoding="utf-8") as fh:
        for d, line in enumerate(fh):
            fields = line.split()
            assert int(fields[0]) == len(fields) - 1
            for pair in fields[1:]:
                word, count = map(int, pair.split(":"))
                doc += [d] * count
                w += [word] * count
    return np.array(doc), np.array(w)


def test_topics_em_on_reuters():
    doc, w = reuters_long_format()
    D, V, K = 395, 4258, 10
    assert doc.max() + 1 == D and w.max() < V
    r = fit("topics_em", {"doc": doc, "w": w, "D": D, "V": V}, seed=0, reg=0, tol=0,
            max_iter=30)
    p = r.params
    assert p["theta"].shape == (D, K) and p["phi"].shape == (K, V)
    np.testing.assert_allclose(p["theta"].sum(1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(p["phi"].sum(1), 1.0, rtol=1e-9)
    assert r.posterior["c"].shape == (len(doc), K)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))
    # log p(w | theta, phi) per token rises well above the uniform-words baseline
    assert r.elbo[-1] / len(doc) > -np.log(V) + 1.0


# ------------------------------------------------------------------------- monotonicity
SMALL = {"topics_em": lambda rng: sim_topics_em(rng, 20, V=25, K=3, doc_len=15)}
N_SMALL = 300
SEEDS = range(20)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_objective_never_decreases_without_reg(name):
    bad = []
    for seed in SEEDS:
        rng = np.random.default_rng(1000 + seed)
        sim = SMALL.get(name, lambda g: SIMULATORS[name](g, N_SMALL))
        data, _ = sim(rng)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = model(name).fit(**data, seed=seed, reg=0, tol=0, max_iter=50)
        # tol=0 stops early only when the objective repeats exactly (a fixed point)
        assert (len(r.elbo) == 50 or r.converged) and np.all(np.isfinite(r.elbo))
        drops = np.diff(r.elbo) < -1e-9 * np.abs(r.elbo[:-1])
        flagged = any(issubclass(w.category, ObjectiveDecreaseWarning) for w in caught)
        if drops.any() or flagged:
            i = int(np.argmax(drops))
            bad.append((seed, i + 1, r.elbo[i], r.elbo[i + 1]))
    assert not bad, f"{name}: the objective decreased (seed, iteration, before, after): {bad}"


# ----------------------------------------------------------------------- Old Faithful
def faithful():
    return np.loadtxt(DATA / "faithful.csv", delimiter=",", skiprows=1)


def test_faithful_converges_with_default_options():
    """README's first command: the default options (max_iter=1000, tol=1e-8) converge."""
    X = faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = model("gaussian_mixture").fit(x=X)
    assert r.converged


def test_faithful_converges_given_enough_iterations():
    X = faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = model("gaussian_mixture").fit(x=X, seed=0, max_iter=500)  # INTERFACE.md's call
    assert r.converged and r.n_iter < 500
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))
    assert r.params["mu"].shape == (3, 2)
    np.testing.assert_allclose(r.params["weights"].sum(), 1.0, rtol=1e-12)
    # two-component fit: the textbook short/long eruption clusters
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r2 = model("gaussian_mixture").fit(x=X, K=2)
    assert r2.converged
    mu = r2.params["mu"][np.argsort(r2.params["mu"][:, 0])]
    np.testing.assert_allclose(mu, [[2.04, 54.5], [4.29, 80.0]], atol=0.1)
    assert r2.elbo[-1] == pytest.approx(-1130.264, abs=1e-2)
