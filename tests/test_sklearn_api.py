"""What scikit-learn users expect of a fitted mixture (issue 8, item 5): predict,
predict_proba, score, BIC and AIC on new data, with the number of free parameters
counted from the model's declarations; each equal to GaussianMixture's for the same fit
(full, diagonal, spherical and tied covariances)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn_mixture = pytest.importorskip("sklearn.mixture")
import emdsl  # noqa: E402
from test_sklearn_covariance_types import MODELS, compiled, start  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = 3


def _data(seed, n=300):
    rng = np.random.default_rng(seed)
    mu = np.array([[-4.0, 0.0], [4.0, 1.0], [0.0, 5.0]])
    return mu[rng.integers(K, size=n)] + rng.normal(size=(n, 2)) * [1.0, 0.7]


def _fits(kind):
    X = _data(0)
    w0, mu0, spread0, prec0 = start(X, "tied" if kind == "full" else kind)
    if kind == "full":   # every component from the tied start
        spread0, prec0 = np.tile(spread0, (K, 1, 1)), np.tile(prec0, (K, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = sklearn_mixture.GaussianMixture(
            n_components=K, covariance_type=kind, reg_covar=0, tol=0, max_iter=20,
            weights_init=w0, means_init=mu0, precisions_init=prec0).fit(X)
        if kind == "full":
            m = emdsl.load(ROOT / "models" / "gaussian_mixture.emm")
            init = {"weights": w0, "mu": mu0, "Sigma": spread0}
        else:
            m, init = compiled(kind), {"weights": w0, "mu": mu0, MODELS[kind][2]: spread0}
        r = m.fit(x=X, K=K, reg=0, tol=0, max_iter=20, init=init)
    return X, gm, r


@pytest.mark.parametrize("kind", ["full", "diag", "spherical", "tied"])
def test_scores_and_predictions_equal_scikit_learns(kind):
    X, gm, r = _fits(kind)
    new = _data(1, n=120)
    assert r.n_parameters == gm._n_parameters()
    for data in (X, new):
        assert r.bic(x=data) == pytest.approx(gm.bic(data), rel=1e-9)
        assert r.aic(x=data) == pytest.approx(gm.aic(data), rel=1e-9)
        assert r.score(x=data) == pytest.approx(gm.score(data), rel=1e-9)
        np.testing.assert_allclose(r.score_samples(x=data), gm.score_samples(data),
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(r.predict_proba(x=data), gm.predict_proba(data), atol=1e-9)
        np.testing.assert_array_equal(r.predict(x=data), gm.predict(data))


def test_the_number_of_parameters_follows_the_declarations():
    X = _data(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = emdsl.load(ROOT / "models" / "gaussian_mixture.emm").fit(x=X, K=3, max_iter=3)
        assert r.n_parameters == (3 - 1) + 3 * 2 + 3 * 3   # simplex[K], real[D], spd[D]
        topics = emdsl.load(ROOT / "models" / "topics_em.emm")
        doc, w = np.repeat(np.arange(6), 5), np.arange(30) % 7
        r = topics.fit(doc=doc, w=w, D=6, V=7, K=2, max_iter=2)
    assert r.n_parameters == 6 * (2 - 1) + 2 * (7 - 1)   # theta[D] simplex[K], phi[K] simplex[V]


def test_what_does_not_apply_is_a_clear_error():
    bg = emdsl.load(ROOT / "models" / "bayes_gmm.emm")
    X = _data(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bg.fit(x=X, K=3, max_iter=5)
    assert r.predict_proba(x=X).shape == (len(X), 3)   # the variational responsibilities
    with pytest.raises(ValueError, match="BIC and AIC count the params of a point estimate"):
        r.bic(x=X)
    with pytest.raises(emdsl.errors.EmmDataError, match="has 3 along axis 1 but the fit's D"):
        r.predict(x=np.ones((5, 3)))   # the fit's D = 2


def test_a_saved_result_loads_and_predicts_the_same(tmp_path):
    X = _data(4)
    m = emdsl.load(ROOT / "models" / "gaussian_mixture.emm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=X, K=3, seed=0, max_iter=30)
    r.save(tmp_path / "fit.npz")
    back = emdsl.load_result(tmp_path / "fit.npz")
    for k, v in r.params.items():
        np.testing.assert_array_equal(back.params[k], v)
    np.testing.assert_array_equal(back.elbo, r.elbo)
    np.testing.assert_array_equal(back.posterior["z"], r.posterior["z"])
    assert (back.n_iter, back.converged, back.algorithm) == (r.n_iter, r.converged, r.algorithm)
    new = _data(5, n=50)
    assert back.bic(x=new) == r.bic(x=new)
    np.testing.assert_array_equal(back.predict(x=new), r.predict(x=new))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(emdsl.errors.EmmDataError, match="not a saved emdsl result"):
        emdsl.load_result(tmp_path / "bad.npz")


def test_a_variational_result_round_trips_its_factors(tmp_path):
    m = emdsl.load(ROOT / "models" / "bayes_gmm.emm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=_data(6), K=3, max_iter=5)
    r.save(tmp_path / "vb.npz")
    back = emdsl.load_result(tmp_path / "vb.npz")
    for var, q in r.posterior.items():
        if isinstance(q, dict):
            for f, v in q.items():
                np.testing.assert_array_equal(back.posterior[var][f], v)


def test_the_cli_writes_the_posterior_beside_its_json(tmp_path, capsys):
    from emdsl.cli import main
    faithful = ROOT / "models" / "data" / "faithful.csv"
    gmm = ROOT / "models" / "gaussian_mixture.emm"
    assert main(["fit", str(gmm), "--data", str(faithful), "-o", str(tmp_path / "r.json")]) == 0
    import json
    assert json.loads((tmp_path / "r.json").read_text())["n_iter"] > 0
    with np.load(tmp_path / "r.posterior.npz") as z:   # beside the JSON
        assert z["z"].shape == (272, 3)
    assert main(["fit", str(gmm), "--data", str(faithful), "-o", str(tmp_path / "r.npz")]) == 0
    assert emdsl.load_result(tmp_path / "r.npz").posterior["z"].shape == (272, 3)


@pytest.mark.parametrize("name, data", [
    ("poisson_mixture", lambda rng: {"y": rng.poisson(np.repeat([2.0, 9.0], 60))}),
    ("bernoulli_mixture", None),
])
def test_score_samples_of_scalar_families_add_up_and_match_scipy(name, data):
    """Per-item log likelihoods (log h(x) included) sum to the total, and for a Poisson
    mixture equal log sum_k w_k Poisson(y | rate_k) computed with scipy."""
    from scipy import stats
    m = emdsl.load(ROOT / "models" / f"{name}.emm")
    rng = np.random.default_rng(0)
    kw = data(rng) if data is not None else {"x": rng.integers(0, 2, size=(80, 5))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(**kw, K=2, seed=0, max_iter=20)
    per_item = r.score_samples(**kw)
    assert per_item.shape == (len(next(iter(kw.values()))),)
    assert per_item.sum() == pytest.approx(r.score(**kw) * len(per_item), rel=1e-12)
    if name == "poisson_mixture":
        w, rate = r.params["weights"], r.params["rate"]
        want = np.log(sum(w[k] * stats.poisson.pmf(kw["y"], rate[k]) for k in range(2)))
        np.testing.assert_allclose(per_item, want, rtol=1e-10)
