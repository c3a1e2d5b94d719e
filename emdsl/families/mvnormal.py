"""The multivariate normal N(x | mean, cov) (also ``prec=``) as a family entry.

t(x) = (x, x x^T), eta = (Lambda m, -1/2 Lambda) with Lambda = cov^-1,
A = 1/2 m^T Lambda m - 1/2 log|Lambda| + D/2 log(2 pi), log h = 0.
Shapes: x (..., D); eta = ((..., D), (..., D, D)).
"""
from __future__ import annotations

import numpy as np

from .linalg import chol, inv_spd, logdet, outer, sym
from .vector import ExpFamily

LOG_2PI = np.log(2 * np.pi)


class MvNormal(ExpFamily):
    name = "MvNormal"
    EVENT_RANKS = (1, 2)
    # mean: a Gaussian form in m; cov: an inverse-Wishart form in Sigma (t = Sigma^-1,
    # log|Sigma|); prec: a Wishart form in Lambda (t = Lambda, log|Lambda|)
    MESSAGES = {"mean": ("MvNormal", "msg_mean"), "cov": ("InvWishart", "msg_cov"),
                "prec": ("Wishart", "msg_prec")}

    def stats(self, x):
        x = np.asarray(x, dtype=float)
        return (x, outer(x, x))

    def natural(self, mean, cov=None, prec=None):
        Lam = inv_spd(np.asarray(cov, float)) if prec is None else np.asarray(prec, float)
        mean = np.asarray(mean, float)
        return (np.einsum("...ij,...j->...i", Lam, mean), -0.5 * Lam)

    def params(self, eta):
        """(mean, cov) from eta."""
        Lam = -2.0 * np.asarray(eta[1])
        cov = inv_spd(Lam)
        return np.einsum("...ij,...j->...i", cov, eta[0]), cov

    def log_normalizer(self, eta):
        Lam = -2.0 * np.asarray(eta[1])
        m = np.linalg.solve(Lam, np.asarray(eta[0])[..., None])[..., 0]
        D = m.shape[-1]
        return 0.5 * np.einsum("...i,...i->...", eta[0], m) - 0.5 * logdet(Lam) + 0.5 * D * LOG_2PI

    def log_base(self, x):
        return np.zeros(np.shape(x)[:-1])

    def mean_map(self, eta):
        m, cov = self.params(eta)
        return (m, cov + outer(m, m))

    def inverse_mean_map(self, mu):
        m = np.asarray(mu[0])
        cov = sym(np.asarray(mu[1]) - outer(m, m))
        return self.natural(m, cov=cov)

    def mode(self, eta):
        return self.params(eta)[0]

    def entropy(self, eta):
        Lam = -2.0 * np.asarray(eta[1])
        D = Lam.shape[-1]
        return 0.5 * D * (1 + LOG_2PI) - 0.5 * logdet(Lam)

    def sample(self, rng, eta, size=()):
        m, cov = self.params(eta)
        L = chol(cov)
        z = rng.standard_normal(tuple(np.atleast_1d(size)) + m.shape if size != () else m.shape)
        return m + np.einsum("...ij,...j->...i", L, z)

    # ------------------------------------------------------------------ messages
    def msg_mean(self, sum_x, count, prec):
        """To the mean m: coefficients on (m, m m^T) of sum_n log N(x_n | m, prec^-1) =
        (prec sum_x, -count/2 prec).  sum_x (..., D), count (...), prec (..., D, D)."""
        prec = np.asarray(prec, float)
        return (np.einsum("...ij,...j->...i", prec, sum_x),
                -0.5 * np.asarray(count, float)[..., None, None] * prec)

    def _scatter(self, sum_x, sum_xx, count, mean, mean_outer=None):
        """sum_n (x_n - m)(x_n - m)^T from the sums; E[m m^T] when m is uncertain."""
        count = np.asarray(count, float)[..., None, None]
        mm = outer(mean, mean) if mean_outer is None else mean_outer
        return sym(sum_xx - outer(sum_x, mean) - outer(mean, sum_x) + count * mm)

    def msg_prec(self, sum_x, sum_xx, count, mean, mean_outer=None):
        """To the precision Lambda: coefficients on (Lambda, log|Lambda|) =
        (-1/2 scatter, count/2)."""
        C = self._scatter(sum_x, sum_xx, count, mean, mean_outer)
        return (-0.5 * C, 0.5 * np.asarray(count, float))

    def msg_cov(self, sum_x, sum_xx, count, mean, mean_outer=None):
        """To the covariance Sigma: coefficients on (Sigma^-1, log|Sigma|) =
        (-1/2 scatter, -count/2)."""
        C = self._scatter(sum_x, sum_xx, count, mean, mean_outer)
        return (-0.5 * C, -0.5 * np.asarray(count, float))
