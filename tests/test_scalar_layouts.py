"""Scalar emissions over inner loops, in the layouts the block buffer must serve: two
inner axes (rows of 12 numbers, and of 40, which are read in tiles), a variance shared over
components and one axis, an axis no param depends on
(summed), a known shape per element, an emission with no component index beside one that
has it. Models written for this test; each E-step (in 512-row blocks and in one block)
is checked against the log density written out with scipy.stats, and a fit's objective
never decreases."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning

N, D, J, K = 1300, 3, 4, 3
SHAPE = np.array([0.5, 2.0, 3.5])   # the known Gamma shapes, one per d


def _model(body, decls):
    dims = "N, D, J" if "J]" in decls else "N, D"
    return f"""
model Layout
dim {dims}
dim K = 3
{decls}
param w : simplex[K]
latent z[N] : cat[K]
for n in 1:N {{
  z[n] ~ Categorical(w)
{body}
}}"""


CASES = {
    "two_inner_axes_variance_per_j": (
        _model("  for d in 1:D { for j in 1:J { x[n, d, j] ~ Normal(mu[z[n], d, j], s2[j]) } }",
               "data x[N, D, J] : real\nparam mu[K, D, J] : real\nparam s2[J] : pos"),
        lambda rng: {"x": rng.normal(5, 2, (N, D, J))},
        lambda rng: {"mu": rng.normal(5, 2, (K, D, J)), "s2": rng.gamma(2, 1, J)},
        lambda p, x: stats.norm.logpdf(x[:, None], p["mu"][None], np.sqrt(p["s2"])).sum((2, 3))),
    "two_inner_axes_d_summed": (
        _model("  for d in 1:D { for j in 1:J { x[n, d, j] ~ Normal(mu[z[n], j], s2[z[n]]) } }",
               "data x[N, D, J] : real\nparam mu[K, J] : real\nparam s2[K] : pos"),
        lambda rng: {"x": rng.normal(-3, 2, (N, D, J))},
        lambda rng: {"mu": rng.normal(-3, 2, (K, J)), "s2": rng.gamma(2, 1, K)},
        lambda p, x: stats.norm.logpdf(x[:, None], p["mu"][None, :, None, :],
                                       np.sqrt(p["s2"])[None, :, None, None]).sum((2, 3))),
    "wide_rows_two_inner_axes": (     # 40 numbers per row: read in tiles of 64 rows
        _model("  for d in 1:D { for j in 1:J { x[n, d, j] ~ Normal(mu[z[n], d, j], s2[z[n], j]) } }",
               "data x[N, D, J] : real\nparam mu[K, D, J] : real\nparam s2[K, J] : pos"),
        lambda rng: {"x": rng.normal(1, 2, (N, 5, 8))},
        lambda rng: {"mu": rng.normal(1, 2, (K, 5, 8)), "s2": rng.gamma(2, 1, (K, 8))},
        lambda p, x: stats.norm.logpdf(x[:, None], p["mu"][None],
                                       np.sqrt(p["s2"])[None, :, None, :]).sum((2, 3))),
    "gamma_known_shape_per_d": (
        _model("  for d in 1:D { y[n, d] ~ Gamma(a[d], b[z[n], d]) }",
               "data y[N, D] : pos\nhyper a : pos[D]\nparam b[K, D] : pos"),
        lambda rng: {"y": rng.gamma(2, 1, (N, D)), "a": SHAPE},
        lambda rng: {"b": rng.gamma(2, 1, (K, D))},
        lambda p, y: stats.gamma.logpdf(y[:, None], SHAPE, scale=1 / p["b"][None]).sum(2)),
    "beta_shapes_per_component": (
        _model("  for d in 1:D { y[n, d] ~ Beta(a[z[n]], b[z[n]]) }",
               "data y[N, D] : unit\nparam a[K] : pos\nparam b[K] : pos"),
        lambda rng: {"y": rng.beta(2, 3, (N, D))},
        lambda rng: {"a": rng.gamma(2, 1, K), "b": rng.gamma(2, 1, K)},
        lambda p, y: stats.beta.logpdf(y[:, None], p["a"][None, :, None],
                                       p["b"][None, :, None]).sum(2)),
    "rates_without_component": (
        _model("  u[n] ~ Normal(m[z[n]], 1)\n  for d in 1:D { y[n, d] ~ Poisson(rate[d]) }",
               "data y[N, D] : count\ndata u[N] : real\nparam rate[D] : pos\nparam m[K] : real"),
        lambda rng: {"y": rng.poisson(3, (N, D)), "u": rng.normal(size=N)},
        lambda rng: {"rate": rng.gamma(2, 1, D), "m": rng.normal(size=K)},
        lambda p, y, u: (stats.poisson.logpmf(y, p["rate"]).sum(1)[:, None]
                         + stats.norm.logpdf(u[:, None], p["m"][None], 1))),
}


def assert_e_step_in_any_blocks(mod, data, hyp, params, log_joint, per_row=False,
                                resp_atol=1e-10):
    """Generated module ``mod``'s E-step in 512-row blocks (the last one partial) and in one
    block against a reference log joint (N, K) at ``params``: the log likelihood to 1e-12,
    the responsibilities to ``resp_atol``, and with ``per_row`` each row's log p(x_n) to
    1e-12 (``rows=``), the total unchanged by asking for them."""
    want_rows = logsumexp(log_joint, axis=1)
    resp = np.exp(log_joint - want_rows[:, None])
    saved = mod.BLOCK_BYTES
    try:
        for block_bytes in (1, 2 ** 40):
            mod.BLOCK_BYTES = block_bytes
            st = mod.prepare(data, hyp)
            r, _, ll = mod.e_step(st, params, hyp)
            assert ll == pytest.approx(want_rows.sum(), rel=1e-12)
            np.testing.assert_allclose(r, resp, atol=resp_atol)
            if per_row:
                rows = np.zeros(st["n_rows"])
                _, _, ll = mod.e_step(st, params, hyp, rows=rows)
                np.testing.assert_allclose(rows, want_rows, rtol=1e-12)
                assert ll == pytest.approx(want_rows.sum(), rel=1e-12)
    finally:
        mod.BLOCK_BYTES = saved


@pytest.mark.parametrize("name", sorted(CASES))
def test_e_step_matches_scipy_in_any_blocks(name):
    source, data, params, reference = CASES[name]
    rng = np.random.default_rng(0)
    m = emdsl.loads(source, name=f"{name}.emm", use_cache=False)
    kw = data(rng)
    p = {"w": rng.dirichlet(np.ones(K)), **params(rng)}
    b = m._bind({**kw, "K": K})
    h = {**b.dims, **b.hypers}
    mod = m.module
    log_joint = np.log(p["w"]) + reference(p, *(b.data[v] for v in mod.DATA))
    assert_e_step_in_any_blocks(mod, b.data, h, p, log_joint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)      # 25 iterations at tol 0
        warnings.simplefilter("error", ObjectiveDecreaseWarning)
        res = m.fit(**kw, K=K, seed=1, max_iter=25, tol=0)
    assert np.all(np.diff(res.elbo) >= -1e-9 * np.abs(res.elbo[1:]))
