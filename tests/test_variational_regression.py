"""CAVI without a discrete latent: models/bayes_linreg.emm (Bishop PRML §10.3 with a
Gamma noise precision).  One sweep against the updates written out by hand, the ELBO
against Monte Carlo, and the ELBO never decreasing."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning

MODELS = Path(__file__).resolve().parents[1] / "models"
HYP = {"a0": 1e-2, "b0": 1e-4, "c0": 1e-2, "d0": 1e-4}


@pytest.fixture(scope="module")
def linreg():
    return emdsl.load(MODELS / "bayes_linreg.emm", use_cache=False)


def _data(seed, n=80, p=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + rng.normal(scale=0.5, size=n)
    return X, y


def _sweep_by_hand(X, y, q, h):
    """q(w) from E[lam], E[beta]; then q(lam) and q(beta) from the new q(w)."""
    e_lam = q["lam.shape"] / q["lam.rate"]
    e_beta = q["beta.shape"] / q["beta.rate"]
    P = X.shape[1]
    S = np.linalg.inv(e_lam * np.eye(P) + e_beta * X.T @ X)
    m = e_beta * S @ X.T @ y
    Eww = S + np.outer(m, m)
    resid = y @ y - 2 * m @ X.T @ y + np.sum(Eww * (X.T @ X))
    return {"w.mean": m, "w.cov": S,
            "lam.shape": h["a0"] + P / 2, "lam.rate": h["b0"] + np.trace(Eww) / 2,
            "beta.shape": h["c0"] + len(y) / 2, "beta.rate": h["d0"] + resid / 2}


def test_one_sweep_equals_the_updates_written_by_hand(linreg):
    mod = linreg.module
    X, y = _data(0)
    h = {"N": len(y), "P": X.shape[1], **HYP}
    st = mod.prepare({"X": X, "y": y}, h)
    q = {"lam.shape": np.asarray(2.0), "lam.rate": np.asarray(3.0),
         "beta.shape": np.asarray(4.0), "beta.rate": np.asarray(0.5),
         "w.mean": np.zeros(3), "w.cov": np.eye(3)}
    ours = mod.m_step(mod.e_step(st, q, h)[1], q, h, 0.0)
    for k, v in _sweep_by_hand(X, y, q, h).items():
        np.testing.assert_allclose(ours[k], v, rtol=1e-10, err_msg=k)


def test_the_elbo_matches_monte_carlo(linreg):
    mod = linreg.module
    X, y = _data(1, n=30)
    h = {"N": len(y), "P": X.shape[1], **HYP}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = linreg.fit(X=X, y=y, max_iter=3, tol=0.0)
    q = r.params
    st = mod.prepare({"X": X, "y": y}, h)
    ours = mod.e_step(st, q, h)[2] + mod.log_prior(q, h)
    rng = np.random.default_rng(0)
    S = 200000
    lam = rng.gamma(q["lam.shape"], 1 / q["lam.rate"], S)
    beta = rng.gamma(q["beta.shape"], 1 / q["beta.rate"], S)
    w = rng.multivariate_normal(q["w.mean"], q["w.cov"], S)
    P = X.shape[1]
    f = stats.gamma(HYP["a0"], scale=1 / HYP["b0"]).logpdf(lam) \
        - stats.gamma(q["lam.shape"], scale=1 / q["lam.rate"]).logpdf(lam)
    f += stats.gamma(HYP["c0"], scale=1 / HYP["d0"]).logpdf(beta) \
        - stats.gamma(q["beta.shape"], scale=1 / q["beta.rate"]).logpdf(beta)
    f += 0.5 * P * np.log(lam / (2 * np.pi)) - 0.5 * lam * np.sum(w ** 2, 1)
    f -= stats.multivariate_normal(q["w.mean"], q["w.cov"]).logpdf(w)
    resid = ((y[None] - w @ X.T) ** 2).sum(1)
    f += 0.5 * len(y) * np.log(beta / (2 * np.pi)) - 0.5 * beta * resid
    mc, se = f.mean(), f.std() / np.sqrt(S)
    assert abs(ours - mc) < 3 * se + 1e-9 * abs(mc), (ours, mc, se)


@pytest.mark.parametrize("seed", range(20))
def test_elbo_never_decreases(linreg, seed):
    X, y = _data(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = linreg.fit(X=X, y=y, max_iter=30, tol=0.0)
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[1:]))
    assert r.posterior["w"]["mean"].shape == (3,)


def test_statistics_are_additive_and_the_derivation_names_them(linreg):
    mod = linreg.module
    X, y = _data(5, n=90)
    h = {"N": len(y), "P": X.shape[1], **HYP}
    whole = mod.prepare({"X": X, "y": y}, h)["stats"]
    parts = [mod.prepare({"X": X[i], "y": y[i]}, {**h, "N": len(i)})["stats"]
             for i in np.array_split(np.arange(len(y)), 3)]
    merged = mod.merge_stats(mod.merge_stats(parts[0], parts[1]), parts[2])
    for k in whole:
        np.testing.assert_allclose(merged[k], whole[k], rtol=1e-12)
    text = linreg.derivation("text")
    assert "statistic S_y_1 = sum_n y x_n" in text and "q(beta) = Gamma" in text


TWO = """model TwoRegressions
dim N, P, Q
data X[N] : real[P]
data Z[N] : real[Q]
data y[N] : real
data v[N] : real
hyper a0 : pos = 1.0
hyper b0 : pos = 1.0
latent w : real[P]
latent u : real[Q]
latent lam : pos
lam ~ Gamma(a0, b0)
w ~ MvNormal(zeros(P), prec=lam * eye(P))
u ~ MvNormal(zeros(Q), prec=lam * eye(Q))
for n in 1:N {
    y[n] ~ Normal(dot(w, X[n]), 1)
    v[n] ~ Normal(dot(u, Z[n]), 1)
}
"""


def test_a_scale_shared_by_two_priors_hears_both():
    m = emdsl.loads(TWO, name="two.emm", use_cache=False)
    rng = np.random.default_rng(0)
    X, Z = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    y, v = X @ [1.0, 2.0, 0.0] + rng.normal(size=50), Z @ [0.5, -1.0] + rng.normal(size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = m.fit(X=X, Z=Z, y=y, v=v, max_iter=20, tol=0.0)
    assert r.params["lam.shape"] == pytest.approx(1.0 + (3 + 2) / 2)
    Ew2 = sum(np.trace(r.params[f"{k}.cov"]) + r.params[f"{k}.mean"] @ r.params[f"{k}.mean"]
              for k in ("w", "u"))
    # one more sweep's rate from the returned q(w), q(u)
    mod = m.module
    h = {"N": 50, "P": 3, "Q": 2, "a0": 1.0, "b0": 1.0}
    st = mod.prepare({"X": X, "Z": Z, "y": y, "v": v}, h)
    new = mod.m_step(mod.e_step(st, r.params, h)[1], r.params, h, 0.0)
    Ew2 = sum(np.trace(new[f"{k}.cov"]) + new[f"{k}.mean"] @ new[f"{k}.mean"] for k in ("w", "u"))
    assert new["lam.rate"] == pytest.approx(1.0 + Ew2 / 2, rel=1e-10)


@pytest.mark.parametrize("edit, words", [
    (("beta ~ Gamma(c0, d0)", "beta ~ Gamma(lam, d0)"),   # log Gamma(lam): not conjugate
     "not conjugate to the Gamma factor of latent 'lam'"),
    (("latent beta    : pos", "latent beta[N] : pos"),   # a latent per item
     r"a linear predictor beside latents per group or per item in 'y\[n\] ~ Normal"),
])
def test_shapes_this_version_does_not_derive_are_located(edit, words):
    src = (MODELS / "bayes_linreg.emm").read_text().replace(*edit)
    if "beta[N]" in src:
        src = src.replace("beta ~ Gamma(c0, d0)", "for n in 1:N { beta[n] ~ Gamma(c0, d0) }")
        src = src.replace("prec=beta)", "prec=beta[n])")
    with pytest.raises(emdsl.errors.NonConjugateError, match=words) as e:
        emdsl.loads(src, name="edit.emm", use_cache=False)
    assert e.value.span is not None


def test_a_noise_precision_whose_rate_is_a_latent():
    """beta ~ Gamma(c0, lam): a hierarchical prior (Gamma-Gamma conjugate): q(lam) hears
    (c0 log lam - lam E[beta]) from beta's prior; the ELBO never decreases."""
    src = (MODELS / "bayes_linreg.emm").read_text().replace("beta ~ Gamma(c0, d0)",
                                                            "beta ~ Gamma(c0, lam)")
    m = emdsl.loads(src, name="edit.emm", use_cache=False)
    X, y = _data(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = m.fit(X=X, y=y, max_iter=30, tol=0.0)
    P, mod = X.shape[1], m.module
    h = {"N": len(y), "P": P, **HYP}
    q = r.params
    new = mod.m_step(mod.e_step(mod.prepare({"X": X, "y": y}, h), q, h)[1], q, h, 0.0)
    Eww = new["w.cov"] + np.outer(new["w.mean"], new["w.mean"])
    e_beta = q["beta.shape"] / q["beta.rate"]
    assert new["lam.shape"] == pytest.approx(HYP["a0"] + P / 2 + HYP["c0"])
    assert new["lam.rate"] == pytest.approx(HYP["b0"] + np.trace(Eww) / 2 + e_beta, rel=1e-10)


def test_a_non_conjugate_data_statement_is_located_at_itself():
    """A product of two latents in a Normal mean, mu[g[n]] * s with s ~ Gamma: s^2 is not
    among a Gamma's statistics; the error points at the data statement (not at the
    declaration of s) and quotes the statement, not the loop around it."""
    src = """model Product
dim N, G
data g[N] : cat[G]
data y[N] : real
latent s : pos
latent mu[G] : real
s ~ Gamma(2.0, 1.0)
for j in 1:G { mu[j] ~ Normal(0.0, 10.0) }
for n in 1:N { y[n] ~ Normal(mu[g[n]] * s, 1.0) }
"""
    with pytest.raises(emdsl.errors.NonConjugateError,
                       match=r"this statement is not conjugate to the Gamma factor of latent "
                             r"'s': the term s\*\*2") as e:
        emdsl.loads(src, name="product.emm", use_cache=False)
    assert (e.value.span.line, e.value.span.col) == (9, 16)
    hier = src.replace("mu[j] ~ Normal(0.0, 10.0)", "mu[j] ~ Gamma(s, 1.0)").replace(
        "latent mu[G] : real", "latent mu[G] : pos").replace("Normal(mu[g[n]] * s, 1.0)",
                                                             "Poisson(mu[g[n]])").replace(
        "data y[N] : real", "data y[N] : count")
    with pytest.raises(emdsl.errors.NonConjugateError, match="'mu\\[j\\] ~ Gamma\\(s, 1.0\\)' "
                       "is not conjugate"):
        emdsl.loads(hier, name="hier.emm", use_cache=False)
