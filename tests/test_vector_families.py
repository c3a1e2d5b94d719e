"""Property tests for the numerics every generated module runs, from their source text:
the family table's runtime functions (MvNormal packed statistics, natural parameters and
log-normaliser; Dirichlet, MvNormal, Wishart log densities) and the driver helpers
(``codegen_runtime.HELPERS``), against scipy.stats and finite differences."""
import numpy as np
import pytest
import scipy.stats as st
from scipy.special import gammaln, logsumexp

from emdsl.codegen.helpers import HELPERS


@pytest.fixture(scope="module")
def helpers():
    from emdsl.families.runtime import runtime_functions, runtime_source
    ns = {"np": np, "gammaln": gammaln, "logsumexp": logsumexp}
    exec(HELPERS, ns)  # noqa: S102 - our own helper source, as the generated modules do
    exec(runtime_source(list(runtime_functions())), ns)  # noqa: S102
    return ns


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_mvn_natural_parameters_give_scipy_logpdf(helpers, rng, d):
    mean = rng.normal(size=(3, d))
    cov = np.stack([random_spd(rng, d) for _ in range(3)])
    eta, A = helpers["_mvn_natural"](mean, cov=cov)
    x = rng.normal(size=(50, d)) * 2
    T = helpers["_mvn_stats"](x)
    ours = T @ eta.T - A
    for k in range(3):
        ref = st.multivariate_normal(mean[k], cov[k]).logpdf(x)
        np.testing.assert_allclose(ours[:, k], ref, rtol=1e-10, atol=1e-10)
    eta_p, A_p = helpers["_mvn_natural"](mean, prec=np.linalg.inv(cov))
    np.testing.assert_allclose(eta_p, eta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(A_p, A, rtol=1e-9)


def _log_normaliser(eta, d):
    """A(eta) of the MvNormal in the packed [x, x_i x_j (i <= j)] parameterisation."""
    lin, quad = eta[:d], eta[d:]
    iu, ju = np.triu_indices(d)
    prec = np.zeros((d, d))
    prec[iu, ju] = -quad / np.where(iu == ju, 0.5, 1.0)
    prec[ju, iu] = prec[iu, ju]
    mean = np.linalg.solve(prec, lin)
    return 0.5 * mean @ prec @ mean - 0.5 * np.linalg.slogdet(prec)[1] + 0.5 * d * np.log(2 * np.pi)


@pytest.mark.parametrize("d", [1, 3])
def test_mvn_gradient_of_log_normaliser_is_mean_statistic(helpers, rng, d):
    """dA/deta (central differences) = E[t(x)] = [mu, Sigma_ij + mu_i mu_j]."""
    mean = rng.normal(size=(1, d))
    cov = random_spd(rng, d)[None]
    eta, A = helpers["_mvn_natural"](mean, cov=cov)
    eta = eta[0]
    assert np.isclose(_log_normaliser(eta, d), A[0])
    h = 1e-6
    grad = np.array([(_log_normaliser(eta + h * e, d) - _log_normaliser(eta - h * e, d)) / (2 * h)
                     for e in np.eye(len(eta))])
    iu, ju = np.triu_indices(d)
    second = cov[0] + np.outer(mean[0], mean[0])
    expected = np.concatenate([mean[0], second[iu, ju]])
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_unpack_inverts_packing(helpers, rng):
    x = rng.normal(size=(20, 3))
    T = helpers["_mvn_stats"](x)
    S = helpers["_unpack_sym"](T[:, 3:].sum(0)[None], 3)[0]
    np.testing.assert_allclose(S, x.T @ x, rtol=1e-12)


@pytest.fixture(scope="module")
def runtime():
    """The family table's runtime functions, executed from their source text as a
    generated module holds them."""
    from scipy.special import gammaln as _gammaln
    from emdsl.families.runtime import runtime_functions, runtime_source
    ns = {"np": np, "gammaln": _gammaln}
    exec(runtime_source(list(runtime_functions())), ns)  # noqa: S102 - our own source
    return ns


def test_dirichlet_logpdf_matches_scipy(runtime, rng):
    alpha = np.array([0.5, 2.0, 3.0])
    p = rng.dirichlet(alpha, size=4)
    ours = runtime["_dirichlet_logpdf"](p, alpha)
    np.testing.assert_allclose(ours, [st.dirichlet(alpha).logpdf(row) for row in p], rtol=1e-10)


def test_mvn_logpdf_matches_scipy(runtime, rng):
    mean, cov = rng.normal(size=3), random_spd(rng, 3)
    X = rng.normal(size=(5, 3))
    ref = st.multivariate_normal(mean, cov).logpdf(X)
    np.testing.assert_allclose(runtime["_mvn_logpdf"](X, mean, cov=cov), ref, rtol=1e-10)
    np.testing.assert_allclose(runtime["_mvn_logpdf"](X, mean, prec=np.linalg.inv(cov)), ref,
                               rtol=1e-10)
    # batched: one mean and precision per row
    covs = np.stack([random_spd(rng, 3) for _ in range(5)])
    got = runtime["_mvn_logpdf"](X, X * 0.5, prec=np.linalg.inv(covs))
    want = [st.multivariate_normal(0.5 * x, c).logpdf(x) for x, c in zip(X, covs)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    got = runtime["_mvn_logpdf"](X, X * 0.5, cov=covs)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_wishart_logpdfs_match_scipy(runtime, rng):
    W, df = random_spd(rng, 3), 6.5
    X = st.wishart(df=df, scale=W).rvs(size=4, random_state=1)
    np.testing.assert_allclose(runtime["_wishart_logpdf"](X, W, df),
                               st.wishart(df=df, scale=W).logpdf(np.moveaxis(X, 0, -1)),
                               rtol=1e-10)
    np.testing.assert_allclose(runtime["_invwishart_logpdf"](X, W, df),
                               st.invwishart(df=df, scale=W).logpdf(np.moveaxis(X, 0, -1)),
                               rtol=1e-10)


def test_log_normalise_is_a_stable_softmax(helpers, rng):
    """In the (K, B) layout: a softmax down each column, in place."""
    L = rng.normal(size=(4, 6)) * 300
    ref = logsumexp(L, axis=0)
    R, rows = L.copy(), np.empty(6)
    total = helpers["_log_normalise"](R, rows)   # each column's log normaliser, and the sum
    np.testing.assert_allclose(rows, ref, rtol=1e-12)
    assert total == pytest.approx(ref.sum(), rel=1e-12)
    exact = np.exp(L - ref[None, :])
    floor = np.exp(-500.0 + L.max(axis=0) - ref)[None, :]   # e^-500 of the largest
    np.testing.assert_allclose(R, np.maximum(exact, floor), rtol=1e-10, atol=1e-300)
    assert np.any(exact < floor), "some ratios should fall below the floor"
    # without rows: the sum alone, from logs of products of the normalisers
    big = rng.normal(size=(7, 5000)) * 30
    assert helpers["_log_normalise"](big.copy()) == pytest.approx(
        logsumexp(big, axis=0).sum(), rel=1e-12)
