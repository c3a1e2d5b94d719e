"""The Wishart W(Lambda | scale W, df nu) and inverse Wishart IW(Sigma | scale Psi, df nu).

Wishart:  t = (Lambda, log|Lambda|), eta = (-1/2 W^-1, (nu - D - 1)/2),
          A = nu/2 log|W| + nu D/2 log 2 + log Gamma_D(nu/2), log h = 0.
InvWishart: t = (Sigma^-1, log|Sigma|), eta = (-1/2 Psi, -(nu + D + 1)/2),
          A = -nu/2 log|Psi| + nu D/2 log 2 + log Gamma_D(nu/2), log h = 0.
Shapes: matrices (..., D, D), df and the log-determinant statistic (...).
"""
from __future__ import annotations

import numpy as np

from .linalg import chol, inv_spd, log_multigamma, logdet, multi_digamma
from .vector import ExpFamily

LOG2 = np.log(2.0)


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
    EVENT_RANKS = (2, 0)
    # scale W: an inverse-Wishart form in W (t = W^-1, log|W|)
    MESSAGES = {"scale": ("InvWishart", "msg_scale")}

    def stats(self, Lam):
        return (np.asarray(Lam, float), logdet(np.asarray(Lam, float)))

    def natural(self, scale, df):
        scale = np.asarray(scale, float)
        D = scale.shape[-1]
        return (-0.5 * inv_spd(scale), 0.5 * (np.asarray(df, float) - D - 1))

    def params(self, eta):
        """(scale, df) from eta."""
        D = np.shape(eta[0])[-1]
        return inv_spd(-2.0 * np.asarray(eta[0])), 2.0 * np.asarray(eta[1]) + D + 1

    def log_normalizer(self, eta):
        W, df = self.params(eta)
        D = W.shape[-1]
        return 0.5 * df * logdet(W) + 0.5 * df * D * LOG2 + log_multigamma(0.5 * df, D)

    def log_base(self, Lam):
        return np.zeros(np.shape(Lam)[:-2])

    def mean_map(self, eta):
        W, df = self.params(eta)
        D = W.shape[-1]
        return (df[..., None, None] * W,
                multi_digamma(0.5 * df, D) + D * LOG2 + logdet(W))

    def mode(self, eta):
        """(nu - D - 1) W: the argmax of a log|Lambda| - 1/2 tr(W^-1 Lambda)."""
        W, df = self.params(eta)
        D = W.shape[-1]
        return (df - D - 1)[..., None, None] * W

    def sample(self, rng, eta, size=()):
        W, df = self.params(eta)
        D = W.shape[-1]
        L = chol(W)
        A = _bartlett(rng, df, D, np.atleast_1d(size) if size != () else ())
        LA = L @ A
        return LA @ np.swapaxes(LA, -1, -2)

    def msg_scale(self, stat, df):
        """To the scale W: coefficients on (W^-1, log|W|) of log W(Lambda | W, df) =
        (-1/2 E[Lambda], -df/2)."""
        return (-0.5 * np.asarray(stat, float), -0.5 * np.asarray(df, float))


class InvWishart(ExpFamily):
    name = "InvWishart"
    EVENT_RANKS = (2, 0)
    # scale Psi: a Wishart form in Psi (t = Psi, log|Psi|)
    MESSAGES = {"scale": ("Wishart", "msg_scale")}

    def stats(self, Sigma):
        Sigma = np.asarray(Sigma, float)
        return (inv_spd(Sigma), logdet(Sigma))

    def natural(self, scale, df):
        scale = np.asarray(scale, float)
        D = scale.shape[-1]
        return (-0.5 * scale, -0.5 * (np.asarray(df, float) + D + 1))

    def params(self, eta):
        D = np.shape(eta[0])[-1]
        return -2.0 * np.asarray(eta[0]), -2.0 * np.asarray(eta[1]) - D - 1

    def log_normalizer(self, eta):
        Psi, df = self.params(eta)
        D = Psi.shape[-1]
        return -0.5 * df * logdet(Psi) + 0.5 * df * D * LOG2 + log_multigamma(0.5 * df, D)

    def log_base(self, Sigma):
        return np.zeros(np.shape(Sigma)[:-2])

    def mean_map(self, eta):
        Psi, df = self.params(eta)
        D = Psi.shape[-1]
        return (df[..., None, None] * inv_spd(Psi),
                logdet(Psi) - multi_digamma(0.5 * df, D) - D * LOG2)

    def mode(self, eta):
        """Psi / (nu + D + 1): the argmax of b log|Sigma| - 1/2 tr(Psi Sigma^-1)."""
        Psi, df = self.params(eta)
        D = Psi.shape[-1]
        return Psi / (df + D + 1)[..., None, None]

    def sample(self, rng, eta, size=()):
        Psi, df = self.params(eta)
        prec = Wishart().sample(rng, Wishart().natural(inv_spd(Psi), df), size)
        return inv_spd(prec)

    def msg_scale(self, stat, df):
        """To the scale Psi: coefficients on (Psi, log|Psi|) of log IW(Sigma | Psi, df) =
        (-1/2 E[Sigma^-1], df/2)."""
        return (-0.5 * np.asarray(stat, float), 0.5 * np.asarray(df, float))
