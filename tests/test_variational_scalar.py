"""CAVI for mixtures whose components are scalar families with conjugate priors, derived
by sympy from the log densities: models nobody wrote before this test, each checked
against its updates written out by hand here (one E-step + update of the global factors
from the same q), the ELBO never decreasing, and the ELBO against Monte Carlo."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import special, stats

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning

HEAD = """model M
dim N
dim K = 3
"""


def _load(body):
    return emdsl.loads(HEAD + body, name="m.emm", use_cache=False)


def _softmax_rows(L):
    L = L - L.max(1, keepdims=True)
    R = np.exp(L)
    return R / R.sum(1, keepdims=True)


def _elog_dir(a):
    return special.digamma(a) - special.digamma(a.sum(-1, keepdims=True))


POISSON = """data y[N] : count
hyper alpha0 : pos = 1.5
hyper a0 : pos = 2.0
hyper b0 : pos = 0.5
latent weights : simplex[K]
latent rate[K] : pos
latent z[N] : cat[K]
weights ~ Dirichlet(alpha0)
for k in 1:K { rate[k] ~ Gamma(a0, b0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ Poisson(rate[z[n]])
}
"""


def _poisson_by_hand(y, q, h):
    a, b, al = q["rate.shape"], q["rate.rate"], q["weights.concentration"]
    L = _elog_dir(al) + y[:, None] * (special.digamma(a) - np.log(b)) - a / b \
        - special.gammaln(y + 1)[:, None]
    R = _softmax_rows(L)
    N = R.sum(0)
    return {"weights.concentration": h["alpha0"] + N, "rate.shape": h["a0"] + R.T @ y,
            "rate.rate": h["b0"] + N}


BERNOULLI = """data x[N] : bin
hyper alpha0 : pos = 1.0
hyper a0 : pos = 1.5
hyper b0 : pos = 2.5
latent weights : simplex[K]
latent p[K] : unit
latent z[N] : cat[K]
weights ~ Dirichlet(alpha0)
for k in 1:K { p[k] ~ Beta(a0, b0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Bernoulli(p[z[n]])
}
"""


def _bernoulli_by_hand(x, q, h):
    a, b, al = q["p.a"], q["p.b"], q["weights.concentration"]
    elog_p = special.digamma(a) - special.digamma(a + b)
    elog_1p = special.digamma(b) - special.digamma(a + b)
    R = _softmax_rows(_elog_dir(al) + x[:, None] * elog_p + (1 - x[:, None]) * elog_1p)
    return {"weights.concentration": h["alpha0"] + R.sum(0), "p.a": h["a0"] + R.T @ x,
            "p.b": h["b0"] + R.T @ (1 - x)}


NORMAL_KNOWN = """data x[N] : real
hyper v : pos = 0.5
hyper m0 : real = 1.0
hyper s0 : pos = 20.0
param weights : simplex[K]
latent mu[K] : real
latent z[N] : cat[K]
for k in 1:K { mu[k] ~ Normal(m0, s0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], v)
}
"""


def _normal_known_by_hand(x, q, h):
    m, s2, w = q["mu.mean"], q["mu.var"], q["weights"]
    v = h["v"]
    L = np.log(w) - 0.5 * np.log(2 * np.pi * v) - 0.5 * ((x[:, None] - m) ** 2 + s2) / v
    R = _softmax_rows(L)
    N = R.sum(0)
    prec = 1 / h["s0"] + N / v
    return {"weights": N / N.sum(), "mu.var": 1 / prec,
            "mu.mean": (h["m0"] / h["s0"] + R.T @ x / v) / prec}


NORMAL_GAMMA_MF = """data x[N] : real
hyper alpha0 : pos = 2.0
hyper m0 : real = 0.0
hyper s0 : pos = 100.0
hyper a0 : pos = 2.0
hyper b0 : pos = 1.0
latent weights : simplex[K]
latent mu[K] : real
latent tau[K] : pos
latent z[N] : cat[K]
weights ~ Dirichlet(alpha0)
for k in 1:K {
    mu[k] ~ Normal(m0, s0)
    tau[k] ~ Gamma(a0, b0)
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], prec=tau[z[n]])
}
"""


def _normal_gamma_mf_by_hand(x, q, h):
    m, s2 = q["mu.mean"], q["mu.var"]
    a, b, al = q["tau.shape"], q["tau.rate"], q["weights.concentration"]
    e_tau, e_logtau = a / b, special.digamma(a) - np.log(b)
    L = _elog_dir(al) + 0.5 * e_logtau - 0.5 * np.log(2 * np.pi) \
        - 0.5 * e_tau * ((x[:, None] - m) ** 2 + s2)
    R = _softmax_rows(L)
    N, Sx, Sxx = R.sum(0), R.T @ x, R.T @ x ** 2
    prec = 1 / h["s0"] + e_tau * N               # q(mu) first, with the old q(tau)
    mean = (h["m0"] / h["s0"] + e_tau * Sx) / prec
    var = 1 / prec
    sq = Sxx - 2 * mean * Sx + N * (mean ** 2 + var)  # sum r E[(x - mu)^2], new q(mu)
    return {"weights.concentration": h["alpha0"] + N, "mu.mean": mean, "mu.var": var,
            "tau.shape": h["a0"] + N / 2, "tau.rate": h["b0"] + sq / 2}


EXPONENTIAL_TIED = """data t[N] : pos
hyper alpha0 : pos = 1.0
hyper a0 : pos = 1.0
hyper b0 : pos = 1.0
hyper g0 : pos = 3.0
hyper h0 : pos = 2.0
latent weights : simplex[K]
latent rate[K] : pos
latent scale : pos
latent z[N] : cat[K]
weights ~ Dirichlet(alpha0)
for k in 1:K { rate[k] ~ Gamma(a0, b0) }
scale ~ Gamma(g0, h0)
for n in 1:N {
    z[n] ~ Categorical(weights)
    t[n] ~ Exponential(rate[z[n]] * scale)
}
"""


def _exponential_tied_by_hand(t, q, h):
    a, b = q["rate.shape"], q["rate.rate"]
    g, hh, al = q["scale.shape"], q["scale.rate"], q["weights.concentration"]
    e_r, e_logr = a / b, special.digamma(a) - np.log(b)
    e_s, e_logs = g / hh, special.digamma(g) - np.log(hh)
    R = _softmax_rows(_elog_dir(al) + e_logr + e_logs - e_r * e_s * t[:, None])
    N, St = R.sum(0), R.T @ t
    shape, rate = h["a0"] + N, h["b0"] + e_s * St          # q(rate) first
    e_r = shape / rate
    return {"weights.concentration": h["alpha0"] + N, "rate.shape": shape, "rate.rate": rate,
            "scale.shape": h["g0"] + N.sum(), "scale.rate": h["h0"] + np.sum(e_r * St)}


def _data(kind, rng, n=300):
    z = rng.integers(3, size=n)
    if kind == "poisson":
        return {"y": rng.poisson(np.array([1.0, 5.0, 12.0])[z])}
    if kind == "bernoulli":
        return {"x": (rng.random(n) < np.array([0.1, 0.5, 0.9])[z]).astype(int)}
    if kind == "exponential":
        return {"t": rng.exponential(1 / np.array([0.5, 2.0, 8.0])[z])}
    return {"x": rng.normal(np.array([-4.0, 0.0, 5.0])[z] + 100.0, np.array([0.5, 1.0, 0.7])[z])}


CASES = {
    "poisson_gamma": (POISSON, "poisson", _poisson_by_hand),
    "beta_bernoulli": (BERNOULLI, "bernoulli", _bernoulli_by_hand),
    "normal_known_variance": (NORMAL_KNOWN.replace("m0 : real = 1.0", "m0 : real = 100.0"),
                              "normal", _normal_known_by_hand),
    "normal_gamma_mean_field": (NORMAL_GAMMA_MF.replace("m0 : real = 0.0", "m0 : real = 100.0"),
                                "normal", _normal_gamma_mf_by_hand),
    "exponential_tied_scale": (EXPONENTIAL_TIED, "exponential", _exponential_tied_by_hand),
}


@pytest.fixture(scope="module")
def models():
    return {name: _load(src) for name, (src, _, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_one_cavi_sweep_equals_the_updates_written_by_hand(models, name):
    _, kind, by_hand = CASES[name]
    m = models[name]
    mod = m.module
    rng = np.random.default_rng(7)
    data = _data(kind, rng)
    n = len(next(iter(data.values())))
    h = {**m._bind({**data, "N": n}).hypers, "N": n, "K": 3}
    st = mod.prepare(data, h)
    q = mod.init(st, data, h, rng, 0.0)        # any q: a k-means++ start
    q = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    ours = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    theirs = by_hand(next(iter(data.values())).astype(float), q, h)
    assert set(theirs) <= set(ours)
    for k, v in theirs.items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-9, err_msg=k)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("name", ["poisson_gamma", "normal_gamma_mean_field",
                                  "exponential_tied_scale"])
def test_elbo_never_decreases(models, name, seed):
    _, kind, _ = CASES[name]
    data = _data(kind, np.random.default_rng(seed), n=150)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = models[name].fit(**data, seed=seed, max_iter=40, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def test_poisson_gamma_elbo_matches_monte_carlo(models):
    m = models["poisson_gamma"]
    mod = m.module
    y = _data("poisson", np.random.default_rng(3), n=60)["y"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(y=y, seed=1, max_iter=3, tol=0.0)
    h = {**m._bind({"y": y, "N": len(y)}).hypers, "N": len(y), "K": 3}
    st = mod.prepare({"y": y}, h)
    R, _, loglik = mod.e_step(st, r.params, h)
    ours = loglik + mod.log_prior(r.params, h)
    rng = np.random.default_rng(0)
    S = 200000
    al, a, b = r.params["weights.concentration"], r.params["rate.shape"], r.params["rate.rate"]
    pi = stats.dirichlet(al).rvs(S, random_state=rng)
    lam = rng.gamma(a, 1 / b, size=(S, 3))
    f = stats.dirichlet(np.full(3, h["alpha0"])).logpdf(pi.T) - stats.dirichlet(al).logpdf(pi.T)
    f += (stats.gamma(h["a0"], scale=1 / h["b0"]).logpdf(lam)
          - stats.gamma(a, scale=1 / b).logpdf(lam)).sum(1)
    f += np.log(pi) @ R.sum(0)
    f += (np.log(lam) @ (R.T @ y)) - lam @ R.sum(0) - np.sum(R * special.gammaln(y + 1)[:, None])
    mc = f.mean() - np.sum(special.xlogy(R, R))
    se = f.std() / np.sqrt(S)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)


def test_posterior_by_name(models):
    data = _data("poisson", np.random.default_rng(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = models["poisson_gamma"].fit(**data, seed=0)
    rate = r.posterior["rate"]
    assert set(rate) == {"shape", "rate", "E[rate]", "E[log(rate)]"}
    np.testing.assert_allclose(rate["E[rate]"], rate["shape"] / rate["rate"])
    np.testing.assert_allclose(sorted(rate["E[rate]"]), [1.0, 5.0, 12.0], rtol=0.25)


def test_a_non_conjugate_prior_names_the_statement():
    src = POISSON.replace("rate[k] ~ Gamma(a0, b0)", "rate[k] ~ Beta(a0, b0)").replace(
        "latent rate[K] : pos", "latent rate[K] : unit")
    with pytest.raises(emdsl.errors.NonConjugateError, match="not conjugate to the Beta "
                       "factor of latent 'rate'"):
        _load(src)


UNIGRAMS = """model BayesUnigrams
dim T, D, V
dim K = 2
data doc[T] : cat[D]
data w[T] : cat[V]
hyper alpha0 : pos = 1.0
hyper eta0 : pos = 0.5
latent weights : simplex[K]
latent phi[K] : simplex[V]
latent z[D] : cat[K]
weights ~ Dirichlet(alpha0)
for k in 1:K { phi[k] ~ Dirichlet(eta0) }
for d in 1:D { z[d] ~ Categorical(weights) }
for t in 1:T { w[t] ~ Categorical(phi[z[doc[t]]]) }
"""


def test_bayesian_mixture_of_unigrams_equals_the_updates_written_by_hand():
    """One topic per document (items in long format), Dirichlet topics and weights."""
    m = emdsl.loads(UNIGRAMS, name="u.emm", use_cache=False)
    mod = m.module
    rng = np.random.default_rng(2)
    D, V = 30, 12
    topics = rng.dirichlet(np.full(V, 0.3), size=2)
    zd = rng.integers(2, size=D)
    doc = np.repeat(np.arange(D), 20)
    w = np.array([rng.choice(V, p=topics[zd[d]]) for d in doc])
    h = {"T": len(w), "D": D, "V": V, "K": 2, "alpha0": 1.0, "eta0": 0.5}
    data = {"doc": doc, "w": w}
    st = mod.prepare(data, h)
    q = mod.m_step(mod.expected_stats(st, rng.dirichlet(np.ones(2), size=D)), None, h, 0.0)
    ours = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    X = np.zeros((D, V))
    np.add.at(X, (doc, w), 1.0)                       # document-term counts
    L = _elog_dir(q["weights.concentration"]) + X @ _elog_dir(q["phi.concentration"]).T
    R = _softmax_rows(L)
    np.testing.assert_allclose(ours["weights.concentration"], 1.0 + R.sum(0), rtol=1e-10)
    np.testing.assert_allclose(ours["phi.concentration"], 0.5 + R.T @ X, rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = m.fit(**data, D=D, V=V, seed=0, max_iter=50, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))
    labels = r.posterior["z"].argmax(1)
    assert max(np.mean(labels == zd), np.mean(labels != zd)) == 1.0


def test_a_hierarchical_prior_with_a_plated_latent_argument_is_located():
    """mu[k] ~ Normal(m0[k], s0) with m0[k] latent: a parent per component is not
    supported yet; the error is at the prior's line and not called a structured pair."""
    src = NORMAL_GAMMA_MF.replace("hyper m0 : real = 0.0", "latent m0[K] : real").replace(
        "weights ~ Dirichlet(alpha0)", "weights ~ Dirichlet(alpha0)\nfor k in 1:K { m0[k] ~ Normal(0, 100) }"
    ).replace("mu[k] ~ Normal(m0, s0)", "mu[k] ~ Normal(m0[k], s0)")
    with pytest.raises(emdsl.errors.NonConjugateError,
                       match=r"hierarchical prior: .* has latent 'm0' with a plate") as e:
        _load(src)
    assert e.value.span.line == 4 + src.split("\n").index("    mu[k] ~ Normal(m0[k], s0)")
    assert "structured" not in str(e.value)


def test_the_derivation_shows_the_cavi_steps_and_the_elbo_terms(models):
    text = models["poisson_gamma"].derivation("text")
    assert "(CAVI)" in text and "Update of q(z)" in text
    assert "E_rate_1 = E_q[log(rate)] = -log(q_rate_rate) + digamma(q_rate_shape)" in text
    assert "H_rate_1 = a0 + S_y_0" in text and "q_rate_rate = -H_rate_0" in text
    assert "KL(q(rate) || p(rate))" in text and "KL(q(weights) || p(weights))" in text
    tex = models["normal_gamma_mean_field"].derivation("latex")
    assert r"\mathbb{E}_q" in tex and "KL" in tex


def _elbo_at(mod, st, h, R, q):
    """The ELBO with q(z) = R fixed and the globals at q, from the module's outputs only:
    L(R, q) = L(R*(q), q) - sum_n KL(R_n || R*_n(q)), R*(q) the E-step's optimum."""
    Rstar, _, loglik = mod.e_step(st, q, h)
    gap = np.sum(special.xlogy(R, R) - special.xlogy(R, Rstar))
    return loglik + mod.log_prior(q, h) - gap


def _with_responsibilities(models, name, seed):
    """(module, prepared data, hypers, random responsibilities R (n, 3), rng) of a case."""
    _, kind, _ = CASES[name]
    m = models[name]
    rng = np.random.default_rng(seed)
    data = _data(kind, rng, n=120)
    n = len(next(iter(data.values())))
    h = {**m._bind({**data, "N": n}).hypers, "N": n, "K": 3}
    st = m.module.prepare(data, h)
    return m.module, st, h, rng.dirichlet(np.ones(3), size=n), rng


@pytest.mark.parametrize("name", ["poisson_gamma", "beta_bernoulli", "normal_known_variance"])
def test_each_global_update_is_a_stationary_point_of_the_elbo(models, name):
    """With q(z) held at R, the update of every global factor (each independent of the
    others given R) is where the ELBO's derivative in its variational parameters
    vanishes: central differences, along random relative directions."""
    mod, st, h, R, rng = _with_responsibilities(models, name, seed=11)
    q = mod.m_step(mod.expected_stats(st, R), None, h, 0.0)
    base = _elbo_at(mod, st, h, R, q)
    for key in mod.PARAMS:
        for _ in range(2):
            d = rng.normal(size=np.shape(q[key])) * np.abs(q[key])
            if mod.PARAM_KINDS[key] == "simplex":    # stay on the simplex
                d = d - d.mean()
            step = 1e-5
            up = _elbo_at(mod, st, h, R, {**q, key: q[key] + step * d})
            down = _elbo_at(mod, st, h, R, {**q, key: q[key] - step * d})
            slope = (up - down) / (2 * step)
            assert abs(slope) <= 1e-5 * abs(base), (key, slope, base)
    # the check has teeth: away from the update the slope is far from 0
    key = next(k for k in mod.PARAMS if mod.PARAM_KINDS[k] in ("pos", "real"))
    moved = {**q, key: q[key] * 1.3 + 0.1}
    d = np.abs(q[key]) + 1.0
    slope = (_elbo_at(mod, st, h, R, {**moved, key: moved[key] + 1e-5 * d})
             - _elbo_at(mod, st, h, R, {**moved, key: moved[key] - 1e-5 * d})) / 2e-5
    assert abs(slope) > 1e-3


@pytest.mark.parametrize("name", ["normal_gamma_mean_field", "exponential_tied_scale"])
def test_coupled_updates_are_stationary_where_they_were_made(models, name):
    """Coupled mean-field factors (q(mu) and q(tau) read each other; a scale shared by the
    components): the m_step updates them in turn, each from the newest values of the
    others. Each update is a stationary point of the ELBO (q(z) held at R) in its own
    variational parameters at the values it used: the factors updated before it at their
    new values, those after it at their old ones."""
    mod, st, h, R, rng = _with_responsibilities(models, name, seed=5)
    ess = mod.expected_stats(st, R)
    old = mod.m_step(ess, None, h, 0.0)
    old = mod.m_step(ess, {**old, **{k: v * rng.uniform(0.3, 3.0) for k, v in old.items()
                                     if mod.PARAM_KINDS[k] == "pos"}}, h, 0.0)
    new = mod.m_step(ess, old, h, 0.0)
    order = list(dict.fromkeys(k.split(".")[0] for k in mod.PARAMS))   # the update order
    moved_on = []   # slopes at the final values, where the others have moved on
    for i, var in enumerate(order):
        mine = [k for k in mod.PARAMS if k.split(".")[0] == var]
        later = [k for k in mod.PARAMS if k.split(".")[0] in order[i + 1:]]
        at = {**new, **{k: old[k] for k in later}}
        base = _elbo_at(mod, st, h, R, at)
        for key in mine:
            d = rng.normal(size=np.shape(at[key])) * np.abs(at[key])
            if mod.PARAM_KINDS[key] == "simplex":
                d = d - d.mean()
            step = 1e-5
            slope = (_elbo_at(mod, st, h, R, {**at, key: at[key] + step * d})
                     - _elbo_at(mod, st, h, R, {**at, key: at[key] - step * d})) / (2 * step)
            assert abs(slope) <= 1e-8 * abs(base), (key, slope, base)   # measured <= 3e-10
            if mod.PARAM_KINDS[key] != "simplex":
                moved_on.append(abs(_elbo_at(mod, st, h, R, {**new, key: new[key] + step * d})
                                    - _elbo_at(mod, st, h, R, {**new, key: new[key] - step * d}))
                                / (2 * step) / abs(base))
    # the check has teeth: an update that read a factor updated after it is not stationary
    # at the final values (coordinate ascent, not a joint optimum after one sweep)
    assert max(moved_on) > 1e-6, moved_on   # measured 3.5e-6 and more


HIERARCHICAL = """model HierarchicalMeans
dim N
dim K = 3
data x[N] : real
hyper alpha0 : pos = 1.0
hyper s0 : pos = 25.0
hyper v0 : pos = 100.0
hyper sigma2 : pos = 1.0
latent weights : simplex[K]
latent mu0 : real
latent mu[K] : real
latent z[N] : cat[K]
weights ~ Dirichlet(alpha0)
mu0 ~ Normal(0, v0)
for k in 1:K { mu[k] ~ Normal(mu0, s0) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], sigma2)
}
"""


def _hierarchical_data(seed, n=90):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 1.0, n // 3) for c in (-4.0, 0.5, 5.0)])


def test_a_hierarchical_prior_sweep_equals_the_updates_written_by_hand():
    """mu[k] ~ Normal(mu0, s0) with mu0 ~ Normal(0, v0) latent (mean-field): q(mu) reads
    E[mu0] through its prior, q(mu0) gets sum_k E[mu_k] / s0 and K / s0 from the priors
    of the mu[k] (Winn & Bishop 2005), each from the newest values."""
    m = emdsl.loads(HIERARCHICAL, name="hier.emm", use_cache=False)
    mod = m.module
    assert set(mod.Q_FACTORS) == {"weights", "mu0", "mu"}
    x = _hierarchical_data(0)
    h = {"N": len(x), "K": 3, "alpha0": 1.0, "s0": 25.0, "v0": 100.0, "sigma2": 1.0}
    st = mod.prepare({"x": x}, h)
    q = {"weights.concentration": np.array([20.0, 40.0, 30.0]),
         "mu.mean": np.array([-3.0, 1.0, 4.0]), "mu.var": np.array([0.5, 0.2, 0.3]),
         "mu0.mean": np.array(0.7), "mu0.var": np.array(2.0)}
    ours = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    L = _elog_dir(q["weights.concentration"]) - 0.5 * np.log(2 * np.pi) \
        - 0.5 * ((x[:, None] - q["mu.mean"]) ** 2 + q["mu.var"])
    R = _softmax_rows(L)
    N, Sx = R.sum(0), R.T @ x
    prec = 1 / 25.0 + N                                   # sigma2 = 1
    mean = (0.7 / 25.0 + Sx) / prec                        # E[mu0] = 0.7, the old q(mu0)
    prec0 = 1 / 100.0 + 3 / 25.0
    mean0 = (mean.sum() / 25.0) / prec0                    # from the new q(mu)
    np.testing.assert_allclose(ours["weights.concentration"], 1.0 + N, rtol=1e-10)
    np.testing.assert_allclose(ours["mu.mean"], mean, rtol=1e-10)
    np.testing.assert_allclose(ours["mu.var"], 1 / prec, rtol=1e-10)
    np.testing.assert_allclose(ours["mu0.mean"], mean0, rtol=1e-10)
    np.testing.assert_allclose(ours["mu0.var"], 1 / prec0, rtol=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_a_hierarchical_prior_elbo_never_decreases(seed):
    m = emdsl.loads(HIERARCHICAL, name="hier.emm", use_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = m.fit(x=_hierarchical_data(seed), seed=seed, max_iter=40, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))


def test_a_hierarchical_prior_elbo_matches_monte_carlo():
    """The ELBO with the expected KL of q(mu[k]) from p(mu[k] | mu0) against Monte Carlo
    over q(weights) q(mu) q(mu0) with scipy.stats densities (q(z) summed exactly)."""
    m = emdsl.loads(HIERARCHICAL, name="hier.emm", use_cache=True)
    x = _hierarchical_data(3, n=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=x, seed=1, max_iter=3, tol=0.0)
    mod = m.module
    h = {"N": len(x), "K": 3, "alpha0": 1.0, "s0": 25.0, "v0": 100.0, "sigma2": 1.0}
    st = mod.prepare({"x": x}, h)
    R, _, loglik = mod.e_step(st, r.params, h)
    ours = loglik + mod.log_prior(r.params, h)
    rng = np.random.default_rng(0)
    S = 200000
    a = r.params["weights.concentration"]
    w = stats.dirichlet(a).rvs(S, random_state=rng)
    mu = rng.normal(r.params["mu.mean"], np.sqrt(r.params["mu.var"]), size=(S, 3))
    mu0 = rng.normal(r.params["mu0.mean"], np.sqrt(r.params["mu0.var"]), size=S)
    f = stats.dirichlet(np.full(3, 1.0)).logpdf(w.T) - stats.dirichlet(a).logpdf(w.T)
    f += stats.norm(0, 10.0).logpdf(mu0) - stats.norm(r.params["mu0.mean"],
                                                      np.sqrt(r.params["mu0.var"])).logpdf(mu0)
    f += (stats.norm(mu0[:, None], 5.0).logpdf(mu)
          - stats.norm(r.params["mu.mean"], np.sqrt(r.params["mu.var"])).logpdf(mu)).sum(1)
    f += (np.log(w) * R.sum(0)).sum(1)
    f += np.einsum("nk,snk->s", R, stats.norm.logpdf(x[None, :, None], mu[:, None, :], 1.0))
    mc = f.mean() - np.sum(special.xlogy(R, R))
    se = f.std() / np.sqrt(S)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)


MEANS_BODY = """
data x[N] : real
data b[N] : bin
hyper a0 : pos = 3.0
hyper b0 : pos = 2.0
latent weights : simplex[K]
latent s2[K] : pos
latent p[K] : unit
latent z[N] : cat[K]
weights ~ Dirichlet(1.0)
for k in 1:K {
    s2[k] ~ InvGamma(a0, b0)
    p[k] ~ Beta(2.0, 2.0)
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(0, s2[z[n]])
    b[n] ~ Bernoulli(p[z[n]])
}
"""

GLOBAL_BODY = """
data x[N] : real
latent mu : real
latent s2 : pos
mu ~ Normal(0.0, 10.0)
s2 ~ InvGamma(3.0, 2.0)
for n in 1:N { x[n] ~ Normal(mu, s2) }
"""


def test_posterior_means_of_factors_whose_statistics_are_logs():
    """A Beta's and an InvGamma's statistics are logs (log p, log(1 - p); log s2, 1/s2):
    their posterior means are exp(A(eta + e_log) - A(eta)), a / (a + b) and
    scale / (shape - 1) (infinite for shape <= 1: no mean), in a mixture and with
    global latents only."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, np.repeat([0.5, 1.0, 3.0], 100))
    b = rng.random(300) < np.repeat([0.2, 0.5, 0.9], 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = _load(MEANS_BODY).fit(x=x, b=b, seed=0, max_iter=30)
    post, par = res.posterior, res.params
    np.testing.assert_allclose(post["p"]["E[p]"], par["p.a"] / (par["p.a"] + par["p.b"]),
                               rtol=1e-12)
    np.testing.assert_allclose(post["s2"]["E[s2]"], stats.invgamma.mean(
        par["s2.shape"], scale=par["s2.scale"]), rtol=1e-12)
    mod = _load(MEANS_BODY).module
    q = {"s2.shape": np.array([0.5, 1.0, 2.0]), "s2.scale": np.ones(3),
         "p.a": np.ones(3), "p.b": np.ones(3), "weights.concentration": np.ones(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no division warning where there is no mean
        means = mod.expectations(q, {"K": 3})
    np.testing.assert_array_equal(means["s2"]["E[s2]"], [np.inf, np.inf, 1.0])
    g = emdsl.loads("model G\ndim N\n" + GLOBAL_BODY, name="g.emm", use_cache=False)
    res = g.fit(x=x)
    assert res.posterior["s2"]["E[s2]"] == pytest.approx(stats.invgamma.mean(
        res.params["s2.shape"], scale=res.params["s2.scale"]), rel=1e-12)
