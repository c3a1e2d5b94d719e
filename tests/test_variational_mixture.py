"""Variational Bayes for mixtures (CAVI over global latents around one discrete latent):
the Bayesian GMM against scikit-learn's BayesianGaussianMixture from identical initial
responsibilities, its ELBO against an independent Monte Carlo computation, and the ELBO
never decreasing (bayes_gmm, lda)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

import emdsl

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def bgmm():
    return emdsl.load(MODELS / "bayes_gmm.emm", use_cache=False)


def _bgmm_data(seed=0, n=300, d=2, k=3):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    z = rng.integers(k, size=n)
    x = means[z] + rng.normal(size=(n, d)) @ np.diag(rng.uniform(0.5, 1.5, d))
    return x


def _sklearn_bgm(x, R0, K, iters, alpha0, beta0, m0, nu0, W0):
    from sklearn.mixture import BayesianGaussianMixture

    class FromResp(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, R0)

    g = FromResp(n_components=K, covariance_type="full",
                 weight_concentration_prior_type="dirichlet_distribution",
                 weight_concentration_prior=alpha0, mean_precision_prior=beta0,
                 mean_prior=m0, degrees_of_freedom_prior=nu0,
                 covariance_prior=np.linalg.inv(W0), reg_covar=0.0, max_iter=iters,
                 tol=0.0, n_init=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return g.fit(x)


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("iters", [1, 5, 50])
@pytest.mark.parametrize("data", ["simulated", "faithful"])
def test_bayes_gmm_matches_sklearn(bgmm, iters, data):
    if data == "faithful":
        x = np.loadtxt(SHARED / "faithful.csv", delimiter=",", skiprows=1)
        x = (x - x.mean(0)) / x.std(0)
    else:
        x = _bgmm_data()
    n, d = x.shape
    K = 6
    R0 = np.random.default_rng(1).dirichlet(np.ones(K), size=n)
    hyp = dict(alpha0=0.1, beta0=1.0, nu0=float(d), m0=np.zeros(d), W0=np.eye(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bgmm.fit(x=x, K=K, **hyp, init={"z": R0}, max_iter=iters, tol=0.0, reg=0.0)
    g = _sklearn_bgm(x, R0, K, iters, hyp["alpha0"], hyp["beta0"], hyp["m0"], hyp["nu0"],
                     hyp["W0"])
    q = r.posterior
    assert _rel(q["weights"]["concentration"], g.weight_concentration_) < 1e-6
    assert _rel(q["mu"]["beta"], g.mean_precision_) < 1e-6
    assert _rel(q["mu"]["mean"], g.means_) < 1e-6
    assert _rel(q["Lambda"]["df"], g.degrees_of_freedom_) < 1e-6
    # sklearn's covariances_ are W^-1 / nu; its precisions_ are E[Lambda] = nu W
    assert _rel(q["Lambda"]["E[Lambda]"], g.precisions_) < 1e-6
    assert _rel(q["Lambda"]["scale"], g.precisions_ / g.degrees_of_freedom_[:, None, None]) < 1e-6
    assert _rel(q["z"], g.predict_proba(x)) < 1e-6


def _mc_elbo(x, R, q, hyp, draws=20000, seed=0):
    """E_q[log p(x, z, pi, mu, Lambda)] - E_q[log q] by Monte Carlo over the globals (the
    categorical part exactly), from scipy.stats densities only."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    alpha = q["weights"]["concentration"]
    K = len(alpha)
    pi = stats.dirichlet(alpha).rvs(draws, random_state=rng)
    f = stats.dirichlet(np.full(K, hyp["alpha0"])).logpdf(pi.T) - stats.dirichlet(alpha).logpdf(pi.T)
    f = f + (np.log(pi) * R.sum(0)).sum(1)   # sum_n sum_k r log pi_k
    for k in range(K):
        W, nu = q["Lambda"]["scale"][k], q["Lambda"]["df"][k]
        m, beta = q["mu"]["mean"][k], q["mu"]["beta"][k]
        Lam = stats.wishart(df=nu, scale=W).rvs(draws, random_state=rng).reshape(draws, d, d)
        C = np.linalg.cholesky(np.linalg.inv(Lam))
        mu = m + np.einsum("sij,sj->si", C, rng.normal(size=(draws, d))) / np.sqrt(beta)
        # log p(Lambda) + log p(mu | Lambda) - log q(Lambda) - log q(mu | Lambda)
        lw = lambda X, S, v: stats.wishart(df=v, scale=S).logpdf(np.moveaxis(X, 0, -1))
        f += lw(Lam, hyp["W0"], hyp["nu0"]) - lw(Lam, W, nu)
        diff0, diff = mu - hyp["m0"], mu - m
        quad = lambda v, b: b * np.einsum("si,sij,sj->s", v, Lam, v)
        logdet = np.linalg.slogdet(Lam)[1]
        f += 0.5 * (d * np.log(hyp["beta0"]) - quad(diff0, hyp["beta0"]))
        f -= 0.5 * (d * np.log(beta) - quad(diff, beta))
        # sum_n r_nk log N(x_n | mu, Lambda^-1)
        dev = x[None] - mu[:, None]                                   # (S, N, D)
        qf = np.einsum("sni,sij,snj->sn", dev, Lam, dev)
        f += (R[:, k] * (0.5 * logdet[:, None] - 0.5 * qf - 0.5 * d * np.log(2 * np.pi))).sum(1)
    entropy_z = -np.sum(special.xlogy(R, R))
    return f.mean() + entropy_z, f.std() / np.sqrt(draws)


def test_bayes_gmm_elbo_matches_monte_carlo(bgmm):
    x = _bgmm_data(seed=3, n=40)
    K = 3
    hyp = dict(alpha0=0.5, beta0=0.7, nu0=3.0, m0=np.array([0.5, -0.2]),
               W0=np.array([[1.0, 0.3], [0.3, 2.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bgmm.fit(x=x, K=K, **hyp, max_iter=4, tol=0.0, seed=2)
    mod = bgmm.module
    h = {"N": len(x), "D": 2, "K": K, **hyp}
    st = mod.prepare({"x": x}, h)
    resp, _, loglik = mod.e_step(st, r.params, h)
    ours = loglik + mod.log_prior(r.params, h)
    q = {v: r.posterior[v] for v in ("weights", "mu", "Lambda")}
    mc, se = _mc_elbo(x, resp, q, hyp)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)


@pytest.mark.parametrize("seed", range(20))
def test_bayes_gmm_elbo_never_decreases(bgmm, seed):
    x = _bgmm_data(seed=seed, n=200, d=3, k=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emdsl.runtime.batch.ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", emdsl.runtime.batch.ConvergenceWarning)
        r = bgmm.fit(x=x, K=6, seed=seed, max_iter=60, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


@pytest.fixture(scope="module")
def lda():
    return emdsl.load(MODELS / "lda.emm", use_cache=False)


def _corpus(seed, docs=40, vocab=30, k=3, length=25):
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(vocab, 0.2), size=k)
    doc, w = [], []
    for d in range(docs):
        theta = rng.dirichlet(np.full(k, 0.5))
        z = rng.choice(k, size=length, p=theta)
        doc += [d] * length
        w += [rng.choice(vocab, p=phi[j]) for j in z]
    return np.array(doc), np.array(w), docs, vocab


@pytest.mark.parametrize("local_iter", [100, 0])
@pytest.mark.parametrize("seed", range(20))
def test_lda_elbo_never_decreases(lda, seed, local_iter):
    """Both schedules: the documents' factors restarted and iterated to convergence before
    each update of the topics (the default, local_fit) and plain CAVI (local_iter=0)."""
    doc, w, D, V = _corpus(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emdsl.runtime.batch.ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", emdsl.runtime.batch.ConvergenceWarning)
        r = lda.fit(doc=doc, w=w, T=len(w), D=D, V=V, K=3, seed=seed, max_iter=40, tol=0.0,
                    local_iter=local_iter)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))
    theta = r.posterior["theta"]
    assert theta["concentration"].shape == (D, 3)
    np.testing.assert_allclose(theta["E[theta]"].sum(1), 1.0)


def test_lda_sweep_equals_token_level_updates_written_by_hand(lda):
    """One CAVI sweep of LDA (Blei et al. 2003, Hoffman et al. 2010 eq. 2-3) computed per
    token by hand; emdsl computes it once per distinct (document, word) pair."""
    doc, w, D, V = _corpus(4, docs=15, vocab=10, length=30)
    mod = lda.module
    h = {"T": len(w), "D": D, "V": V, "K": 3, "alpha": 0.1, "eta": 0.01}
    st = mod.prepare({"doc": doc, "w": w}, h)
    assert st["n_rows"] == len(np.unique(np.stack([doc, w], 1), axis=0)) < len(w)
    rng = np.random.default_rng(0)
    R0 = rng.dirichlet(np.ones(3), size=len(w))
    q = mod.m_step(mod.expected_stats(st, mod.row_resp(st, R0)), None, h, 0.0)
    # the first update from token-level responsibilities
    theta0 = 0.1 + np.array([R0[doc == d].sum(0) for d in range(D)])
    phi0 = 0.01 + np.array([[R0[w == v, k].sum() for v in range(V)] for k in range(3)])
    np.testing.assert_allclose(q["theta.concentration"], theta0, rtol=1e-12)
    np.testing.assert_allclose(q["phi.concentration"], phi0, rtol=1e-12)
    resp, ess, _ = mod.e_step(st, q, h)
    new = mod.m_step(ess, q, h, 0.0)
    L = (special.digamma(theta0) - special.digamma(theta0.sum(1, keepdims=True)))[doc] \
        + (special.digamma(phi0) - special.digamma(phi0.sum(1, keepdims=True))).T[w]
    R = np.exp(L - L.max(1, keepdims=True))
    R /= R.sum(1, keepdims=True)
    np.testing.assert_allclose(mod.item_resp(st, resp), R, rtol=1e-10)
    np.testing.assert_allclose(new["theta.concentration"],
                               0.1 + np.array([R[doc == d].sum(0) for d in range(D)]), rtol=1e-10)
    np.testing.assert_allclose(new["phi.concentration"], 0.01 + np.array(
        [[R[w == v, k].sum() for v in range(V)] for k in range(3)]), rtol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_lda_with_local_iterations_never_decreases(lda, seed):
    """Iterating the documents' factors before each update of the topics is a sequence of
    coordinate ascent steps too."""
    doc, w, D, V = _corpus(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emdsl.runtime.batch.ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", emdsl.runtime.batch.ConvergenceWarning)
        r = lda.fit(doc=doc, w=w, T=len(w), D=D, V=V, K=3, seed=seed, max_iter=15, tol=0.0,
                    local_iter=5)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))
    assert r.posterior["c"].shape == (len(w), 3)


def test_lda_learned_concentration_is_the_stationary_point_of_its_elbo_terms():
    """Variational EM: `param alpha : pos` in LDA maximises sum_d E_q[log Dir(theta_d |
    alpha)]; at the optimum D K (digamma(K alpha) - digamma(alpha)) + sum_dk E[log theta_dk]
    = 0 (Minka 2000; Blei et al. 2003, appendix A.4.2), solved here by a root finder."""
    from scipy.optimize import brentq
    src = (MODELS / "lda.emm").read_text().replace("hyper  alpha       : pos = 0.1",
                                                   "param  alpha       : pos")
    m = emdsl.loads(src, name="lda_alpha.emm", use_cache=False)
    assert m.module.ALGORITHM == "variational EM" and "alpha" in m.module.PARAMS
    mod = m.module
    doc, w, D, V = _corpus(6, docs=25)
    h = {"T": len(w), "D": D, "V": V, "K": 3, "eta": 0.01}
    st = mod.prepare({"doc": doc, "w": w}, h)
    q = mod.init(st, {"doc": doc, "w": w}, h, np.random.default_rng(0), 0.0)
    q = {**q, "alpha": np.asarray(0.3)}
    new = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    a = new["theta.concentration"]
    S = np.sum(special.digamma(a) - special.digamma(a.sum(1, keepdims=True)))
    g = lambda al: D * 3 * (special.digamma(3 * al) - special.digamma(al)) + S  # noqa: E731
    assert new["alpha"] == pytest.approx(brentq(g, 1e-6, 1e3, xtol=1e-14), rel=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emdsl.runtime.batch.ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", emdsl.runtime.batch.ConvergenceWarning)
        r = m.fit(doc=doc, w=w, D=D, V=V, K=3, seed=0, max_iter=40, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def _dirichlet_kl(a, a0):
    return (special.gammaln(a.sum(-1)) - special.gammaln(a).sum(-1)
            - special.gammaln(np.broadcast_to(a0, a.shape).sum(-1))
            + special.gammaln(np.broadcast_to(a0, a.shape)).sum(-1)
            + ((a - a0) * (special.digamma(a) - special.digamma(a.sum(-1, keepdims=True)))).sum(-1))


def test_lda_updates_are_stationary_points_of_the_elbo():
    """With q(c) fixed, the ELBO in q(theta), q(phi)'s concentrations is
    sum C_theta E[log theta] + sum C_phi E[log phi] - KL(q(theta)) - KL(q(phi)) (+ const);
    each CAVI update is where its gradient vanishes: central differences along random
    directions (written here from scipy.special, independently of the module)."""
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    mod = m.module
    doc, w, D, V = _corpus(8, docs=12, vocab=9, length=15)
    h = {"T": len(w), "D": D, "V": V, "K": 3, "alpha": 0.1, "eta": 0.01}
    st = mod.prepare({"doc": doc, "w": w}, h)
    R = np.random.default_rng(1).dirichlet(np.ones(3), size=st["n_rows"])
    ess = mod.expected_stats(st, R)
    new = mod.m_step(ess, None, h, 0.0)
    C_theta, C_phi = np.asarray(ess["C_c"]), np.asarray(ess["C_w"])

    def elbo(theta, phi):
        e_t = special.digamma(theta) - special.digamma(theta.sum(1, keepdims=True))
        e_p = special.digamma(phi) - special.digamma(phi.sum(1, keepdims=True))
        return (np.sum(C_theta * e_t) + np.sum(C_phi * e_p)
                - _dirichlet_kl(theta, 0.1).sum() - _dirichlet_kl(phi, 0.01).sum())

    theta, phi = new["theta.concentration"], new["phi.concentration"]
    assert theta.shape == C_theta.shape and phi.shape == C_phi.shape
    rng = np.random.default_rng(2)
    for which in ("theta", "phi"):
        for _ in range(3):
            base = theta if which == "theta" else phi
            d = rng.normal(size=base.shape) * base      # relative steps stay positive
            step = 1e-6

            def at(s):
                moved = base + s * d
                return elbo(moved, phi) if which == "theta" else elbo(theta, moved)
            slope = (at(step) - at(-step)) / (2 * step)
            scale = np.abs(d).sum() * (np.abs(C_theta).max() + np.abs(C_phi).max())
            assert abs(slope) < 1e-6 * scale, (which, slope, scale)
    # and a non-stationary point is detected: the same check fails away from the update
    d = np.ones_like(theta)
    assert abs((elbo(theta * 1.5 + 1e-6 * d, phi) - elbo(theta * 1.5 - 1e-6 * d, phi)) / 2e-6) \
        > 1e-3


@pytest.fixture(scope="module")
def lda_alpha():
    src = (MODELS / "lda.emm").read_text().replace("hyper  alpha       : pos = 0.1",
                                                   "param  alpha       : pos")
    return emdsl.loads(src, name="lda_alpha.emm", use_cache=False)


@pytest.mark.parametrize("seed", range(20))
def test_lda_with_learned_alpha_elbo_never_decreases(lda_alpha, seed):
    doc, w, D, V = _corpus(100 + seed, docs=20, length=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emdsl.runtime.batch.ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", emdsl.runtime.batch.ConvergenceWarning)
        r = lda_alpha.fit(doc=doc, w=w, D=D, V=V, K=3, seed=seed, max_iter=20, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))
    assert r.params["alpha"] > 0


def test_a_learned_vector_concentration_is_stationary():
    """`param eta : pos[V]` (an asymmetric topic-word prior): after the update, the
    derivative of sum_k E_q[log Dir(phi_k | eta)] in each eta_v vanishes."""
    src = (MODELS / "lda.emm").read_text().replace("hyper  eta         : pos = 0.01",
                                                   "param  eta         : pos[V]")
    m = emdsl.loads(src, name="lda_eta.emm", use_cache=False)
    mod = m.module
    doc, w, D, V = _corpus(9, docs=30, vocab=12)
    h = {"T": len(w), "D": D, "V": V, "K": 3, "alpha": 0.1}
    st = mod.prepare({"doc": doc, "w": w}, h)
    q = {**mod.init(st, {"doc": doc, "w": w}, h, np.random.default_rng(0), 0.0),
         "eta": np.full(V, 0.5)}
    new = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    lam, eta = new["phi.concentration"], new["eta"]
    elog = special.digamma(lam) - special.digamma(lam.sum(1, keepdims=True))
    grad = (special.digamma(eta.sum()) - special.digamma(eta) + elog).sum(0)
    assert np.max(np.abs(grad * eta)) < 1e-4 * np.max(np.abs(elog.sum(0) * eta))


def test_lda_elbo_matches_monte_carlo(lda):
    """The module's ELBO for LDA, E_q[log p(w, c, theta, phi)] - E_q[log q], against Monte
    Carlo over q(theta) q(phi) with scipy.stats densities (q(c) summed exactly), after a
    few iterations of the default schedule (local factors restarted, per-document kept)."""
    doc, w, D, V = _corpus(9, docs=8, vocab=12, length=20)
    h = {"T": len(w), "D": D, "V": V, "K": 3, "alpha": 0.3, "eta": 0.2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emdsl.runtime.batch.ConvergenceWarning)
        r = lda.fit(doc=doc, w=w, **h, seed=1, max_iter=3, tol=0.0)
    mod = lda.module
    st = mod.prepare({"doc": doc, "w": w}, h)
    resp, _, loglik = mod.e_step(st, r.params, h)
    ours = loglik + mod.log_prior(r.params, h)
    R = mod.item_resp(st, resp)                                  # (T, K) per token
    a_t, a_p = r.posterior["theta"]["concentration"], r.posterior["phi"]["concentration"]
    rng = np.random.default_rng(0)
    draws = 20000
    f = np.zeros(draws)
    theta = np.stack([stats.dirichlet(a).rvs(draws, random_state=rng) for a in a_t], 1)
    phi = np.stack([stats.dirichlet(a).rvs(draws, random_state=rng) for a in a_p], 1)
    for d in range(D):
        f += stats.dirichlet(np.full(3, 0.3)).logpdf(theta[:, d].T) \
            - stats.dirichlet(a_t[d]).logpdf(theta[:, d].T)
    for k in range(3):
        f += stats.dirichlet(np.full(V, 0.2)).logpdf(phi[:, k].T) \
            - stats.dirichlet(a_p[k]).logpdf(phi[:, k].T)
    # sum_t sum_k r_tk (log theta[doc_t, k] + log phi[k, w_t])
    f += np.einsum("tk,stk->s", R, np.log(theta[:, doc, :]))
    f += np.einsum("tk,skt->s", R, np.log(phi[:, :, w]))
    mc = f.mean() - np.sum(special.xlogy(R, R))
    se = f.std() / np.sqrt(draws)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)
