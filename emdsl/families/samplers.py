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


def _categorical(r, p):
    """One draw per row of ``p`` (B, K) (rows need not be normalised): (B,)."""
    p = np.asarray(p, dtype=float)
    if not (np.all(p >= 0) and np.all(p.sum(axis=-1) > 0)):
        raise ValueError("probabilities must be non-negative with a positive sum")
    c = np.cumsum(p, axis=-1)
    u = r.random(p.shape[:-1]) * c[..., -1]
    return np.minimum((u[..., None] >= c).sum(axis=-1), p.shape[-1] - 1)


def _dirichlet(r, alpha):
    """One draw per row of ``alpha`` (B, K): normalised gammas; rows whose gammas all
    underflow (tiny alpha) are drawn by numpy's dirichlet, which handles them."""
    alpha = np.asarray(alpha, dtype=float)
    g = r.gamma(alpha)
    total = g.sum(axis=-1, keepdims=True)
    out = np.divide(g, total, out=np.zeros_like(g), where=total > 0)
    for i in zip(*np.nonzero(total[..., 0] <= 0)):
        out[i] = r.dirichlet(alpha[i])
    return out


def _mvnormal(r, mean, cov):
    """One draw per (mean (B, D), cov (B, D, D)): mean + L z with cov = L L^T (numpy's
    multivariate_normal per row where a covariance is only semi-definite)."""
    mean, cov = np.asarray(mean, dtype=float), np.asarray(cov, dtype=float)
    z = r.standard_normal(mean.shape)
    try:
        return mean + np.einsum("...ij,...j->...i", np.linalg.cholesky(cov), z)
    except np.linalg.LinAlgError:
        return np.stack([r.multivariate_normal(m, c) for m, c in
                         zip(mean.reshape(-1, mean.shape[-1]),
                             cov.reshape(-1, *cov.shape[-2:]))]).reshape(mean.shape)


# Samplers that draw a batch at once: every argument has a leading batch axis (B, ...),
# the draw is (B, ...). ``Model.sample`` draws a statement's elements with one call when
# its family is here (the scalar families' numpy generators broadcast as they are).
BATCHED = {name: SAMPLERS[name] for name in ("Normal", "Bernoulli", "Poisson", "Exponential",
                                             "Gamma", "InvGamma", "Beta", "Geometric")}
BATCHED.update({
    "Binomial": lambda r, a: r.binomial(np.asarray(a["n"]).astype(np.int64), a["p"]),
    "Categorical": lambda r, a: _categorical(r, a["p"]),
    "Dirichlet": lambda r, a: _dirichlet(r, a["alpha"]),
    "MvNormal": lambda r, a: _mvnormal(r, a["mean"], a["cov"]),
})


def _wishart(r, scale, df):
    from .wishart import Wishart
    fam = Wishart()
    return fam.sample(r, fam.natural(np.asarray(scale, float), np.asarray(df, float)))


def sampler(family):
    """The direct sampler of a family, ``(rng, args by name) -> draw``, or None (a user's
    family, whose name cannot be a built-in one)."""
    return SAMPLERS.get(family.name)
