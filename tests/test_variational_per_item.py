"""Global CAVI with a latent per item and known data of the item in a statement's
arguments: eight schools (Gelman et al., BDA 5.5) - theta[j] one per school, the known
variances s2[j] - and a regression with known noise variances per item. Each is checked
against CAVI written out by hand (Blei et al. 2017, the Normal-Normal and Normal-InvGamma
updates), the objective never decreasing, and the per-item latent against the same model
written with a covariate that gives every item its own group."""
from __future__ import annotations

import numpy as np
import pytest

import emdsl
from emdsl.runtime.batch import ConvergenceWarning

EIGHT = """model EightSchools
dim J
data   y[J]      : real
data   s2[J]     : pos
{group}
latent mu        : real
latent tau2      : pos
latent theta[J]  : real
mu ~ Normal(0, 100)
tau2 ~ InvGamma(2, 2)
for j in 1:J {{
    theta[j] ~ Normal(mu, tau2)
    y[j] ~ Normal(theta[{index}], s2[j])
}}
"""
Y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
S = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])


def _eight_by_hand(y, s2, iters=5000):
    """Mean-field CAVI for eight schools, q(mu) q(tau2) q(theta), from the updates."""
    J = len(y)
    e_mu, v_mu, e_prec = 0.0, 100.0, 1.0   # E[1/tau2] from InvGamma(2, 2): a / b
    m = np.zeros(J)
    for _ in range(iters):
        v = 1.0 / (1.0 / s2 + e_prec)                  # q(theta_j)
        m = v * (y / s2 + e_prec * e_mu)
        v_mu = 1.0 / (1.0 / 100.0 + J * e_prec)        # q(mu)
        e_mu = v_mu * e_prec * m.sum()
        shape = 2.0 + J / 2                             # q(tau2) = InvGamma(shape, scale)
        scale = 2.0 + 0.5 * np.sum(v + m ** 2 - 2 * m * e_mu + v_mu + e_mu ** 2)
        e_prec = shape / scale
    return {"theta.mean": m, "theta.var": v, "mu.mean": e_mu, "mu.var": v_mu,
            "tau2.shape": shape, "tau2.scale": scale}


def test_eight_schools_is_cavi_by_hand():
    m = emdsl.loads(EIGHT.format(group="", index="j"), name="eight.emm", use_cache=False)
    with pytest.warns(ConvergenceWarning):   # (tol=0: every iteration)
        r = m.fit(y=Y, s2=S ** 2, tol=0, max_iter=3000)   # the slow mode of mu and theta
    ref = _eight_by_hand(Y, S ** 2)
    for k, v in ref.items():
        np.testing.assert_allclose(r.params[k], v, rtol=1e-7, err_msg=k)
    assert np.all(np.diff(r.elbo) >= -1e-10 * abs(r.elbo[-1]))
    assert r.algorithm == "CAVI"


def test_a_latent_per_item_is_a_latent_per_group_of_one():
    """theta[j] over the plate and theta[g[j]] with g = 0..J-1 are the same model."""
    each = emdsl.loads(EIGHT.format(group="", index="j"), name="each.emm", use_cache=False)
    groups = emdsl.loads(EIGHT.format(group="data   g[J]      : cat[J]", index="g[j]"),
                         name="groups.emm", use_cache=False)
    a = each.fit(y=Y, s2=S ** 2, max_iter=400)
    b = groups.fit(y=Y, s2=S ** 2, g=np.arange(8), max_iter=400)
    np.testing.assert_allclose(a.elbo, b.elbo, rtol=1e-12)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-10, err_msg=k)


def test_the_items_known_variance_is_a_weight_in_bayesian_regression():
    src = """model WeightedRegression
dim N, P
data   X[N]      : real[P]
data   y[N]      : real
data   s2[N]     : pos
latent w         : real[P]
latent alpha     : pos
alpha ~ Gamma(2, 1)
w ~ MvNormal(zeros(P), prec=alpha * eye(P))
for n in 1:N {
    y[n] ~ Normal(dot(w, X[n]), s2[n])
}
"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    s2 = np.exp(rng.normal(size=150))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=150) * np.sqrt(s2)
    model = emdsl.loads(src, name="wreg.emm", use_cache=False)
    with pytest.warns(ConvergenceWarning):
        r = model.fit(X=X, y=y, s2=s2, tol=0, max_iter=200)
    e_alpha = 2.0
    for _ in range(200):   # q(w) = N(m, C), q(alpha) = Gamma(2 + P/2, 1 + E[w^T w] / 2)
        C = np.linalg.inv(e_alpha * np.eye(3) + (X / s2[:, None]).T @ X)
        mean = C @ (X.T @ (y / s2))
        shape, rate = 2.0 + 1.5, 1.0 + 0.5 * (np.trace(C) + mean @ mean)
        e_alpha = shape / rate
    np.testing.assert_allclose(r.params["w.mean"], mean, rtol=1e-9)
    np.testing.assert_allclose(r.params["w.cov"], C, rtol=1e-9)
    np.testing.assert_allclose([r.params["alpha.shape"], r.params["alpha.rate"]],
                               [shape, rate], rtol=1e-9)
    assert np.all(np.diff(r.elbo) >= -1e-10 * abs(r.elbo[-1]))


def test_a_latent_per_item_over_part_of_the_plate_is_a_located_error():
    src = EIGHT.format(group="", index="j").replace("for j in 1:J {", "for j in 2:J {")
    with pytest.raises(emdsl.EmmError) as info:
        emdsl.loads(src, name="part.emm", use_cache=False)
    assert "part.emm:" in str(info.value)


def test_check_and_derive_on_eight_schools(tmp_path, capsys):
    """check invents the known variances (positive covariates) and says why it compares
    no latent; the derivation names the statistics per item."""
    from emdsl.cli import main
    path = tmp_path / "eight.emm"
    path.write_text(EIGHT.format(group="", index="j"))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s2 (6000,)" in out and "not compared: theta (one value per item" in out
    assert main(["derive", str(path), "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "sum_n 1/s2, per item" in text and "(each item)" not in text


def test_a_latent_per_item_is_fitted_in_memory_only():
    m = emdsl.loads(EIGHT.format(group="", index="j"), name="eight.emm", use_cache=False)
    chunks = [{"y": Y[:4], "s2": S[:4] ** 2}, {"y": Y[4:], "s2": S[4:] ** 2}]
    for call in (lambda: m.fit(chunks), lambda: m.fit(y=Y, s2=S ** 2, method="stepwise")):
        with pytest.raises(emdsl.EmmDataError, match="latent theta of model EightSchools has "
                           "one value per item"):
            call()
