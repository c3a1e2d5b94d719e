"""Stepwise and incremental EM from the same module (runtime/online.py): incremental EM
never lowers the objective over a pass and reaches batch EM's fixed point; stepwise EM's
first minibatch of the whole data set is one batch EM step (statistics scaled to the data
set, a MAP prior added once), and it gets close to batch EM's log likelihood in a few
passes; options and models the drivers do not take are clear errors."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def gmm():
    return emdsl.load(MODELS / "gaussian_mixture.emm", use_cache=False)


def _blobs(seed, n=3000, K=3, D=2, spread=4.0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, spread, (K, D))
    return mu[rng.integers(K, size=n)] + rng.normal(size=(n, D))


def _fit(m, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return m.fit(**kw)


@pytest.mark.parametrize("seed", range(20))
def test_incremental_em_never_lowers_the_objective_over_a_pass(gmm, seed):
    x = _blobs(seed, n=1200)
    r = _fit(gmm, x=x, K=3, seed=seed, method="incremental", batch_size=250, max_iter=15,
             tol=0.0)
    assert len(r.elbo) == 15   # one entry per pass
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def test_incremental_em_reaches_the_batch_fixed_point(gmm):
    x = _blobs(1)
    start = _fit(gmm, x=x, K=3, seed=0, max_iter=1).params   # the same start for both
    batch = _fit(gmm, x=x, K=3, init=start, max_iter=2000, tol=1e-14)
    incr = _fit(gmm, x=x, K=3, init=start, method="incremental", batch_size=700, max_iter=2000,
                tol=1e-14)
    for k in ("weights", "mu", "Sigma"):
        np.testing.assert_allclose(incr.params[k], batch.params[k], rtol=1e-6, atol=1e-6,
                                   err_msg=k)
    assert incr.elbo[-1] == pytest.approx(batch.elbo[-1], rel=1e-10)


MAP_POISSON = """model MapPoisson
dim N
dim K = 2
data   y[N]    : count
hyper  a0      : pos = 3.0
hyper  b0      : pos = 0.5
hyper  alpha0  : pos = 4.0
param  weights : simplex[K]
param  rate[K] : pos
latent z[N]    : cat[K]
weights ~ Dirichlet(alpha0)
for k in 1:K { rate[k] ~ Gamma(a0, b0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(rate[z[n]])
}
"""


def test_a_stepwise_minibatch_of_everything_is_a_batch_step():
    """B = N: the first minibatch sets the running statistics, scaled by N / B = 1, and the
    M-step adds the MAP priors once: one pass equals one batch MAP-EM iteration."""
    m = emdsl.loads(MAP_POISSON, name="map.emm", use_cache=False)
    rng = np.random.default_rng(3)
    y = rng.poisson(np.array([2.0, 9.0])[rng.integers(2, size=400)])
    start = {"weights": np.array([0.3, 0.7]), "rate": np.array([1.0, 5.0])}
    one = _fit(m, y=y, init=start, max_iter=1, tol=0.0, method="stepwise", batch_size=len(y))
    batch = _fit(m, y=y, init=start, max_iter=1, tol=0.0)
    for k in one.params:   # batch's params after 1 iteration are those of its one M-step
        np.testing.assert_allclose(one.params[k], batch.params[k], rtol=1e-12, err_msg=k)
    half = _fit(m, y=y, init=start, max_iter=1, tol=0.0, method="stepwise", batch_size=200)
    assert not np.allclose(half.params["rate"], one.params["rate"])   # the check has teeth


def test_stepwise_em_gets_close_to_batch_em_in_a_few_passes(gmm):
    x = _blobs(2, n=40000, K=4, D=3)
    batch = _fit(gmm, x=x, K=4, seed=0, max_iter=500, tol=1e-8)
    step = _fit(gmm, x=x, K=4, seed=0, method="stepwise", batch_size=500, kappa=0.6,
                max_iter=4, tol=0.0)
    assert len(step.elbo) == 4
    per_item = (step.elbo[-1] - batch.elbo[-1]) / len(x)
    assert abs(per_item) < 1e-3, per_item


def test_online_variational_em_keeps_its_prior_once():
    """A Bayesian GMM by stepwise EM: the q factors' updates add the prior to statistics
    standing for the whole data set (stochastic VI's step); its ELBO approaches batch's."""
    m = emdsl.load(MODELS / "bayes_gmm.emm", use_cache=False)
    x = _blobs(5, n=6000)
    batch = _fit(m, x=x, K=3, seed=0, max_iter=300, tol=1e-10)
    step = _fit(m, x=x, K=3, seed=0, method="stepwise", batch_size=300, max_iter=5, tol=0.0)
    assert abs(step.elbo[-1] - batch.elbo[-1]) / len(x) < 2e-3
    conc = step.posterior["weights"]["concentration"]   # alpha0 = 0.1 once, counts sum to N
    assert conc.sum() == pytest.approx(len(x) + 3 * 0.1, rel=1e-9)


@pytest.mark.parametrize("opts, words", [
    ({"method": "online"}, "method 'online' is not available"),
    ({"delay": 5.0}, "fit option delay is for method='svi', not 'batch'"),
    ({"method": "stepwise", "delay": 5.0}, "fit option delay is for method='svi'"),
    ({"method": "stepwise", "kappa": 0.5}, "kappa must be > 0.5"),
    ({"method": "stepwise", "kappa": 1.5}, r"kappa must be in \(0.5, 1\]"),
    ({"method": "stepwise", "batch_size": 0}, "batch_size must be >= 1"),
    ({"batch_size": 100}, "batch_size is for method='stepwise' or 'incremental' or 'svi'"),
])
def test_bad_options_are_clear_errors(gmm, opts, words):
    with pytest.raises(emdsl.errors.EmmDataError, match=words):
        gmm.fit(x=_blobs(0, n=100), K=3, **opts)


def test_the_responsibilities_are_computed_when_asked_for(gmm):
    x = _blobs(6, n=500)
    r = _fit(gmm, x=x, K=3, seed=0, method="stepwise", batch_size=100, max_iter=2)
    assert "z" in r.posterior and "z" in r.posterior.keys()
    R = r.posterior["z"]
    assert R.shape == (500, 3) and np.allclose(R.sum(1), 1.0)
    mod = gmm.module
    h = {"N": 500, "K": 3}
    np.testing.assert_allclose(R, mod.e_step(mod.prepare({"x": x}, h), r.params, h)[0],
                               rtol=1e-10, atol=1e-14)


def test_models_with_local_factors_take_batch_or_svi():
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    doc = np.repeat(np.arange(5), 10)
    w = np.random.default_rng(0).integers(20, size=50)
    with pytest.raises(emdsl.errors.EmmDataError, match="factor per group of items"):
        m.fit(doc=doc, w=w, D=5, V=20, K=2, method="stepwise")
    with pytest.raises(emdsl.errors.EmmDataError, match="svi' takes the data in memory"):
        m.fit([{"doc": doc, "w": w}], D=5, V=20, K=2, method="svi")


def test_long_data_are_checked_block_by_block(gmm):
    """The checks of a long array run a block of rows at a time (a memmap is never
    materialised); an error still names the item."""
    x = _blobs(7, n=70001)
    x[70000, 1] = np.nan
    with pytest.raises(emdsl.errors.EmmDataError, match=r"first at x\[70000, 1\]"):
        gmm.fit(x=x, K=3, method="stepwise")


def test_svi_without_local_factors_is_stepwise_with_a_delay(gmm):
    """A Bayesian GMM has no local factors: SVI moves the running statistics by
    rho_t = (delay + t)^-kappa after each minibatch; its ELBO approaches batch CAVI's."""
    m = emdsl.load(MODELS / "bayes_gmm.emm", use_cache=False)
    x = _blobs(8, n=6000)
    batch = _fit(m, x=x, K=3, seed=0, max_iter=300, tol=1e-10)
    svi = _fit(m, x=x, K=3, seed=0, method="svi", batch_size=200, kappa=0.7, delay=10.0,
               max_iter=6, tol=0.0)
    assert abs(svi.elbo[-1] - batch.elbo[-1]) / len(x) < 2e-3


def test_svi_on_lda_keeps_every_document_and_resumes_bit_identically(tmp_path):
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    rng = np.random.default_rng(0)
    topics = rng.dirichlet(np.full(30, 0.1), size=3)
    docs = [rng.choice(30, size=40, p=topics[rng.integers(3)]) for _ in range(60)]
    doc = np.repeat(np.arange(60), 40)
    w = np.concatenate(docs)
    kw = dict(doc=doc, w=w, D=60, V=30, K=3, seed=1, method="svi", batch_size=16, tol=0.0)
    full = _fit(m, max_iter=5, **kw)
    assert full.params["theta.concentration"].shape == (60, 3)
    assert len(full.elbo) == 5 and np.all(np.isfinite(full.elbo))
    path = tmp_path / "svi.npz"
    _fit(m, max_iter=2, checkpoint=path, **kw)
    resumed = _fit(m, max_iter=5, resume=path, **kw)
    assert np.array_equal(resumed.elbo, full.elbo)
    for k in full.params:
        assert np.array_equal(resumed.params[k], full.params[k]), k


def test_svi_objective_is_the_passes_estimate_and_approaches_the_exact_elbo():
    """An SVI pass reports each group's part of the ELBO as its minibatch fitted it plus
    the global factors' -KL at the end; it approaches the exact ELBO of the result (one
    E-step over all the data, computed here) as the steps shrink."""
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    mod = m.module
    rng = np.random.default_rng(0)
    topics = rng.dirichlet(np.full(50, 0.1), size=4)
    docs = [rng.choice(50, size=rng.poisson(60) + 1, p=rng.dirichlet(np.full(4, 0.3)) @ topics)
            for _ in range(400)]
    doc, w = np.repeat(np.arange(400), [len(d) for d in docs]), np.concatenate(docs)
    h = dict(D=400, V=50, K=4, T=len(w), alpha=0.1, eta=0.01)
    st = mod.prepare({"doc": doc, "w": w}, h)
    gaps = []
    for passes in (1, 3, 30):
        r = _fit(m, doc=doc, w=w, D=400, V=50, K=4, seed=1, method="svi", batch_size=20,
                 tol=0.0, max_iter=passes)
        exact = mod.e_step(st, r.params, h)[2] + mod.log_prior(r.params, h)
        gaps.append(abs(r.objective - exact) / abs(exact))
    assert gaps[0] < 0.05 and gaps[1] < 3e-3 and gaps[2] < 3e-4, gaps
    assert gaps[0] > gaps[1] > gaps[2]
    assert r.algorithm == "SVI" and r.objective_name == "ELBO (progressive estimate)"
    batch = _fit(m, doc=doc, w=w, D=400, V=50, K=4, seed=1, max_iter=2, tol=0.0)
    assert batch.objective_name == "ELBO"   # the exact one


def test_stepwise_em_keeps_categories_absent_from_the_first_minibatch():
    """The running statistics start as the whole data's, so a word no early minibatch holds
    keeps its mass (it got probability 0 and then NaN statistics)."""
    m = emdsl.load(MODELS / "topics_em.emm", use_cache=False)
    names = [v.name for v in m.checked.vars.values() if v.role == "data"]
    rng = np.random.default_rng(0)
    doc = np.repeat(np.arange(20), 30)
    w = rng.integers(15, size=600)
    w[:300] = rng.integers(5, size=300)   # words 5..14 only in the second half
    kw = {names[0]: doc, names[1]: w} if names[0] == "doc" else {names[0]: w, names[1]: doc}
    for method in ("stepwise", "svi"):
        r = _fit(m, **kw, D=20, V=15, K=2, seed=0, method=method, batch_size=50, max_iter=3)
        assert np.all(np.isfinite(r.elbo)), method


def test_svi_with_no_local_iterations_still_moves_the_documents():
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    rng = np.random.default_rng(0)
    doc, w = np.repeat(np.arange(30), 20), rng.integers(12, size=600)
    kw = dict(doc=doc, w=w, D=30, V=12, K=2, seed=0, method="svi", batch_size=10, tol=0.0,
              local_iter=0)
    one = _fit(m, max_iter=1, **kw).params["theta.concentration"]
    three = _fit(m, max_iter=3, **kw).params["theta.concentration"]
    assert not np.array_equal(one, three)


def test_the_posterior_of_an_online_fit_is_a_mapping(gmm):
    import copy
    import pickle
    r = _fit(gmm, x=_blobs(9, n=300), K=3, seed=0, method="stepwise", batch_size=100,
             max_iter=1)
    p = r.posterior
    assert len(p) == 1 and list(p) == ["z"] and "z" in p and p.get("z") is not None
    assert dict(p)["z"].shape == (300, 3) and {**p}.keys() == {"z"}
    assert set(pickle.loads(pickle.dumps(p))) == {"z"} and "z" in copy.deepcopy(p)


@pytest.mark.parametrize("opts, words", [
    ({"method": "svi", "delay": 0.5}, "delay must be >= 1"),
    ({"method": "stepwise", "n_init": 3}, "n_init > 1 takes method='batch'"),
])
def test_more_bad_options(gmm, opts, words):
    with pytest.raises(emdsl.errors.EmmDataError, match=words):
        gmm.fit(x=_blobs(0, n=100), K=3, **opts)
