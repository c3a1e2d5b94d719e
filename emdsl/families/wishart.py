"""The Wishart W(Lambda | scale W, df nu) and inverse Wishart IW(Sigma | scale Psi, df nu).

Wishart:  t = (Lambda, log|Lambda|), eta = (-1/2 W^-1, (nu - D - 1)/2),
          A = nu/2 log|W| + nu D/2 log 2 + log Gamma_D(nu/2), log h = 0.
InvWishart: t = (Sigma^-1, log|Sigma|), eta = (-1/2 Psi, -(nu + D + 1)/2),
          A = -nu/2 log|Psi| + nu D/2 log 2 + log Gamma_D(nu/2), log h = 0.
Shapes: matrices (..., D, D), df and the log-determinant statistic (...).
"""
from __future__ import annotations

import numpy as np

from .linalg import _spd_chol, _spd_inv, _spd_logdet, log_multigamma, multi_digamma
from .vector import ExpFamily

LOG2 = np.log(2.0)


# ----------------------------------------------------------------------------- runtime
# Functions copied into generated modules (numpy / scipy.special only).
def _wishart_natural(scale, df):
    """Natural parameters of W(scale, df) on (Lambda, log|Lambda|)."""
    scale = np.asarray(scale, dtype=float)
    return -0.5 * _spd_inv(scale), 0.5 * (np.asarray(df, dtype=float) - scale.shape[-1] - 1)


def _wishart_mode(eta0, eta1):
    """argmax of tr(eta0 Lambda) + eta1 log|Lambda|: 2 eta1 (-2 eta0)^-1 (eta1 > 0)."""
    return 2.0 * np.asarray(eta1, dtype=float)[..., None, None] * _spd_inv(-2.0 * eta0)


def _invwishart_natural(scale, df):
    """Natural parameters of IW(scale, df) on (Sigma^-1, log|Sigma|)."""
    scale = np.asarray(scale, dtype=float)
    return -0.5 * scale, -0.5 * (np.asarray(df, dtype=float) + scale.shape[-1] + 1)


def _invwishart_mode(eta0, eta1):
    """argmax of tr(eta0 Sigma^-1) + eta1 log|Sigma|: eta0 / eta1 (eta1 < 0)."""
    return eta0 / np.asarray(eta1, dtype=float)[..., None, None]


def _wishart_logpdf(X, scale, df):
    """log W(X | scale, df) for X (..., D, D)."""
    from scipy.special import gammaln
    X, scale = np.asarray(X, dtype=float), np.asarray(scale, dtype=float)
    D = X.shape[-1]
    df = np.asarray(df, dtype=float)
    tr = np.einsum("...ij,...ji->...", np.linalg.solve(scale, X), np.eye(D))
    lmg = D * (D - 1) / 4 * np.log(np.pi) + sum(gammaln(0.5 * df + (1 - i) / 2)
                                                 for i in range(1, D + 1))
    return (0.5 * (df - D - 1) * _spd_logdet(X) - 0.5 * tr - 0.5 * df * D * np.log(2.0)
            - 0.5 * df * _spd_logdet(scale) - lmg)


def _invwishart_logpdf(X, scale, df):
    """log IW(X | scale, df) for X (..., D, D)."""
    from scipy.special import gammaln
    X, scale = np.asarray(X, dtype=float), np.asarray(scale, dtype=float)
    D = X.shape[-1]
    df = np.asarray(df, dtype=float)
    tr = np.einsum("...ij,...ji->...", scale, _spd_inv(X))
    lmg = D * (D - 1) / 4 * np.log(np.pi) + sum(gammaln(0.5 * df + (1 - i) / 2)
                                                 for i in range(1, D + 1))
    return (0.5 * df * _spd_logdet(scale) - 0.5 * (df + D + 1) * _spd_logdet(X) - 0.5 * tr
            - 0.5 * df * D * np.log(2.0) - lmg)


RUNTIME = (_wishart_natural, _wishart_mode, _invwishart_natural, _invwishart_mode,
           _wishart_logpdf, _invwishart_logpdf)


def _bartlett(rng, df, D, size):
    """Lower-triangular Bartlett factors A with A A^T ~ Wishart(I, df): (size..., D, D)."""
    df = np.asarray(df, float)
    shape = tuple(size) + df.shape
    A = np.zeros(shape + (D, D))
    for i in range(D):
        A[..., i, i] = np.sqrt(rng.chisquare(df - i, size=shape))
        A[..., i, :i] = rng.standard_normal(shape + (i,))
    return A


class Wishart(ExpFamily):
    name = "Wishart"
    DENSITY = ("(df - D - 1)/2 log|x| - tr(scale^-1 x)/2 - df D/2 log 2 - df/2 log|scale| "
               "- log Gamma_D(df/2)",
               r"\tfrac{\nu - D - 1}2 \log|x| - \tfrac12 \operatorname{tr}(V^{-1} x) - "
               r"\tfrac{\nu D}2 \log 2 - \tfrac\nu2 \log|V| - \log\Gamma_D(\tfrac\nu2),\ "
               r"V = \mathrm{scale},\ \nu = \mathrm{df}")
    LOGPDF = "_wishart_logpdf"
    EVENT_RANKS = (2, 0)
    # scale W: an inverse-Wishart form in W (t = W^-1, log|W|)
    MESSAGES = {"scale": ("InvWishart", "msg_scale", "")}
    RUNTIME_NATURAL = "_wishart_natural"
    RUNTIME_MODE = "_wishart_mode"

    def stats(self, Lam):
        return (np.asarray(Lam, float), _spd_logdet(np.asarray(Lam, float)))

    def natural(self, scale, df):
        return _wishart_natural(scale, df)

    def params(self, eta):
        """(scale, df) from eta."""
        D = np.shape(eta[0])[-1]
        return _spd_inv(-2.0 * np.asarray(eta[0])), 2.0 * np.asarray(eta[1]) + D + 1

    def log_normalizer(self, eta):
        W, df = self.params(eta)
        D = W.shape[-1]
        return 0.5 * df * _spd_logdet(W) + 0.5 * df * D * LOG2 + log_multigamma(0.5 * df, D)

    def log_base(self, Lam):
        return np.zeros(np.shape(Lam)[:-2])

    def mean_map(self, eta):
        W, df = self.params(eta)
        D = W.shape[-1]
        return (df[..., None, None] * W,
                multi_digamma(0.5 * df, D) + D * LOG2 + _spd_logdet(W))

    def mode(self, eta):
        """(nu - D - 1) W: the argmax of a log|Lambda| - 1/2 tr(W^-1 Lambda)."""
        return _wishart_mode(np.asarray(eta[0], float), eta[1])

    def sample(self, rng, eta, size=()):
        W, df = self.params(eta)
        D = W.shape[-1]
        L = _spd_chol(W)
        A = _bartlett(rng, df, D, np.atleast_1d(size) if size != () else ())
        LA = L @ A
        return LA @ np.swapaxes(LA, -1, -2)

    def msg_scale(self, stat, df):
        """To the scale W: coefficients on (W^-1, log|W|) of log W(Lambda | W, df) =
        (-1/2 E[Lambda], -df/2)."""
        return (-0.5 * np.asarray(stat, float), -0.5 * np.asarray(df, float))


class InvWishart(ExpFamily):
    name = "InvWishart"
    DENSITY = ("df/2 log|scale| - (df + D + 1)/2 log|x| - tr(scale x^-1)/2 - df D/2 log 2 "
               "- log Gamma_D(df/2)",
               r"\tfrac\nu2 \log|\Psi| - \tfrac{\nu + D + 1}2 \log|x| - \tfrac12 "
               r"\operatorname{tr}(\Psi x^{-1}) - \tfrac{\nu D}2 \log 2 - \log\Gamma_D"
               r"(\tfrac\nu2),\ \Psi = \mathrm{scale},\ \nu = \mathrm{df}")
    LOGPDF = "_invwishart_logpdf"
    EVENT_RANKS = (2, 0)
    # scale Psi: a Wishart form in Psi (t = Psi, log|Psi|)
    MESSAGES = {"scale": ("Wishart", "msg_scale", "")}
    RUNTIME_NATURAL = "_invwishart_natural"
    RUNTIME_MODE = "_invwishart_mode"

    def stats(self, Sigma):
        Sigma = np.asarray(Sigma, float)
        return (_spd_inv(Sigma), _spd_logdet(Sigma))

    def natural(self, scale, df):
        return _invwishart_natural(scale, df)

    def params(self, eta):
        D = np.shape(eta[0])[-1]
        return -2.0 * np.asarray(eta[0]), -2.0 * np.asarray(eta[1]) - D - 1

    def log_normalizer(self, eta):
        Psi, df = self.params(eta)
        D = Psi.shape[-1]
        return -0.5 * df * _spd_logdet(Psi) + 0.5 * df * D * LOG2 + log_multigamma(0.5 * df, D)

    def log_base(self, Sigma):
        return np.zeros(np.shape(Sigma)[:-2])

    def mean_map(self, eta):
        Psi, df = self.params(eta)
        D = Psi.shape[-1]
        return (df[..., None, None] * _spd_inv(Psi),
                _spd_logdet(Psi) - multi_digamma(0.5 * df, D) - D * LOG2)

    def mode(self, eta):
        """Psi / (nu + D + 1): the argmax of b log|Sigma| - 1/2 tr(Psi Sigma^-1)."""
        return _invwishart_mode(np.asarray(eta[0], float), eta[1])

    def sample(self, rng, eta, size=()):
        Psi, df = self.params(eta)
        prec = Wishart().sample(rng, Wishart().natural(_spd_inv(Psi), df), size)
        return _spd_inv(prec)

    def msg_scale(self, stat, df):
        """To the scale Psi: coefficients on (Psi, log|Psi|) of log IW(Sigma | Psi, df) =
        (-1/2 E[Sigma^-1], df/2)."""
        return (-0.5 * np.asarray(stat, float), 0.5 * np.asarray(df, float))
