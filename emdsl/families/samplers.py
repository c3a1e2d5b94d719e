"""Direct samplers of the built-in families (numpy's generators), by family name: the
family table's ``sampler`` field for ``Model.sample``.  Families without an entry (a
user's ``family`` block) are drawn by inverse CDF from their log density
(``runtime/sample.py``)."""
from __future__ import annotations

import numpy as np

SAMPLERS = {
    "Normal": lambda r, a: r.normal(a["mean"], np.sqrt(a["var"])),
    "Bernoulli": lambda r, a: r.binomial(1, a["p"]),
    "Binomial": lambda r, a: r.binomial(int(a["n"]), a["p"]),
    "Poisson": lambda r, a: r.poisson(a["rate"]),
    "Exponential": lambda r, a: r.exponential(1 / a["rate"]),
    "Gamma": lambda r, a: r.gamma(a["shape"], 1 / a["rate"]),
    "InvGamma": lambda r, a: a["scale"] / r.gamma(a["shape"], 1.0),
    "Beta": lambda r, a: r.beta(a["a"], a["b"]),
    "Geometric": lambda r, a: r.geometric(a["p"]) - 1,
    "Categorical": lambda r, a: r.choice(len(a["p"]), p=a["p"] / np.sum(a["p"])),
    "Dirichlet": lambda r, a: r.dirichlet(a["alpha"]),
    "Multinomial": lambda r, a: r.multinomial(int(a["n"]), a["p"]),
    "MvNormal": lambda r, a: r.multivariate_normal(a["mean"], a["cov"]),
    "Wishart": lambda r, a: _wishart(r, a["scale"], a["df"]),
    "InvWishart": lambda r, a: np.linalg.inv(_wishart(r, np.linalg.inv(a["scale"]), a["df"])),
}


def _wishart(r, scale, df):
    from .wishart import Wishart
    fam = Wishart()
    return fam.sample(r, fam.natural(np.asarray(scale, float), np.asarray(df, float)))


def sampler(family):
    """The direct sampler of a family, ``(rng, args by name) -> draw``, or None (a user's
    family, whose name cannot be a built-in one)."""
    return SAMPLERS.get(family.name)
