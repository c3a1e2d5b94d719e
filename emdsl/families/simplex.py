"""Categorical, Multinomial and Dirichlet as family entries.

Categorical(p):    x in 0..K-1, t = onehot(x) (..., K), eta = log p, A = logsumexp(eta)
Multinomial(n, p): x counts (..., K), t = x, eta = log p, A = n logsumexp(eta),
                   log h = lgamma(n + 1) - sum lgamma(x + 1)
Dirichlet(alpha):  t = log p (..., K), eta = alpha - 1,
                   A = sum lgamma(alpha) - lgamma(sum alpha), log h = 0
(the categorical log-normaliser is 0 when p is normalised; written for any eta).
"""
from __future__ import annotations

import numpy as np

from .vector import ExpFamily


def _dirichlet_logpdf(p, alpha):
    """log Dir(p | alpha) for p (..., K) (a scalar alpha is symmetric) -> (...).  A zero
    p_j with alpha_j = 1 contributes 0, as the density does."""
    from scipy.special import gammaln
    p = np.asarray(p, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), p.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        body = np.where(alpha == 1, 0.0, (alpha - 1) * np.log(p))
    return gammaln(alpha.sum(-1)) - gammaln(alpha).sum(-1) + body.sum(-1)


def _dirichlet_expected_log(alpha, cols=None):
    """E[log p] under Dir(p | alpha): digamma(alpha) - digamma(sum alpha), alpha (..., K) ->
    (..., K) (the mean of the Dirichlet's statistic t = log p; the VB weight message);
    with ``cols`` (an index array) only those entries, (..., len(cols))."""
    from scipy.special import digamma
    alpha = np.asarray(alpha, dtype=float)
    total = digamma(alpha.sum(-1, keepdims=True))
    return digamma(alpha if cols is None else alpha[..., cols]) - total


def _dirichlet_kl(alpha, alpha0):
    """KL(Dir(alpha) || Dir(alpha0)) for alpha (..., K), alpha0 broadcastable to it (a
    scalar is symmetric) -> (...), all constants:
    lgamma(a) - sum lgamma(alpha) - lgamma(a0) + sum lgamma(alpha0)
    + sum (alpha - alpha0) (digamma(alpha) - digamma(a)),  a = sum alpha, a0 = sum alpha0."""
    from scipy.special import gammaln
    alpha, alpha0 = np.broadcast_arrays(np.asarray(alpha, dtype=float),
                                        np.asarray(alpha0, dtype=float))
    return (gammaln(alpha.sum(-1)) - gammaln(alpha).sum(-1)
            - gammaln(alpha0.sum(-1)) + gammaln(alpha0).sum(-1)
            + ((alpha - alpha0) * _dirichlet_expected_log(alpha)).sum(-1))


def _dirichlet_expected_logpdf(elog, alpha):
    """E_q[log Dir(p | alpha)] from the expected statistic E_q[log p] (..., K); alpha
    broadcastable to it (a scalar is symmetric) -> (...): the prior's term of the ELBO,
    a function of alpha to maximise (type-II maximum likelihood)."""
    from scipy.special import gammaln
    elog = np.asarray(elog, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), elog.shape)
    return gammaln(alpha.sum(-1)) - gammaln(alpha).sum(-1) + ((alpha - 1) * elog).sum(-1)


def _dirichlet_expected_logpdf_grad(elog, alpha):
    """d/d alpha_j of ``_dirichlet_expected_logpdf`` summed over the leading axes, per
    element of elog (..., K): digamma(sum alpha) - digamma(alpha_j) + E_q[log p_j]."""
    from scipy.special import digamma
    elog = np.asarray(elog, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), elog.shape)
    return digamma(alpha.sum(-1, keepdims=True)) - digamma(alpha) + elog


RUNTIME = (_dirichlet_logpdf, _dirichlet_expected_logpdf, _dirichlet_expected_logpdf_grad, _dirichlet_expected_log, _dirichlet_kl)


class Categorical(ExpFamily):
    name = "Categorical"
    DENSITY = ("log p_x", r"\log p_x")
    KIND = "categorical"   # the emitter of its statements (codegen/vector.py)
    EVENT_RANKS = (1,)
    # p: a Dirichlet form in p (t = log p): the expected counts
    MESSAGES = {"p": ("Dirichlet", "msg_p", "")}

    def __init__(self, K: int | None = None):
        self.K = K

    def stats(self, x):
        x = np.asarray(x, dtype=np.int64)
        return (np.eye(self.K)[x],)

    def natural(self, p):
        with np.errstate(divide="ignore"):
            return (np.log(np.asarray(p, float)),)

    def log_normalizer(self, eta):
        from scipy.special import logsumexp
        return logsumexp(eta[0], axis=-1)

    def log_base(self, x):
        return np.zeros(np.shape(x))

    def mean_map(self, eta):
        from scipy.special import softmax
        return (softmax(eta[0], axis=-1),)

    def inverse_mean_map(self, mu):
        return self.natural(mu[0])

    def mode(self, eta):
        return np.argmax(eta[0], axis=-1)

    def entropy(self, eta):
        from scipy.special import softmax
        p = softmax(eta[0], axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)

    def sample(self, rng, eta, size=()):
        from scipy.special import softmax
        p = softmax(eta[0], axis=-1)
        u = rng.random(tuple(np.atleast_1d(size)) + p.shape[:-1] if size != () else p.shape[:-1])
        return (np.cumsum(p, axis=-1) < u[..., None]).sum(-1)

    def msg_p(self, counts):
        """To p: coefficients on log p = the (expected) counts of each category (..., K)."""
        return (np.asarray(counts, float),)


class Multinomial(Categorical):
    name = "Multinomial"
    DENSITY = ("log n! - sum_j log x_j! + sum_j x_j log p_j",
               r"\log n! - \textstyle\sum_j \log x_j! + \sum_j x_j \log p_j")

    def __init__(self, n=1):
        super().__init__(None)
        self.n = n

    def stats(self, x):
        return (np.asarray(x, float),)

    def log_normalizer(self, eta):
        from scipy.special import logsumexp
        return np.asarray(self.n, float) * logsumexp(eta[0], axis=-1)

    def log_base(self, x):
        from scipy.special import gammaln
        x = np.asarray(x, float)
        return gammaln(x.sum(-1) + 1) - gammaln(x + 1).sum(-1)

    def mean_map(self, eta):
        from scipy.special import softmax
        return (np.asarray(self.n, float)[..., None] * softmax(eta[0], axis=-1),)

    def mode(self, eta):  # pragma: no cover - not needed by any update
        raise NotImplementedError("the Multinomial mode has no closed form")

    def entropy(self, eta):
        return None  # E[log h] has no closed form

    def sample(self, rng, eta, size=()):
        from scipy.special import softmax
        return rng.multinomial(self.n, softmax(eta[0], axis=-1), size=size or None)


class Dirichlet(ExpFamily):
    name = "Dirichlet"
    DENSITY = ("log Gamma(sum_j alpha_j) - sum_j log Gamma(alpha_j) + sum_j (alpha_j - 1) log x_j",
               r"\log\Gamma\big(\textstyle\sum_j \alpha_j\big) - \sum_j \log\Gamma(\alpha_j)"
               r" + \sum_j (\alpha_j - 1) \log x_j")
    LOGPDF = "_dirichlet_logpdf"
    EVENT_RANKS = (1,)
    MESSAGES: dict = {}  # its concentration is not conjugate to anything: numerical updates
    # E_q[log p(v | args)] from q's expected statistic: what a param in the arguments of a
    # variational factor's prior maximises (its ELBO terms)
    EXPECTED_LOGPDF = "_dirichlet_expected_logpdf"
    EXPECTED_LOGPDF_GRAD = "_dirichlet_expected_logpdf_grad"   # per element, in alpha

    def stats(self, p):
        with np.errstate(divide="ignore"):
            return (np.log(np.asarray(p, float)),)

    def natural(self, alpha):
        return (np.asarray(alpha, float) - 1.0,)

    def log_normalizer(self, eta):
        from scipy.special import gammaln
        a = np.asarray(eta[0]) + 1.0
        return gammaln(a).sum(-1) - gammaln(a.sum(-1))

    def log_base(self, p):
        return np.zeros(np.shape(p)[:-1])

    def mean_map(self, eta):
        from scipy.special import digamma
        a = np.asarray(eta[0]) + 1.0
        return (digamma(a) - digamma(a.sum(-1, keepdims=True)),)

    def mode(self, eta):
        """(alpha - 1) / sum(alpha - 1): the argmax of sum_j eta_j log p_j on the simplex
        (a Lagrange multiplier); the MAP / ML simplex update. eta >= 0 required."""
        c = np.asarray(eta[0], float)
        total = c.sum(-1, keepdims=True)
        return c / np.where(total > 0, total, 1.0)

    def sample(self, rng, eta, size=()):
        a = np.asarray(eta[0]) + 1.0
        g = rng.standard_gamma(a, size=tuple(np.atleast_1d(size)) + a.shape if size != () else None)
        return g / g.sum(-1, keepdims=True)


# What a Dirichlet variational factor q(v) = Dir(alpha) contributes to a derivation
# (plain text, LaTeX; {v} the latent, {c} its expected counts, {alpha} the prior's argument),
# Bishop PRML eq. 10.58, 10.66.
VB_TEXT = {"Dirichlet": {
    "expect": ("E_q[log {v}_j] = digamma(a_j) - digamma(sum_i a_i), a: the concentration of q({v})",
               r"\mathbb{{E}}_q[\log {v}_j] = \psi(a_j) - \psi\big(\textstyle\sum_i a_i\big)"),
    "update": ("q({v}) = Dirichlet(a),  a = {alpha} + {c}",
               r"q({v}) = \mathrm{{Dir}}(a),\ a = {alpha} + {c}"),
    "kl": ("KL(q({v}) || p({v})) = log Gamma(sum a) - sum log Gamma(a_j) - log Gamma(sum a0) + "
           "sum log Gamma(a0_j) + sum (a_j - a0_j)(digamma(a_j) - digamma(sum a)),  a0 = {alpha}",
           r"\mathrm{{KL}} = \log\Gamma(\textstyle\sum a) - \sum\log\Gamma(a_j) - "
           r"\log\Gamma(\textstyle\sum a^0) + \sum\log\Gamma(a^0_j) + "
           r"\sum(a_j - a^0_j)\big(\psi(a_j) - \psi(\textstyle\sum a)\big)"),
}}
