"""Data far from 0 for their spread (a 1e7 offset on a spread of 1): a Bayesian
mixture's CAVI is translation invariant - shifting the data, the prior's location and
the start by the same constant leaves every ELBO value, every update and the posterior
means (shifted) as they were, because the statistics are centred and q's KL from a
location-family prior is computed with both locations moved by q's own. A model with
global latents only sums raw y and y^2: there a PrecisionWarning says what to do."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import emdsl
from emdsl.runtime.batch import ConvergenceWarning, ObjectiveDecreaseWarning, PrecisionWarning

MIXTURE = """model OffsetMixture
dim N
dim K = 3
data x[N] : real
hyper m0 : real = 0.0
latent weights : simplex[K]
latent mu[K] : real
latent tau[K] : pos
latent z[N] : cat[K]
weights ~ Dirichlet(1.5)
for k in 1:K {
    mu[k] ~ Normal(m0, 50.0)
    tau[k] ~ Gamma(2.0, 1.0)
}
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], prec=tau[z[n]])
}
"""

GLOBAL = """model OffsetGlobal
dim N
data x[N] : real
hyper m0 : real = 0.0
latent mu : real
latent tau : pos
mu ~ Normal(m0, 10.0)
tau ~ Gamma(2.0, 3.0)
for n in 1:N { x[n] ~ Normal(mu, prec=tau) }
"""


@pytest.mark.parametrize("offset", [1e5, 1e7])
def test_a_bayesian_mixture_is_translation_invariant(offset):
    m = emdsl.loads(MIXTURE, name="offset_mixture.emm", use_cache=False)
    rng = np.random.default_rng(0)
    x = rng.normal(np.repeat([-3.0, 0.0, 4.0], 200), 0.7)
    start = {"weights.concentration": np.full(3, 200.0), "mu.mean": np.array([-2.0, 0.5, 3.0]),
             "mu.var": np.full(3, 0.1), "tau.shape": np.full(3, 50.0),
             "tau.rate": np.full(3, 50.0)}
    fits = []
    for shift in (0.0, offset):
        init = {**start, "mu.mean": start["mu.mean"] + shift}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("error", ObjectiveDecreaseWarning)
            warnings.simplefilter("error", PrecisionWarning)   # centred: no warning
            fits.append(m.fit(x=x + shift, m0=shift, init=init, max_iter=25, tol=0))
    near, far = fits
    # the data themselves are rounded to eps * offset: agreement to that scale
    np.testing.assert_allclose(far.elbo, near.elbo, rtol=1e-9)
    np.testing.assert_allclose(far.params["mu.mean"] - offset, near.params["mu.mean"],
                               rtol=0, atol=1e-15 * offset)
    for key in ("mu.var", "tau.shape", "tau.rate", "weights.concentration"):
        np.testing.assert_allclose(far.params[key], near.params[key], rtol=1e-16 * offset)


def test_global_latents_far_from_zero_warn():
    m = emdsl.loads(GLOBAL, name="offset_global.emm", use_cache=False)
    assert m.module.RAW_MOMENTS == ("x",)
    x = np.random.default_rng(1).normal(0.0, 0.5, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        m.fit(x=x + 100.0, m0=100.0)                # 200 sd from 0: fine
        with pytest.raises(PrecisionWarning, match="subtract a constant near 1e"):
            m.fit(x=x + 1e6, m0=1e6)
