"""FitResult: the final objective, named after what the algorithm maximises."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model, name", [("gaussian_mixture", "log likelihood"),
                                         ("gmm_identity_map", "log posterior"),
                                         ("bayes_gmm", "ELBO")])
def test_the_result_names_its_objective(model, name):
    """result.objective is the final value of the trace (result.elbo), named after what
    the algorithm maximises."""
    m = emdsl.load(ROOT / "models" / f"{model}.emm")
    x = np.random.default_rng(0).normal(size=(60, 2)) + np.repeat([[0, 0], [6, 6]], 30, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=x, K=2, max_iter=5)
    assert r.objective == r.elbo[-1] and r.objective_name == name
    assert name in repr(r) and r.algorithm == m.module.ALGORITHM
