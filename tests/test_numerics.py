"""Numerical robustness of the generated code: data far from 0 do not cancel."""
import warnings

import numpy as np
import pytest
import scipy.stats as st
from scipy.special import logsumexp

import emdsl

NORMAL_MIXTURE = """model M
dim N
dim K = 2
data y[N] : real
param weights : simplex[K]
param mu[K] : real
param s2[K] : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(weights)
  y[n] ~ Normal(mu[z[n]], s2[z[n]])
}"""


@pytest.mark.parametrize("offset", [0.0, 1e6, 1e8])
def test_scalar_normal_mixture_far_from_zero(offset):
    """Statistics of the centred data: the fit at offset 1e8 is as good as at 0, the
    objective never decreases and equals scipy's log likelihood."""
    m = emdsl.loads(NORMAL_MIXTURE, name="far.emm")
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, 2000)
    y = rng.normal(np.array([0.0, 5.0])[z], 1.0) + offset
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no objective-decrease or convergence warning
        r = m.fit(y=y, seed=0, n_init=2, reg=0)
    assert r.converged
    assert np.all(np.diff(r.elbo) >= -1e-9 * np.abs(r.elbo[:-1]))
    p = r.params
    np.testing.assert_allclose(np.sort(p["mu"] - offset), [0.0, 5.0], atol=0.15)
    np.testing.assert_allclose(p["s2"], [1.0, 1.0], atol=0.15)
    ref = logsumexp(np.log(p["weights"]) + st.norm.logpdf(y[:, None], p["mu"], np.sqrt(p["s2"])),
                    axis=1).sum()
    hyp = {"N": len(y), "K": 2}
    loglik = m.module.e_step(m.module.prepare({"y": y}, hyp), p, hyp)[2]
    assert abs(loglik - ref) <= 1e-9 * abs(ref)
