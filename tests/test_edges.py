"""Honest answers at the edges: unbounded priors, collapsing variances, families that
ignore a variable, params no data can identify, empty components at the start, and the
located errors for shapes this version does not derive."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl.runtime.batch import DegenerateVarianceWarning

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

pytestmark = [pytest.mark.filterwarnings("ignore::emdsl.runtime.batch.EmptyComponentWarning"),
              pytest.mark.filterwarnings("ignore::emdsl.runtime.batch.ConvergenceWarning")]

MIXTURE = """model M
dim N
dim K = 2
data   y[N]     : pos
hyper  a        : pos = 2.0
hyper  b        : pos = 1.0
param  w        : simplex[K]
param  rate[K]  : pos
latent z[N]     : cat[K]
for k in 1:K {{ rate[k] ~ {prior} }}
for n in 1:N {{
    z[n] ~ Categorical(w)
    y[n] ~ Exponential(rate[z[n]])
}}
"""


@pytest.mark.parametrize("prior, hyper, edge", [
    ("Gamma(a, b)", {"a": 0.5}, "unbounded at 0 ((a - 1) < 0)"),
    ("Gamma(a, b)", {"a": 0.99}, "unbounded at 0"),
])
def test_a_prior_unbounded_at_an_edge_is_an_error_naming_its_line(prior, hyper, edge):
    m = emdsl.loads(MIXTURE.format(prior=prior), name="edge.emm")
    y = np.random.default_rng(0).exponential(1.0, 100)
    with pytest.raises(emdsl.EmmDataError) as info:
        m.fit(y=y, **hyper)
    text = str(info.value)
    assert "Gamma prior on rate (line 10)" in text and "may not exist" in text
    assert "unbounded at 0" in text
    m.fit(y=y, a=1.0, seed=0)  # shape 1: bounded, fine
    m.fit(y=y, seed=0)         # the default 2


def test_a_beta_prior_is_checked_at_both_edges():
    src = """model B
dim N
dim K = 2
data   x[N]     : bin
hyper  a        : pos = 2.0
hyper  b        : pos = 2.0
param  w        : simplex[K]
param  p[K]     : unit
latent z[N]     : cat[K]
for k in 1:K { p[k] ~ Beta(a, b) }
for n in 1:N {
    z[n] ~ Categorical(w)
    x[n] ~ Bernoulli(p[z[n]])
}
"""
    m = emdsl.loads(src, name="beta.emm")
    x = (np.random.default_rng(0).uniform(size=100) < 0.3).astype(int)
    with pytest.raises(emdsl.EmmDataError, match="unbounded at 1"):
        m.fit(x=x, b=0.5)
    with pytest.raises(emdsl.EmmDataError, match="unbounded at 0"):
        m.fit(x=x, a=0.5)
    assert np.all(np.isfinite(m.fit(x=x, seed=0).params["p"]))


def test_a_collapsing_variance_is_floored_by_reg_with_a_warning():
    src = """model V
dim N
dim K = 2
data   x[N]     : real
param  w        : simplex[K]
param  mu[K]    : real
param  s2[K]    : pos
latent z[N]     : cat[K]
for n in 1:N {
    z[n] ~ Categorical(w)
    x[n] ~ Normal(mu[z[n]], s2[z[n]])
}
"""
    m = emdsl.loads(src, name="collapse.emm")
    x = np.concatenate([np.random.default_rng(0).normal(size=100), [7.0, 7.0, 7.0]])
    init = {"w": np.array([0.97, 0.03]), "mu": np.array([0.0, 7.0]),
            "s2": np.array([1.0, 0.1])}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = m.fit(x=x, init=init, reg=1e-4, max_iter=50)
    assert any(issubclass(w.category, DegenerateVarianceWarning) and "'s2'" in str(w.message)
               for w in caught)
    assert r.params["s2"][1] == pytest.approx(1e-4) and np.all(np.isfinite(r.elbo))


_MATRIX_SPREAD = """model C
dim N
dim D
dim K = 2
data   x[N]     : real[D]
param  w        : simplex[K]
param  mu[K]    : real[D]
param  S{axis}    : spd[D]
latent z[N]     : cat[K]
for n in 1:N {{
    z[n] ~ Categorical(w)
    x[n] ~ MvNormal(mu[z[n]], {kw}S{index})
}}
"""


@pytest.mark.parametrize("kw", ["", "prec="])
def test_a_collapsing_covariance_is_floored_by_reg_with_a_warning(kw):
    """A component on two points in three dimensions: its covariance is singular before
    reg, held at reg along the flat's normal, and named - as a scalar variance is."""
    m = emdsl.loads(_MATRIX_SPREAD.format(axis="[K]", kw=kw, index="[z[n]]"),
                    name="collapse.emm")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(200, 3)), [[9.0, 9.0, 9.0], [9.0, 9.5, 9.0]]])
    S0 = np.stack([np.eye(3), 0.1 * np.eye(3)])
    init = {"w": np.array([0.99, 0.01]), "mu": np.array([[0.0] * 3, [9.0, 9.25, 9.0]]),
            "S": np.linalg.inv(S0) if kw else S0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = m.fit(x=x, init=init, reg=1e-4, max_iter=30)
    named = [str(w.message) for w in caught
             if issubclass(w.category, DegenerateVarianceWarning)]
    assert len(named) == 1 and "'S'" in named[0] and "in 1 cell(s)" in named[0]
    cov = np.linalg.inv(r.params["S"]) if kw else r.params["S"]
    assert np.linalg.eigvalsh(cov[1]).min() == pytest.approx(1e-4, rel=1e-6)
    assert np.linalg.eigvalsh(cov[0]).min() > 0.1 and np.all(np.isfinite(r.elbo))


@pytest.mark.parametrize("axis, index", [("[K]", "[z[n]]"), ("", "")])
def test_a_healthy_covariance_gives_no_degenerate_warning(axis, index):
    m = emdsl.loads(_MATRIX_SPREAD.format(axis=axis, kw="", index=index), name="ok.emm")
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=(150, 3)), rng.normal(size=(150, 3)) + 6.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateVarianceWarning)
        m.fit(x=x, seed=0, max_iter=50)
    flat = np.column_stack([x[:, :2], x[:, 0] + x[:, 1]])   # a plane: singular for every k
    with pytest.warns(DegenerateVarianceWarning, match="'S' collapsed"):
        m.fit(x=flat, seed=0, max_iter=20, reg=1e-5)


@pytest.mark.parametrize("logpdf, what", [
    ("-log(s)", "does not depend on its variable 'x'"),
    ("-x / s - log(s) + 0 * t", "ignores its parameter 't'"),
])
def test_a_family_that_ignores_its_variable_or_a_parameter_is_rejected(logpdf, what):
    params = "s : pos, t : pos" if "t" in logpdf else "s : pos"
    src = f"""model F
family Odd({params}) on pos {{
    logpdf(x) = {logpdf}
}}
dim N
dim K = 2
data y[N] : pos
param w : simplex[K]
param s[K] : pos
latent z[N] : cat[K]
for n in 1:N {{
    z[n] ~ Categorical(w)
    y[n] ~ Odd({", ".join(["s[z[n]]"] + (["1"] if "t" in logpdf else []))})
}}
"""
    with pytest.raises(emdsl.EmmError) as info:
        emdsl.loads(src, name="odd.emm")
    assert what in str(info.value) and "odd.emm:3:" in str(info.value)


def test_params_the_data_cannot_identify_are_named():
    src = """model AB
dim N
dim K = 2
data y[N] : count
param w : simplex[K]
param a[K] : pos
param b[K] : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  y[n] ~ Poisson(a[z[n]] + b[z[n]])
}
"""
    with pytest.raises(emdsl.NonConjugateError) as info:
        emdsl.loads(src, name="ab.emm")
    text = str(info.value)
    assert "params a, b cannot be identified" in text and "ab.emm:11:" in text


@pytest.mark.parametrize("name", ["gaussian_mixture", "poisson_mixture", "gamma_mixture",
                                  "bernoulli_mixture"])
def test_a_start_with_an_empty_component_gives_finite_params(name):
    from test_sample import CASES, model
    dims, true, _ = CASES[name]
    m = model(name)
    sim = m.sample(params=true, seed=1, **{**dims, "N": 300})
    data = {v: sim[v] for v in m.module.DATA}
    b = m._bind({**data, "K": 3})
    h = {**b.dims, **b.hypers}
    st = m.module.prepare(b.data, h)
    resp = np.zeros((300, 3))
    resp[:, 0], resp[::2, 0], resp[::2, 1] = 1.0, 0.0, 1.0  # component 2 empty
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        params = m.module.m_step(m.module.expected_stats(st, resp), None, h, 1e-6)
    for k, v in params.items():
        assert np.all(np.isfinite(v)), f"{k}: {v}"


def test_under_map_an_empty_component_takes_its_priors_mode():
    """MAP-EM: a component without items maximises its log prior alone, so its params
    are the prior's mode (Gamma(3, 0.5): (3 - 1) / 0.5 = 4; InvGamma(3, 2): 2 / 4 = 0.5;
    Normal(0, 100): 0) and, with a Dirichlet prior, its weight stays above 0, so it wins
    items back - its previous value left the fit stuck far below (a component started
    at 1e8 never recovered)."""
    src = """model MapEmpty
dim N
dim K = 2
data y[N] : count
data x[N] : real
param w : simplex[K]
param rate[K] : pos
param mu[K] : real
param v[K] : pos
latent z[N] : cat[K]
w ~ Dirichlet(2.0)
for k in 1:K {
  rate[k] ~ Gamma(3.0, 0.5)
  mu[k] ~ Normal(0.0, 100.0)
  v[k] ~ InvGamma(3.0, 2.0)
}
for n in 1:N {
  z[n] ~ Categorical(w)
  y[n] ~ Poisson(rate[z[n]])
  x[n] ~ Normal(mu[z[n]], v[z[n]])
}
"""
    m = emdsl.loads(src, name="map_empty.emm", use_cache=False)
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 400)
    y, x = rng.poisson(np.where(z, 12.0, 3.0)), rng.normal(np.where(z, 2.0, -2.0), 0.7)
    start = {"w": np.array([0.5, 0.5]), "rate": np.array([6.0, 1e8]),
             "mu": np.array([0.0, 1e8]), "v": np.array([1.0, 1.0])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = m.fit(y=y, x=x, init=start, max_iter=1, tol=0, reg=0)
        far = m.fit(y=y, x=x, init=start, max_iter=500)
        good = m.fit(y=y, x=x, seed=0, n_init=3)
    np.testing.assert_allclose([one.params["rate"][1], one.params["mu"][1], one.params["v"][1]],
                               [4.0, 0.0, 0.5], atol=1e-9)
    assert far.objective == pytest.approx(good.objective, rel=1e-8)
    assert sorted(far.params["rate"]) == pytest.approx(sorted(good.params["rate"]), rel=1e-5)


_GMM_HEAD = """model H
dim N, D
dim K = 2
data x[N] : real[D]
param w : simplex[K]
"""


@pytest.mark.parametrize("src, words", [
    (_GMM_HEAD + "param mu[K] : real[D]\nparam s2[K] : pos[D]\nlatent z[N] : cat[K]\n"
     "for k in 1:K { for d in 1:D { s2[k, d] ~ InvGamma(2.0, 1.0) } }\n"
     "for n in 1:N {\n  z[n] ~ Categorical(w)\n  x[n] ~ MvNormal(mu[z[n]], diag(s2[z[n]]))\n}\n",
     "make them plates - `param s2[K, D] : pos`"),
    (_GMM_HEAD + "param mu[K] : real[D]\nparam s2[K] : pos[D]\nlatent z[N] : cat[K]\n"
     "for k in 1:K { s2[k] ~ InvGamma(2.0, 1.0) }\n"
     "for n in 1:N {\n  z[n] ~ Categorical(w)\n  x[n] ~ MvNormal(mu[z[n]], diag(s2[z[n]]))\n}\n",
     "declare `param s2[K, D] : pos` and draw each element"),
    (_GMM_HEAD + "param mu[K] : real[D]\nparam v[K] : pos\nhyper m0 : real[D]\nhyper S0 : spd[D]\n"
     "latent z[N] : cat[K]\nfor k in 1:K { mu[k] ~ MvNormal(m0, S0) }\n"
     "for n in 1:N {\n  z[n] ~ Categorical(w)\n  x[n] ~ MvNormal(mu[z[n]], v[z[n]] * eye(D))\n}\n",
     "splits into one scalar Normal per element"),
    ("model U\ndim T, D, J\ndim K = 3\ndata doc[T] : cat[D]\ndata y[T, J] : count\n"
     "param pi : simplex[K]\nparam rate[K] : pos\nlatent z[D] : cat[K]\n"
     "for d in 1:D { z[d] ~ Categorical(pi) }\n"
     "for t in 1:T { for j in 1:J { y[t, j] ~ Poisson(rate[z[doc[t]]]) } }\n",
     "a Poisson datum in an inner plate selecting latent 'z' per group of items"),
    (_GMM_HEAD + "param mu[K] : real[D]\nparam S : spd[D]\nhyper c : pos\nhyper m0 : real[D]\n"
     "hyper S0 : spd[D]\nlatent z[N] : cat[K]\nfor k in 1:K { mu[k] ~ MvNormal(m0, S0) }\n"
     "for n in 1:N {\n  z[n] ~ Categorical(w)\n  x[n] ~ MvNormal(c * mu[z[n]], S)\n}\n",
     "which the MvNormal's mean scales by a known factor"),
    (_GMM_HEAD + "param mu[K] : real[D]\nparam S : spd[D]\nhyper c : pos[K]\n"
     "latent z[N] : cat[K]\nfor n in 1:N {\n  z[n] ~ Categorical(w)\n"
     "  x[n] ~ MvNormal(mu[z[n]], c[z[n]] * S)\n}\n",
     "a known factor of an MvNormal cov that depends on the latent 'z'"),
])
def test_unsupported_shapes_say_what_to_write_instead(src, words):
    """Each model is a shape this version does not derive (or writes differently): the
    located error's message or hint says what it does derive, never what was written."""
    with pytest.raises(emdsl.EmmError) as info:
        emdsl.loads(src, name="h.emm", use_cache=False)
    assert words in str(info.value) and "h.emm:" in str(info.value)


def test_data_outside_a_familys_support_for_the_params_are_named():
    """A count above a Binomial's (known) trials has probability 0 under every component:
    the fit's error names the items (not 'a component may have collapsed', whose advice
    cannot help)."""
    src = """model B
dim N
dim K = 2
data y[N] : count
hyper n0 : count = 5
param w : simplex[K]
param p[K] : unit
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  y[n] ~ Binomial(n0, p[z[n]])
}
"""
    m = emdsl.loads(src, name="binomial_trials.emm", use_cache=False)
    y = np.random.default_rng(0).binomial(5, 0.4, 50)
    y[[3, 17]] = 7
    with pytest.raises(emdsl.EmmFitError) as info:
        m.fit(y=y, seed=0)
    assert "2 item(s) (3, 17, 0-based) have probability 0" in str(info.value)
    assert info.value.hint is None


def test_a_deleted_latent_statement_is_named_before_the_params_it_leaves_unused():
    src = (MODELS_DIR / "gaussian_mixture.emm").read_text().replace(
        "z[n] ~ Categorical(weights)", "")
    with pytest.raises(emdsl.EmmError, match="latent 'z' is never sampled"):
        emdsl.loads(src, name="no_z.emm", use_cache=False)


def test_only_the_params_the_data_cannot_tell_apart_are_named():
    src = """model MB
dim N, D
dim K = 2
data x[N, D] : real
param w : simplex[K]
param mu[K] : real
param b[D] : real
param s2 : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  for d in 1:D { x[n, d] ~ Normal(mu[z[n]] + b[d], s2) }
}
"""
    with pytest.raises(emdsl.NonConjugateError, match="the params mu, b cannot be identified"):
        emdsl.loads(src, name="mb.emm", use_cache=False)


def test_known_mixture_weights():
    """z[n] ~ Categorical(w0) with a hyper w0: the E-step reads log w0, nothing updates
    it; EM equals the updates written out here (10 iterations, same start)."""
    from scipy import stats
    src = """model KnownWeights
dim N
dim K = 2
data y[N] : count
hyper w0 : simplex[K]
param rate[K] : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w0)
  y[n] ~ Poisson(rate[z[n]])
}
"""
    m = emdsl.loads(src, name="known_weights.emm", use_cache=False)
    assert m.module.PARAMS == ("rate",)
    y = np.random.default_rng(0).poisson(np.repeat([2.0, 10.0], [300, 100]))
    w, rate = np.array([0.75, 0.25]), np.array([1.0, 5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit(y=y, w0=w, init={"rate": rate}, max_iter=10, tol=0, reg=0)
    for _ in range(10):
        L = np.log(w) + stats.poisson.logpmf(y[:, None], rate)
        R = np.exp(L - L.max(1, keepdims=True))
        R /= R.sum(1, keepdims=True)
        rate = (R * y[:, None]).sum(0) / R.sum(0)
    np.testing.assert_allclose(res.params["rate"], rate, rtol=1e-10)
    assert res.n_parameters == 2
