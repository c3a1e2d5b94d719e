"""The derived E- and M-steps against formulas written out by hand in this file.

* ``gmm_identity_map``: the MAP M-step is Linderman's eq. (32) for the means and the
  Dirichlet mode for the weights.
* ``topics_em``: the closed-form updates of Hennig's notes (normalised expected counts per
  document and per topic) and the E-step responsibilities theta[doc, k] phi[k, w].
* Families declared only by a log density in the test (not the package) and params that
  reach a family through an expression or a ``let`` get their closed-form M-steps.
* Stationarity: the expected complete-data log likelihood (plus log prior for MAP), written
  with ``scipy.stats`` in the test, has a numerical gradient ~ 0 at the M-step output, for
  every compiling model with a closed-form M-step; for ``gamma_mixture`` also the profiled Q
  at the numerical M-step's shape.

All M-steps are driven from given responsibilities R through the generated module:
``ess = expected_stats(prepare(data, h), R)`` and ``m_step(ess, None, h, 0.0)``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as sps

import emdsl
from emdsl.runtime.batch import ConvergenceWarning

MODELS = Path(__file__).resolve().parents[1] / "models"


_LOADED: dict = {}


def model(name):
    if name not in _LOADED:
        _LOADED[name] = emdsl.load(MODELS / f"{name}.emm")
    return _LOADED[name]


def source_model(src, name):
    key = ("src", name)
    if key not in _LOADED:
        _LOADED[key] = emdsl.loads(src, name=name)
    return _LOADED[key]


def m_step_from(mod, data, h, R, params=None, reg=0.0):
    st = mod.prepare(data, h)
    ess = mod.expected_stats(st, mod.row_resp(st, R))  # (rows of a compressed plate)
    return mod.m_step(ess, params, h, reg)


def random_resp(rng, n, K, conc=1.0):
    return rng.dirichlet(np.full(K, conc), size=n)


# ----------------------------------------------------------------------- gmm_identity_map
GMM_MAP_DEFAULTS = dict(alpha=2.0, nu=0.1)   # phi = zeros(D); see models/gmm_identity_map.emm


def linderman_eq32(X, R, phi, nu, alpha):
    Nk = R.sum(axis=0)
    mu = (phi[None, :] + R.T @ X) / (nu + Nk)[:, None]
    N, K = R.shape
    weights = (Nk + alpha - 1) / (N + K * (alpha - 1))
    return mu, weights


@pytest.mark.parametrize("hypers", [None, dict(alpha=3.5, phi=np.array([2.0, -1.0, 0.5]),
                                               nu=2.5)], ids=["defaults", "custom"])
def test_gmm_identity_map_m_step_is_linderman_eq32(hypers):
    rng = np.random.default_rng(0)
    N, D, K = 150, 3, 4
    X = rng.normal(size=(N, D)) * 2 + 5
    R = random_resp(rng, N, K, 0.5)
    if hypers is None:
        hyp = dict(GMM_MAP_DEFAULTS, phi=np.zeros(D))
    else:
        hyp = hypers
    h = {"N": N, "D": D, "K": K, **hyp}
    new = m_step_from(model("gmm_identity_map").module, {"x": X}, h, R)
    mu, weights = linderman_eq32(X, R, hyp["phi"], hyp["nu"], hyp["alpha"])
    np.testing.assert_allclose(new["mu"], mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new["weights"], weights, rtol=1e-10)


def test_gmm_identity_map_fit_uses_the_model_file_defaults():
    """One EM iteration through ``fit``: the M-step from the E-step's responsibilities is
    eq. (32) with the hyper defaults written in the model file (alpha 2, phi 0, nu 0.1)."""
    rng = np.random.default_rng(1)
    N, D, K = 120, 2, 3
    X = rng.normal(size=(N, D)) + rng.integers(0, 3, N)[:, None] * 4.0
    init = {"weights": np.full(K, 1 / K), "mu": X[:K].copy()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # one iteration on purpose
        r = model("gmm_identity_map").fit(x=X, K=K, max_iter=1, init=init)
    mod = model("gmm_identity_map").module
    hyp = {"N": N, "D": D, "K": K, "alpha": 2.0, "phi": np.zeros(D), "nu": 0.1}
    R = mod.e_step(mod.prepare({"x": X}, hyp), init, hyp)[0]  # the E-step at the start
    mu, weights = linderman_eq32(X, R, np.zeros(D), 0.1, 2.0)
    # the returned posterior belongs to the returned params (one E-step later)
    R1 = mod.e_step(mod.prepare({"x": X}, hyp), r.params, hyp)[0]
    np.testing.assert_allclose(r.posterior["z"], R1, rtol=1e-12)
    np.testing.assert_allclose(r.params["mu"], mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.params["weights"], weights, rtol=1e-10)


# ----------------------------------------------------------------------------- topics_em
def small_corpus(rng, D=7, V=15, mean_len=20):
    lengths = 1 + rng.poisson(mean_len, size=D)
    doc = np.repeat(np.arange(D), lengths)
    w = rng.integers(0, V, size=len(doc))
    return doc, w


def test_topics_em_m_step_is_normalised_expected_counts():
    rng = np.random.default_rng(2)
    D, V, K = 7, 15, 3
    doc, w = small_corpus(rng, D, V)
    T = len(doc)
    R = random_resp(rng, T, K)
    h = {"T": T, "D": D, "V": V, "K": K}
    new = m_step_from(model("topics_em").module, {"doc": doc, "w": w}, h, R)
    theta = np.zeros((D, K))
    for d in range(D):
        mask = doc == d
        theta[d] = R[mask].sum(axis=0) / mask.sum()
    phi = np.zeros((K, V))
    for v in range(V):
        phi[:, v] = R[w == v].sum(axis=0)
    phi /= R.sum(axis=0)[:, None]
    np.testing.assert_allclose(new["theta"], theta, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(new["phi"], phi, rtol=1e-12, atol=1e-15)


def test_topics_em_e_step_responsibilities():
    rng = np.random.default_rng(3)
    D, V, K = 7, 15, 3
    doc, w = small_corpus(rng, D, V)
    T = len(doc)
    h = {"T": T, "D": D, "V": V, "K": K}
    params = {"theta": rng.dirichlet(np.ones(K), size=D), "phi": rng.dirichlet(np.ones(V), size=K)}
    mod = model("topics_em").module
    st = mod.prepare({"doc": doc, "w": w}, h)
    resp, ess, loglik = mod.e_step(st, params, h)
    resp = mod.item_resp(st, resp)   # one row per distinct (doc, w) -> every token
    joint = np.array([[params["theta"][doc[t], k] * params["phi"][k, w[t]] for k in range(K)]
                      for t in range(T)])
    np.testing.assert_allclose(resp, joint / joint.sum(axis=1, keepdims=True), rtol=1e-12)
    assert loglik == pytest.approx(np.log(joint.sum(axis=1)).sum(), rel=1e-12)


# ------------------------------------------------------------ families declared in the test
def scalar_mixture_source(name, family_block, family, param):
    return f"""
model {name}
{family_block}
dim N
dim K = 3
data   y[N]        : pos
param  weights     : simplex[K]
param  {param}[K]  : pos
latent z[N]        : cat[K]
for n in 1:N {{
    z[n] ~ Categorical(weights)
    y[n] ~ {family}({param}[z[n]])
}}
"""


RAYLEIGH_SCALE = """family Rayleigh2(s : pos) on pos {
    logpdf(x) = log(x) - 2 * log(s) - x^2 / (2 * s^2)
}"""
MAXWELL = """family Maxwell(a : pos) on pos {
    logpdf(x) = log(2 / pi) / 2 + 2 * log(x) - 3 * log(a) - x^2 / (2 * a^2)
}"""
WEIBULL2 = """family Weibull2(lam : pos) on pos {
    logpdf(x) = log(2) + log(x) - 2 * log(lam) - (x / lam)^2
}"""

# name -> (source, param, closed-form M-step from (y, R), scipy logpdf(y, value))
USER_FAMILIES = {
    "Rayleigh2": (scalar_mixture_source("Rayleigh2Mixture", RAYLEIGH_SCALE, "Rayleigh2", "s"), "s",
                  lambda y, R: np.sqrt(R.T @ y**2 / (2 * R.sum(0))),
                  lambda y, s: sps.rayleigh.logpdf(y, scale=s)),
    "Maxwell": (scalar_mixture_source("MaxwellMixture", MAXWELL, "Maxwell", "a"), "a",
                lambda y, R: np.sqrt(R.T @ y**2 / (3 * R.sum(0))),
                lambda y, a: sps.maxwell.logpdf(y, scale=a)),
    "Weibull2": (scalar_mixture_source("Weibull2Mixture", WEIBULL2, "Weibull2", "lam"), "lam",
                 lambda y, R: np.sqrt(R.T @ y**2 / R.sum(0)),
                 lambda y, lam: sps.weibull_min.logpdf(y, 2.0, scale=lam)),
}


def positive_data(rng, N=240):
    return rng.gamma(2.0, 1.5, size=N) + 0.05


@pytest.mark.parametrize("family", sorted(USER_FAMILIES))
def test_user_family_m_step_closed_form(family):
    src, param, closed, _ = USER_FAMILIES[family]
    m = source_model(src, family)
    rng = np.random.default_rng(4)
    y = positive_data(rng)
    N, K = len(y), 3
    R = random_resp(rng, N, K)
    new = m_step_from(m.module, {"y": y}, {"N": N, "K": K}, R)
    np.testing.assert_allclose(new[param], closed(y, R), rtol=1e-10)
    np.testing.assert_allclose(new["weights"], R.sum(0) / N, rtol=1e-12)


def test_rayleigh_scale_family_squares_to_the_variance_form():
    """s_k^2 = sum_n R y^2 / (2 sum_n R): the same M-step as rayleigh_mixture.emm's s2."""
    rng = np.random.default_rng(5)
    y = positive_data(rng)
    N, K = len(y), 2
    R = random_resp(rng, N, K)
    h = {"N": N, "K": K}
    ray2 = source_model(USER_FAMILIES["Rayleigh2"][0], "Rayleigh2").module
    s = m_step_from(ray2, {"y": y}, {"N": N, "K": K}, R)["s"]
    s2 = m_step_from(model("rayleigh_mixture").module, {"y": y}, h, R)["s2"]
    np.testing.assert_allclose(s**2, R.T @ y**2 / (2 * R.sum(0)), rtol=1e-12)
    np.testing.assert_allclose(s**2, s2, rtol=1e-12)


@pytest.mark.parametrize("family", sorted(USER_FAMILIES))
def test_user_family_e_step_matches_scipy(family):
    src, param, _, logpdf = USER_FAMILIES[family]
    mod = source_model(src, family).module
    rng = np.random.default_rng(6)
    y = positive_data(rng, 100)
    N, K = len(y), 3
    h = {"N": N, "K": K}
    params = {"weights": np.array([0.2, 0.5, 0.3]), param: np.array([0.7, 2.0, 4.5])}
    resp, _, loglik = mod.e_step(mod.prepare({"y": y}, h), params, h)
    L = np.log(params["weights"]) + logpdf(y[:, None], params[param][None, :])
    norm = np.logaddexp.reduce(L, axis=1)
    np.testing.assert_allclose(resp, np.exp(L - norm[:, None]), rtol=1e-10, atol=1e-14)
    assert loglik == pytest.approx(norm.sum(), rel=1e-11)


# ------------------------------------------------------- params reached through expressions
EXP_SCALE = """
model ExponentialScaleMixture
dim N
dim K = 2
data   y[N]       : pos
param  weights    : simplex[K]
param  scale[K]   : pos
latent z[N]       : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Exponential(1 / scale[z[n]])
}
"""
EXP_SCALE_LET = """
model ExponentialScaleLetMixture
dim N
dim K = 2
data   y[N]       : pos
param  weights    : simplex[K]
param  scale[K]   : pos
latent z[N]       : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    let r = 1 / scale[z[n]]
    y[n] ~ Exponential(r)
}
"""


@pytest.mark.parametrize("src", [EXP_SCALE, EXP_SCALE_LET], ids=["expression", "let"])
def test_param_through_expression(src):
    mod = source_model(src, src.split()[1]).module
    rng = np.random.default_rng(7)
    y = rng.exponential(3.0, size=200)
    N, K = len(y), 2
    h = {"N": N, "K": K}
    R = random_resp(rng, N, K)
    new = m_step_from(mod, {"y": y}, h, R)
    np.testing.assert_allclose(new["scale"], R.T @ y / R.sum(0), rtol=1e-12)
    # and the E-step is the Exponential with mean `scale`
    params = {"weights": np.array([0.3, 0.7]), "scale": np.array([0.5, 4.0])}
    resp, _, loglik = mod.e_step(mod.prepare({"y": y}, h), params, h)
    L = np.log(params["weights"]) + sps.expon.logpdf(y[:, None], scale=params["scale"])
    norm = np.logaddexp.reduce(L, axis=1)
    np.testing.assert_allclose(resp, np.exp(L - norm[:, None]), rtol=1e-10, atol=1e-14)
    assert loglik == pytest.approx(norm.sum(), rel=1e-11)


# ------------------------------------------------------------ finite-difference stationarity
def _mix_term(R, weights, comp_logpdf):
    """sum_n sum_k R[n,k] (log weights[k] + log p(x_n | theta_k)); comp_logpdf (N, K)."""
    return float(np.sum(R * (np.log(weights)[None, :] + comp_logpdf)))


def q_poisson(y, R, h, p):
    return _mix_term(R, p["weights"], sps.poisson.logpmf(y[:, None], p["rate"][None, :]))


def q_rayleigh(y, R, h, p):
    return _mix_term(R, p["weights"], sps.rayleigh.logpdf(y[:, None],
                                                          scale=np.sqrt(p["s2"])[None, :]))


def q_bernoulli(x, R, h, p):
    P = p["p"]
    comp = sps.bernoulli.logpmf(x[:, None, :], P[None, :, :]).sum(axis=2)
    prior = sps.beta.logpdf(P, h["a"], h["b"]).sum()
    return _mix_term(R, p["weights"], comp) + float(prior)


def q_gmm_map(x, R, h, p):
    D = x.shape[1]
    comp = np.stack([sps.multivariate_normal.logpdf(x, p["mu"][k], np.eye(D))
                     for k in range(len(p["mu"]))], axis=1)
    prior = sps.dirichlet.logpdf(p["weights"], np.full(len(p["weights"]), h["alpha"]))
    prior += sum(sps.multivariate_normal.logpdf(mu, h["phi"] / h["nu"], np.eye(D) / h["nu"])
                 for mu in p["mu"])
    return _mix_term(R, p["weights"], comp) + float(prior)


def q_gmm(x, R, h, p):
    comp = np.stack([sps.multivariate_normal.logpdf(x, p["mu"][k], p["Sigma"][k])
                     for k in range(len(p["mu"]))], axis=1)
    return _mix_term(R, p["weights"], comp)


def q_gamma(y, R, h, p):
    return _mix_term(R, p["weights"], sps.gamma.logpdf(y[:, None], p["shape"][None, :],
                                                       scale=1 / p["rate"][None, :]))


def q_topics(data, R, h, p):
    doc, w = data
    return float(np.sum(R * (np.log(p["theta"][doc]) + np.log(p["phi"].T[w]))))


def directions(kind, value):
    """(direction, step, perturbation) triples that keep the param in its domain.

    pos/real: unit vectors; unit: unit vectors with steps inside (0, 1); simplex (rows on the
    last axis): e_i - e_last, tangent to the simplex; spd: symmetric E_ij + E_ji.
    """
    out = []
    if kind in ("pos", "real", "unit"):
        for idx in np.ndindex(value.shape):
            d = np.zeros(value.shape)
            d[idx] = 1.0
            v = abs(value[idx])
            room = min(value[idx], 1 - value[idx]) if kind == "unit" else max(v, 1e-3)
            out.append((d, 1e-5 * room, 0.05 * room))
    elif kind == "simplex":
        for row in np.ndindex(value.shape[:-1]):
            K = value.shape[-1]
            for i in range(K - 1):
                d = np.zeros(value.shape)
                d[row + (i,)], d[row + (K - 1,)] = 1.0, -1.0
                room = min(value[row + (i,)], value[row + (K - 1,)])
                out.append((d, 1e-5 * room, 0.05 * room))
    elif kind == "spd":
        for g in np.ndindex(value.shape[:-2]):
            S = value[g]
            for i in range(S.shape[0]):
                for j in range(i, S.shape[0]):
                    d = np.zeros(value.shape)
                    d[g + (i, j)] = d[g + (j, i)] = 1.0
                    room = np.sqrt(S[i, i] * S[j, j])
                    out.append((d, 1e-5 * room, 0.05 * room))
    else:  # pragma: no cover
        raise ValueError(kind)
    return out


def assert_stationary(Q, params, name, kind, rel=1e-5):
    """Every directional derivative of Q at ``params`` is ~ 0 compared with the one at a
    point moved by 5 % of the param's scale along the same direction."""
    base = {k: np.array(v, dtype=float) for k, v in params.items()}

    def deriv(at, d, step):
        plus = dict(at, **{name: at[name] + step * d})
        minus = dict(at, **{name: at[name] - step * d})
        return (Q(plus) - Q(minus)) / (2 * step)

    worst = 0.0
    for d, step, delta in directions(kind, base[name]):
        g0 = deriv(base, d, step)
        moved = dict(base, **{name: base[name] + delta * d})
        g1 = deriv(moved, d, step)
        assert abs(g1) > 0, f"{name}: Q is flat along a direction; the check is vacuous"
        worst = max(worst, abs(g0) / abs(g1))
    assert worst < rel, f"{name}: |dQ| at the M-step output is {worst:.3g} of the scale"
    return worst




def stationarity_cases():
    """model name -> (data dict for prepare, data for Q, h, Q, {param: kind})."""
    rng = np.random.default_rng(8)
    N, K = 250, 3
    z = rng.integers(0, K, N)
    cases = {}
    y = rng.poisson(np.array([2.0, 7.0, 15.0])[z]).astype(float)
    cases["poisson_mixture"] = ({"y": y}, y, {"N": N, "K": K}, q_poisson,
                                {"weights": "simplex", "rate": "pos"})
    y = rng.rayleigh(np.array([1.0, 2.0, 4.0])[z])
    cases["rayleigh_mixture"] = ({"y": y}, y, {"N": N, "K": K}, q_rayleigh,
                                 {"weights": "simplex", "s2": "pos"})
    D = 8
    P = rng.uniform(0.1, 0.9, size=(K, D))
    x = (rng.uniform(size=(N, D)) < P[z]).astype(float)
    cases["bernoulli_mixture"] = ({"x": x}, x, {"N": N, "D": D, "K": K, "a": 1.5, "b": 1.5},
                                  q_bernoulli, {"weights": "simplex", "p": "unit"})
    D = 2
    x = rng.normal(size=(N, D)) + np.array([[0, 0], [4, 0], [0, 4]])[z]
    cases["gmm_identity_map"] = ({"x": x}, x, {"N": N, "D": D, "K": K, "alpha": 2.0,
                                               "phi": np.zeros(D), "nu": 0.1},
                                 q_gmm_map, {"weights": "simplex", "mu": "real"})
    x = rng.normal(size=(N, D)) @ np.array([[1.0, 0.3], [0.0, 0.8]]) + \
        np.array([[0, 0], [4, 0], [0, 4]])[z]
    cases["gaussian_mixture"] = ({"x": x}, x, {"N": N, "D": D, "K": K}, q_gmm,
                                 {"weights": "simplex", "mu": "real", "Sigma": "spd"})
    y = rng.gamma(np.array([2.0, 5.0, 20.0])[z], 1 / np.array([1.0, 1.0, 2.0])[z])
    cases["gamma_mixture"] = ({"y": y}, y, {"N": N, "K": K}, q_gamma,
                              {"weights": "simplex", "rate": "pos"})
    Dd, V = 6, 12
    doc, w = small_corpus(rng, Dd, V, 25)
    cases["topics_em"] = ({"doc": doc, "w": w}, (doc, w),
                          {"T": len(doc), "D": Dd, "V": V, "K": K}, q_topics,
                          {"theta": "simplex", "phi": "simplex"})
    return cases


CASES = stationarity_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_m_step_is_a_stationary_point_of_q(name):
    data, qdata, h, Q, kinds = CASES[name]
    mod = model(name).module
    n_rows = int(h.get("N", h.get("T")))
    R = random_resp(np.random.default_rng(9), n_rows, int(h["K"]))
    new = m_step_from(mod, data, h, R, reg=0.0)
    Qp = lambda p: Q(qdata, R, h, p)  # noqa: E731
    for pname, kind in kinds.items():
        assert_stationary(Qp, new, pname, kind)


def test_gamma_numerical_shape_is_stationary_for_the_profiled_q():
    """Generalized EM: the shape from the Newton M-step is a stationary point of
    Q(shape, rate*(shape)), rate*(shape) = shape sum_n R / sum_n R y (the rate's closed
    form), and the rate is that closed form at the returned shape."""
    data, y, h, Q, _ = CASES["gamma_mixture"]
    R = random_resp(np.random.default_rng(10), len(y), int(h["K"]))
    mod = model("gamma_mixture").module
    new = m_step_from(mod, data, h, R, reg=0.0)
    Nk, Sy = R.sum(0), R.T @ y
    np.testing.assert_allclose(new["rate"], new["shape"] * Nk / Sy, rtol=1e-10)

    def profiled(p):
        return Q(y, R, h, dict(p, rate=p["shape"] * Nk / Sy))

    assert_stationary(profiled, new, "shape", "pos")
    # and the joint gradient in (shape, rate) vanishes as well
    Qp = lambda p: Q(y, R, h, p)  # noqa: E731
    assert_stationary(Qp, new, "shape", "pos")
    assert_stationary(Qp, new, "rate", "pos")
    # the same from a poor start (the previous params seed Newton's method)
    old = {"weights": np.full(3, 1 / 3), "shape": np.array([50.0, 0.2, 3.0]),
           "rate": np.ones(3)}
    again = m_step_from(mod, data, h, R, params=old, reg=0.0)
    np.testing.assert_allclose(again["shape"], new["shape"], rtol=1e-7)
