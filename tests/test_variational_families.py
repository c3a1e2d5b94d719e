"""Property tests for the variational-Bayes runtime functions of the family table
(Dirichlet expectations and KL, Wishart E[log|Lambda|], the Normal-Wishart's expected
natural parameters, conjugate update and KL), executed from their source text as a
generated module holds them, against Monte Carlo (scipy.stats draws), finite differences,
brute-force natural-parameter arithmetic and scikit-learn's update formulas."""
import numpy as np
import pytest
import scipy.stats as st
from scipy.special import gammaln

from emdsl.families.normal_wishart import NormalWishart

N_MC = 100_000


@pytest.fixture(scope="module")
def rt():
    """Every runtime function, from ``runtime_source``, in a namespace holding only np."""
    from emdsl.families.runtime import runtime_functions, runtime_source
    ns = {"np": np}
    exec(runtime_source(list(runtime_functions())), ns)  # noqa: S102 - our own source
    return ns


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + np.eye(d))


def assert_mc(samples, value, k=4.0):
    """value lies within k standard errors of the Monte Carlo mean of samples (axis 0)."""
    samples = np.asarray(samples, float)
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(mean - value) <= k * se + 1e-12), (mean, value, se)


def random_nw(rng, G, D):
    """Random Normal-Wishart parameters (mean, beta, scale, df) with G components."""
    mean = rng.normal(size=(G, D))
    beta = rng.uniform(0.5, 3.0, size=G)
    scale = np.stack([random_spd(rng, D, 0.5) for _ in range(G)])
    df = D + rng.uniform(1.0, 6.0, size=G)
    return mean, beta, scale, df


def mvn_logpdf_prec(x, mu, Lam, logdet=None):
    """log N(x | mu, Lam^-1), batched over the leading axes (a direct formula)."""
    D = x.shape[-1]
    r = x - mu
    logdet = np.linalg.slogdet(Lam)[1] if logdet is None else logdet
    return (-0.5 * np.einsum("...i,...ij,...j->...", r, Lam, r)
            + 0.5 * logdet - 0.5 * D * np.log(2 * np.pi))


# ----------------------------------------------------------------------------- Dirichlet
@pytest.mark.parametrize("alpha", [[0.7, 2.0, 3.5], [5.0, 0.3], [1.0, 1.0, 1.0, 2.5]])
def test_dirichlet_expected_log_is_monte_carlo_mean(rt, rng, alpha):
    alpha = np.array(alpha)
    p = st.dirichlet.rvs(alpha, size=N_MC, random_state=rng)
    with np.errstate(divide="ignore"):
        assert_mc(np.log(p), rt["_dirichlet_expected_log"](alpha))


def test_dirichlet_expected_log_of_some_entries_is_those_of_the_whole(rt, rng):
    """cols: only those entries of the last axis, normalised over all of them (a local
    fit's table of the words a minibatch uses), bit for bit."""
    alpha = rng.uniform(0.01, 5.0, size=(3, 40))
    cols = np.array([0, 7, 8, 39])
    whole = rt["_dirichlet_expected_log"](alpha)
    assert np.array_equal(rt["_dirichlet_expected_log"](alpha, cols), whole[:, cols])
    assert rt["_dirichlet_expected_log"](alpha, cols[:0]).shape == (3, 0)


def test_dirichlet_expected_log_is_gradient_of_log_normaliser(rt, rng):
    """d/d alpha [sum lgamma(alpha) - lgamma(sum alpha)] (central differences), batched."""
    alpha = rng.uniform(0.3, 5.0, size=(3, 4))
    got = rt["_dirichlet_expected_log"](alpha)
    assert got.shape == (3, 4)

    def A(a):
        return gammaln(a).sum(-1) - gammaln(a.sum(-1))
    h = 1e-6
    for j in range(4):
        e = np.zeros(4)
        e[j] = h
        np.testing.assert_allclose(got[:, j], (A(alpha + e) - A(alpha - e)) / (2 * h),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("alpha, alpha0", [([0.7, 2.0, 3.5], [1.0, 1.0, 1.0]),
                                           ([4.0, 0.5], [2.0, 3.0]),
                                           ([2.0, 3.0, 1.5], 0.8)])
def test_dirichlet_kl_is_monte_carlo_mean(rt, rng, alpha, alpha0):
    alpha = np.array(alpha)
    a0 = np.broadcast_to(np.asarray(alpha0, float), alpha.shape)
    p = st.dirichlet.rvs(alpha, size=N_MC, random_state=rng)
    p = np.clip(p, 1e-300, None)
    p /= p.sum(1, keepdims=True)
    log_ratio = st.dirichlet.logpdf(p.T, alpha) - st.dirichlet.logpdf(p.T, a0)
    assert_mc(log_ratio, rt["_dirichlet_kl"](alpha, alpha0))


def test_dirichlet_kl_zero_at_equality_and_nonnegative(rt, rng):
    alpha = rng.uniform(0.2, 6.0, size=(50, 3))
    np.testing.assert_allclose(rt["_dirichlet_kl"](alpha, alpha), 0.0, atol=1e-12)
    alpha0 = rng.uniform(0.2, 6.0, size=(50, 3))
    kl = rt["_dirichlet_kl"](alpha, alpha0)
    assert kl.shape == (50,) and np.all(kl > 0)
    # a scalar alpha0 is the symmetric Dirichlet; a (K,) one broadcasts over the batch
    np.testing.assert_allclose(rt["_dirichlet_kl"](alpha, 1.3),
                               rt["_dirichlet_kl"](alpha, np.full((50, 3), 1.3)), rtol=1e-13)
    np.testing.assert_allclose(rt["_dirichlet_kl"](alpha, alpha0[0]),
                               rt["_dirichlet_kl"](alpha, np.tile(alpha0[0], (50, 1))),
                               rtol=1e-13)
    assert np.all(rt["_dirichlet_kl"](alpha, 1.3) >= 0)


# ----------------------------------------------------------------------------- Wishart
@pytest.mark.parametrize("D", [1, 2, 3])
def test_wishart_expected_logdet_is_monte_carlo_mean(rt, rng, D):
    W, df = random_spd(rng, D), D + 0.5 + D * rng.random()
    L = np.reshape(st.wishart(df=df, scale=W).rvs(size=N_MC, random_state=rng), (N_MC, D, D))
    assert_mc(np.linalg.slogdet(L)[1], rt["_wishart_expected_logdet"](W, df))
    # batched over (G,)
    Ws = np.stack([W, 2 * W])
    np.testing.assert_allclose(rt["_wishart_expected_logdet"](Ws, np.array([df, df + 1])),
                               [rt["_wishart_expected_logdet"](W, df),
                                rt["_wishart_expected_logdet"](2 * W, df + 1)], rtol=1e-13)


# ----------------------------------------------------------------------------- Normal-Wishart
def test_normal_wishart_sampler_and_density(rng):
    """The test-side NormalWishart: its density factorises into scipy's, its draws have
    E[Lambda] = nu W, E[mu] = m, Cov[mu] = W^-1 / (beta (nu - D - 1))."""
    nw = NormalWishart()
    m, b, W, nu = np.array([0.5, -1.0]), 2.0, random_spd(rng, 2), 6.0
    mu, Lam = nw.sample(rng, m, b, W, nu, size=5)
    ref = [st.multivariate_normal(m, np.linalg.inv(b * L)).logpdf(x)
           + st.wishart(df=nu, scale=W).logpdf(L) for x, L in zip(mu, Lam)]
    np.testing.assert_allclose(nw.logpdf(mu, Lam, m, b, W, nu), ref, rtol=1e-10)
    mu, Lam = nw.sample(rng, m[None], np.array([b]), W[None], np.array([nu]), size=N_MC)
    assert mu.shape == (N_MC, 1, 2) and Lam.shape == (N_MC, 1, 2, 2)
    assert_mc(Lam[:, 0].reshape(N_MC, 4), (nu * W).ravel())
    assert_mc(mu[:, 0], m)
    cov = np.linalg.inv(W) / (b * (nu - 3))
    np.testing.assert_allclose(np.cov(mu[:, 0].T), cov, rtol=0.05, atol=0.01 * cov.max())


@pytest.mark.parametrize("D, G", [(1, 2), (2, 1), (3, 2)])
def test_nw_expected_natural_is_expected_log_likelihood(rt, rng, D, G):
    """eta . t(x) - A = E_q[log N(x | mu, Lambda^-1)] (Monte Carlo over q)."""
    mean, beta, scale, df = random_nw(rng, G, D)
    eta, A = rt["_nw_expected_natural"](mean, beta, scale, df)
    P = D + D * (D + 1) // 2
    assert eta.shape == (G, P) and A.shape == (G,)
    x = mean[0] + rng.normal(size=(4, D))
    ours = rt["_mvn_stats"](x) @ eta.T - A                      # (4, G)
    mu, Lam = NormalWishart().sample(rng, mean, beta, scale, df, size=N_MC)  # (n, G, ...)
    # the direct formula is scipy's multivariate_normal(mu, inv(Lambda)).logpdf:
    for i in range(3):
        np.testing.assert_allclose(
            mvn_logpdf_prec(x[0], mu[i, 0], Lam[i, 0]),
            st.multivariate_normal(mu[i, 0], np.linalg.inv(Lam[i, 0])).logpdf(x[0]), rtol=1e-9)
    logdet = np.linalg.slogdet(Lam)[1]
    for j in range(len(x)):
        assert_mc(mvn_logpdf_prec(x[j], mu, Lam, logdet), ours[j])


@pytest.mark.parametrize("D", [1, 2, 3])
def test_nw_expected_natural_concentrates_on_mvn_natural(rt, rng, D):
    """beta, nu -> infinity with W = Lambda0 / nu: q -> a point mass at (m, Lambda0)."""
    G = 2
    mean = rng.normal(size=(G, D))
    Lam0 = np.stack([random_spd(rng, D) for _ in range(G)])
    eta0, A0 = rt["_mvn_natural"](mean, prec=Lam0)
    big = 1e8
    eta, A = rt["_nw_expected_natural"](mean, np.full(G, big), Lam0 / big, np.full(G, big))
    np.testing.assert_allclose(eta, eta0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(A, A0, rtol=0, atol=1e-6)


def brute_force_posterior(w, X, m0, b0, W0, nu0):
    """The NW posterior from explicit natural parameters on (Lambda mu, mu^T Lambda mu,
    Lambda, log|Lambda|): prior (b0 m0, -b0/2, -1/2 (W0^-1 + b0 m0 m0^T), (nu0 - D)/2)
    plus w_n (x_n, -1/2, -1/2 x_n x_n^T, 1/2) per point, converted back."""
    D = len(m0)
    e1, e2 = b0 * m0, -0.5 * b0
    e3, e4 = -0.5 * (np.linalg.inv(W0) + b0 * np.outer(m0, m0)), 0.5 * (nu0 - D)
    for wn, x in zip(w, X):
        e1, e2, e3, e4 = e1 + wn * x, e2 - 0.5 * wn, e3 - 0.5 * wn * np.outer(x, x), e4 + 0.5 * wn
    beta = -2 * e2
    mean = e1 / beta
    scale = np.linalg.inv(-2 * e3 - beta * np.outer(mean, mean))
    return mean, beta, scale, 2 * e4 + D


def weighted_sums(R, X):
    return R.sum(0), R.T @ X, np.einsum("nk,ni,nj->kij", R, X, X)


@pytest.mark.parametrize("D, G", [(1, 3), (2, 2), (3, 1)])
def test_nw_posterior_equals_natural_parameter_arithmetic(rt, rng, D, G):
    X = rng.normal(size=(30, D)) * 2 + 1
    R = rng.dirichlet(np.ones(G), size=30)
    m0, b0, W0, nu0 = rng.normal(size=D), 0.7, random_spd(rng, D), D + 1.5
    mean, beta, scale, df = rt["_nw_posterior"](*weighted_sums(R, X), m0, b0, W0, nu0)
    assert mean.shape == (G, D) and beta.shape == (G,) and scale.shape == (G, D, D)
    assert df.shape == (G,)
    np.testing.assert_array_equal(scale, np.swapaxes(scale, -1, -2))
    for k in range(G):
        bm, bb, bW, bnu = brute_force_posterior(R[:, k], X, m0, b0, W0, nu0)
        np.testing.assert_allclose(mean[k], bm, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(beta[k], bb, rtol=1e-12)
        np.testing.assert_allclose(scale[k], bW, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(df[k], bnu, rtol=1e-12)
    # per-component priors (G, ...) give the same as the broadcast ones
    per = rt["_nw_posterior"](*weighted_sums(R, X), np.tile(m0, (G, 1)), np.full(G, b0),
                              np.tile(W0, (G, 1, 1)), np.full(G, nu0))
    for a, b in zip(per, (mean, beta, scale, df)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_nw_posterior_of_a_subset_and_of_an_empty_component(rt, rng):
    D, G = 2, 3
    X = rng.normal(size=(40, D))
    R = rng.dirichlet(np.ones(G), size=40)
    keep = rng.random(40) < 0.5
    R[~keep] = 0.0
    R[:, 2] = 0.0                                   # component 2 has no data at all
    prior = (rng.normal(size=D), 1.3, random_spd(rng, D), 4.0)
    full = rt["_nw_posterior"](*weighted_sums(R, X), *prior)
    sub = rt["_nw_posterior"](*weighted_sums(R[keep], X[keep]), *prior)
    for a, b in zip(full, sub):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    mean, beta, scale, df = full
    assert np.all(np.isfinite(scale)) and np.all(np.isfinite(mean))
    np.testing.assert_allclose(mean[2], prior[0], rtol=1e-14)
    np.testing.assert_allclose(scale[2], prior[2], rtol=1e-12)
    assert beta[2] == prior[1] and df[2] == prior[3]


@pytest.mark.parametrize("D", [1, 2, 3])
def test_nw_posterior_matches_sklearn_update(rt, rng, D):
    """scikit-learn's BayesianGaussianMixture (covariance_type='full') M-step, written out
    (_estimate_means / _estimate_wishart_full, without reg_covar):
    covariances_ = (covariance_prior + N S + N beta0/beta (xbar - m0)(...)^T) / dof with
    S the weighted covariance about xbar; covariances_ = scale^-1 / df."""
    G = 2
    X = rng.normal(size=(25, D))
    R = rng.dirichlet(np.ones(G), size=25)
    mean_prior, beta0, dof0 = X.mean(0), 1.0, float(D)
    covariance_prior = np.atleast_2d(np.cov(X.T))
    nk = R.sum(0)
    xk = R.T @ X / nk[:, None]
    sk = np.stack([(R[:, k, None] * (X - xk[k])).T @ (X - xk[k]) / nk[k] for k in range(G)])
    mean_precision = beta0 + nk
    means = (beta0 * mean_prior + nk[:, None] * xk) / mean_precision[:, None]
    dof = dof0 + nk
    covs = np.stack([covariance_prior + nk[k] * sk[k] + nk[k] * beta0 / mean_precision[k]
                     * np.outer(xk[k] - mean_prior, xk[k] - mean_prior) for k in range(G)])
    covs /= dof[:, None, None]
    mean, beta, scale, df = rt["_nw_posterior"](*weighted_sums(R, X), mean_prior, beta0,
                                               np.linalg.inv(covariance_prior), dof0)
    np.testing.assert_allclose(beta, mean_precision, rtol=1e-13)
    np.testing.assert_allclose(mean, means, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(df, dof, rtol=1e-13)
    np.testing.assert_allclose(np.linalg.inv(scale) / df[:, None, None], covs, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("D, G", [(1, 2), (2, 2), (3, 1)])
def test_nw_kl_is_monte_carlo_mean(rt, rng, D, G):
    q = random_nw(rng, G, D)
    p = (rng.normal(size=D) * 0.5, 1.0, np.eye(D) * 0.7, D + 2.0)   # a broadcast prior
    kl = rt["_nw_kl"](*q, *p)
    assert kl.shape == (G,)
    nw = NormalWishart()
    mu, Lam = nw.sample(rng, *q, size=N_MC)
    log_ratio = nw.logpdf(mu, Lam, *q) - nw.logpdf(mu, Lam, *p)
    assert_mc(log_ratio, kl)


def test_nw_kl_zero_at_equality_and_nonnegative(rt, rng):
    for D in (1, 2, 3):
        q = random_nw(rng, 3, D)
        np.testing.assert_allclose(rt["_nw_kl"](*q, *q), 0.0, atol=1e-12)
        for _ in range(20):
            p = random_nw(rng, 3, D)
            assert np.all(rt["_nw_kl"](*q, *p) > 0)
        # a broadcast prior equals the same prior repeated per component
        p0 = (rng.normal(size=D), 2.0, random_spd(rng, D), D + 3.0)
        rep = (np.tile(p0[0], (3, 1)), np.full(3, p0[1]), np.tile(p0[2], (3, 1, 1)),
               np.full(3, p0[3]))
        np.testing.assert_allclose(rt["_nw_kl"](*q, *p0), rt["_nw_kl"](*q, *rep), rtol=1e-12)


def test_nw_kl_of_the_posterior_matches_its_factors(rt, rng):
    """With beta = beta0, m = m0: the KL is the Wishart KL alone (MC over scipy.stats
    draws; ``_wishart_logpdf`` is scipy's wishart.logpdf, test_vector_families.py)."""
    D = 2
    W, nu, W0, nu0 = random_spd(rng, D, 0.5), 5.0, random_spd(rng, D, 0.8), 4.0
    kl = rt["_nw_kl"](np.zeros((1, D)), np.ones(1), W[None], np.array([nu]),
                      np.zeros(D), 1.0, W0, nu0)
    L = st.wishart(df=nu, scale=W).rvs(size=N_MC, random_state=rng)
    log_ratio = rt["_wishart_logpdf"](L, W, nu) - rt["_wishart_logpdf"](L, W0, nu0)
    assert_mc(log_ratio, kl)


# ----------------------------------------------------------------------------- runtime table
NEW = ["_dirichlet_expected_log", "_dirichlet_kl", "_wishart_expected_logdet",
       "_nw_expected_natural", "_nw_posterior", "_nw_kl"]


def test_runtime_table_holds_and_compiles_the_new_functions(rng):
    from emdsl.families.runtime import runtime_functions, runtime_source
    table = runtime_functions()
    assert set(NEW) <= set(table)
    src = runtime_source(NEW)
    code = compile(src, "<generated>", "exec")
    for dep in ("_spd_chol", "_spd_logdet", "_spd_inv", "_outer", "_triu", "_mvn_scatter"):
        assert f"def {dep}(" in src
    # no name outside numpy, builtins and the source itself
    import builtins
    import symtable
    top = symtable.symtable(src, "<generated>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_namespace()}
    known = defined | set(dir(builtins)) | {"np"}

    def free(t):
        names = {s.get_name() for s in t.get_symbols()
                 if s.is_referenced() and s.is_global() and s.get_name() not in known}
        return names.union(*(free(c) for c in t.get_children()))
    assert free(top) == set()
    ns = {"np": np}
    exec(code, ns)  # noqa: S102 - our own source
    q = random_nw(rng, 2, 2)
    post = ns["_nw_posterior"](np.array([3.0, 0.0]), np.array([[1.0, 1.0], [0.0, 0.0]]),
                               np.stack([2 * np.eye(2), np.zeros((2, 2))]),
                               np.zeros(2), 1.0, np.eye(2), 3.0)
    assert np.all(np.isfinite(ns["_nw_kl"](*post, np.zeros(2), 1.0, np.eye(2), 3.0)))
    eta, A = ns["_nw_expected_natural"](*q)
    assert np.all(np.isfinite(eta)) and np.all(np.isfinite(A))
    assert np.isfinite(ns["_dirichlet_kl"](np.array([1.0, 2.0]), 1.0))
