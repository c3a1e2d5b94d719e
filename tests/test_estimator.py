"""emdsl.Estimator (issue 8, item 5): scikit-learn's estimator checks, clone / pickle /
grid search, BIC equal to GaussianMixture's, supervised models and clear errors."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import emdsl  # noqa: E402
from emdsl.errors import EmmDataError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GMM = ROOT / "models" / "gaussian_mixture.emm"
POISSON = ROOT / "models" / "poisson_mixture.emm"
FAITHFUL = np.loadtxt(ROOT / "models" / "data" / "faithful.csv", delimiter=",", skiprows=1)


def test_scikit_learns_estimator_checks_pass():
    """Every check scikit-learn runs for a density estimator passes (array-API input is
    skipped by scikit-learn itself unless SCIPY_ARRAY_API is set)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(emdsl.Estimator(str(GMM), K=3, seed=0), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) >= 35


def test_bic_equals_gaussian_mixtures_and_predictions_agree():
    est = emdsl.Estimator(GMM, K=2, seed=0, tol=1e-10, max_iter=500).fit(FAITHFUL)
    ref = GaussianMixture(2, tol=1e-10, max_iter=500, n_init=5, random_state=0).fit(FAITHFUL)
    assert est.bic(FAITHFUL) == pytest.approx(ref.bic(FAITHFUL), rel=1e-8)
    assert est.aic(FAITHFUL) == pytest.approx(ref.aic(FAITHFUL), rel=1e-8)
    assert est.score(FAITHFUL) == pytest.approx(ref.score(FAITHFUL), rel=1e-8)
    # the same optimum, each stopped by its own tolerance: items agree to ~1e-6
    np.testing.assert_allclose(est.score_samples(FAITHFUL), ref.score_samples(FAITHFUL),
                               rtol=1e-4)
    p, q = est.predict_proba(FAITHFUL), ref.predict_proba(FAITHFUL)
    order = np.argsort(est.params_["mu"][:, 0])   # the components up to relabelling
    ref_order = np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(p[:, order], q[:, ref_order], atol=1e-4)
    assert np.array_equal(est.labels_, est.predict(FAITHFUL))
    assert est.converged_ and est.n_iter_ > 1 and est.n_features_in_ == 2
    assert est.objective_ == pytest.approx(est.result_.objective)


def test_params_clone_pickle_and_grid_search():
    est = emdsl.Estimator(str(GMM), K=2, seed=0)
    assert est.get_params() == {"model": str(GMM), "K": 2, "seed": 0}
    assert est.K == 2
    twin = clone(est).set_params(K=3)
    assert twin.get_params()["K"] == 3 and est.get_params()["K"] == 2
    est.fit(FAITHFUL)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(FAITHFUL), est.predict(FAITHFUL))
    model = emdsl.load(GMM)   # a Model object, not a path, pickles too (as its source)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(emdsl.Estimator(model, K=2, seed=0).fit(FAITHFUL)))
        .predict(FAITHFUL), est.predict(FAITHFUL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(make_pipeline(StandardScaler(), emdsl.Estimator(GMM, seed=0)),
                              {"estimator__K": [1, 2, 3]}, cv=3).fit(FAITHFUL)
    assert search.best_params_["estimator__K"] in (2, 3)
    assert np.isfinite(search.score(FAITHFUL))


def test_a_scalar_datum_takes_one_column():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.poisson(2.0, 300), rng.poisson(15.0, 300)]).reshape(-1, 1)
    est = emdsl.Estimator(POISSON, K=2, seed=0).fit(y)
    np.testing.assert_allclose(np.sort(est.params_["rate"]), [2.0, 15.0], rtol=0.15)
    assert est.predict(y).shape == (600,)
    with pytest.raises(EmmDataError, match="datum 'y' .* is a scalar per item: X needs 1 "
                                           "column, got 2"):
        est.fit(np.hstack([y, y]))


def test_a_supervised_model_takes_x_as_covariate_and_y_as_datum():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    w = np.array([1.0, -2.0, 0.5])
    y = X @ w + 0.1 * rng.normal(size=200)
    est = emdsl.Estimator(ROOT / "models" / "bayes_linreg.emm").fit(X, y)
    np.testing.assert_allclose(est.params_["w.mean"], w, atol=0.05)
    with pytest.raises(ValueError, match="give y"):
        est.fit(X)
    with pytest.raises(EmmDataError, match="no discrete latent per item"):
        est.predict(X)


def test_bad_parameters_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"Kay is not a dim, hyper or fit option .* \(valid: "):
        emdsl.Estimator(GMM, Kay=2).fit(FAITHFUL)
    with pytest.raises(ValueError, match="data='q' is not a datum"):
        emdsl.Estimator(GMM, K=2, data="q").fit(FAITHFUL)
    with pytest.raises(ValueError, match="model must be an emdsl.Model or the path"):
        emdsl.Estimator(3).fit(FAITHFUL)
    with pytest.raises(sklearn.exceptions.NotFittedError, match="not fitted yet"):
        emdsl.Estimator(GMM, K=2).predict(FAITHFUL)
    est = emdsl.Estimator(GMM, K=2, seed=0).fit(FAITHFUL)
    with pytest.raises(ValueError, match="X has 3 features, but Estimator is expecting 2"):
        est.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        est.predict(np.array([[1.0, np.nan]]))
    assert repr(emdsl.Estimator("m.emm", K=2)) == "Estimator(model='m.emm', K=2)"


def test_a_datum_over_two_plates_takes_x_as_it_is():
    """x[N, D] : bin (a scalar per cell, two plates) is X (N, D), not one column."""
    rng = np.random.default_rng(2)
    p = np.array([[0.9, 0.1, 0.8, 0.2, 0.9], [0.1, 0.9, 0.2, 0.8, 0.1]])
    z = rng.integers(0, 2, 600)
    X = (rng.random((600, 5)) < p[z]).astype(float)
    est = emdsl.Estimator(ROOT / "models" / "bernoulli_mixture.emm", K=2, seed=0).fit(X)
    assert est.params_["p"].shape == (2, 5) and est.predict(X).shape == (600,)
