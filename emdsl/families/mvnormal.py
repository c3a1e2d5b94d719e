"""The multivariate normal N(x | mean, cov) (also ``prec=``) as a family entry.

t(x) = (x, x x^T), eta = (Lambda m, -1/2 Lambda) with Lambda = cov^-1,
A = 1/2 m^T Lambda m - 1/2 log|Lambda| + D/2 log(2 pi), log h = 0.
Shapes: x (..., D); eta = ((..., D), (..., D, D)).
"""
from __future__ import annotations

import numpy as np

from .linalg import _outer, _spd_chol, _spd_inv, _spd_logdet, _sym, _triu
from .vector import ExpFamily

LOG_2PI = np.log(2 * np.pi)


# ----------------------------------------------------------------------------- runtime
# Functions copied into generated modules (numpy only; ``_spd_*`` from linalg).
def _mvn_stats(x, shift=0.0, out=None):
    """t(x) = [x, x_i x_j (i <= j, row by row)] of the rows of x - shift, x (B, D), shift
    (D,) or 0 -> (B, D + D(D+1)/2).

    Built statistic by statistic in a (P, B) array (the centring and the transposition in
    one pass, then each product one contiguous vector operation) and returned as its
    (B, P) transpose (Fortran order: BLAS reads it as is).  ``out``, a (P, >= B) buffer,
    is written instead of a new array: a caller that reuses one buffer for every block
    keeps t(x) in the same cache-resident memory."""
    B, D = x.shape
    P = D + D * (D + 1) // 2
    Tt = np.empty((P, B)) if out is None else out[:, :B]
    xt = Tt[:D]
    np.subtract(x.T, np.reshape(shift, (-1, 1)), out=xt)
    off = D
    for i in range(D):
        np.multiply(xt[i], xt[i:], out=Tt[off:off + D - i])
        off += D - i
    return Tt.T


def _unpack_sym(v, D):
    """Inverse of the packing of t(x): (G, D(D+1)/2) upper triangles -> (G, D, D)."""
    iu, ju, _ = _triu(D)
    out = np.zeros(v.shape[:-1] + (D, D))
    out[..., iu, ju] = v
    out[..., ju, iu] = v
    return out


def _mvn_natural(mean, cov=None, prec=None):
    """Natural parameters for the packed t(x) = [x, x_i x_j (i <= j)]: mean (G, D), cov or
    prec (G, D, D) -> eta (G, P), A (G,), so that log N(x) = eta . t(x) - A with
    A = 1/2 mean^T Lambda mean - 1/2 log|Lambda| + D/2 log(2 pi) (Linderman eq. 12)."""
    D = mean.shape[1]
    if prec is None:
        Linv = np.linalg.inv(_spd_chol(cov))   # Lambda = L^-T L^-1 (a natural parameter)
        prec = np.swapaxes(Linv, -1, -2) @ Linv
        logdet = -2.0 * np.log(np.diagonal(Linv, axis1=-2, axis2=-1)).sum(-1)  # log|Sigma|
    else:
        logdet = -2.0 * np.log(np.diagonal(_spd_chol(prec), axis1=-2, axis2=-1)).sum(-1)
    eta, quad = _mvn_packed_eta(prec, mean)
    A = 0.5 * (quad + logdet + D * np.log(2 * np.pi))
    return eta, A


def _mvn_packed_eta(prec, mean):
    """eta = [Lambda mean, -1/2 Lambda packed as t(x)'s x_i x_j (i <= j)] (G, P) and
    mean^T Lambda mean (G,), for precisions (G, D, D) and means (G, D): the part of the
    natural parameters a point estimate and a Normal-Wishart q (E[Lambda]) share."""
    G, D = mean.shape
    iu, ju, coef = _triu(D)
    lin = (prec @ mean[:, :, None])[:, :, 0]   # Lambda mean (G, D)
    eta = np.empty((G, D + len(iu)))
    eta[:, :D] = lin
    np.multiply(prec[:, iu, ju], -0.5 * coef, out=eta[:, D:])   # -1/2 x^T Lambda x, packed
    return eta, (mean * lin).sum(-1)


def _mvn_width(D):
    """The number of sufficient statistics of a D-dimensional MvNormal."""
    return D + D * (D + 1) // 2


def _mvn_mode(h, J):
    """The mean of a Gaussian form h.m + tr(J m m^T): solve(-2 J, h); h (..., D),
    J (..., D, D).  The ML / MAP update of a mean from its summed messages."""
    return np.linalg.solve(-2.0 * J, h[..., None])[..., 0]


def _mvn_msg_mean(sum_x, count, prec):
    """Message of sum_n log N(x_n | m, prec^-1) to m: coefficients on (m, m m^T) =
    (prec sum_x, -count/2 prec).  sum_x (..., D), count (...), prec (..., D, D)."""
    return (np.einsum("...ij,...j->...i", prec, sum_x),
            -0.5 * np.asarray(count, dtype=float)[..., None, None] * prec)


def _mvn_scatter(sum_x, sum_xx, count, mean):
    """sum_n (x_n - m)(x_n - m)^T from the sums (..., D), (..., D, D), (...) and m (..., D)."""
    c = np.asarray(count, dtype=float)[..., None, None]
    S = sum_xx - _outer(sum_x, mean) - _outer(mean, sum_x) + c * _outer(mean, mean)
    return 0.5 * (S + np.swapaxes(S, -1, -2))


def _mvn_msg_prec(scatter, count):
    """Message to the precision Lambda: coefficients on (Lambda, log|Lambda|)."""
    return -0.5 * scatter, 0.5 * np.asarray(count, dtype=float)


def _mvn_msg_cov(scatter, count):
    """Message to the covariance Sigma: coefficients on (Sigma^-1, log|Sigma|)."""
    return -0.5 * scatter, -0.5 * np.asarray(count, dtype=float)


def _mvn_logpdf(x, mean, cov=None, prec=None):
    """log N(x | mean, cov or prec^-1) for x (..., D); mean, cov / prec broadcast."""
    x, mean = np.asarray(x, dtype=float), np.asarray(mean, dtype=float)
    D = x.shape[-1]
    if prec is None:
        L = _spd_chol(np.asarray(cov, dtype=float))
        diff = np.linalg.solve(L, np.broadcast_to((x - mean)[..., None], L.shape[:-1] + (1,))
                               if L.ndim > 2 else (x - mean)[..., None])[..., 0]
        half_logdet = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
        quad = (diff ** 2).sum(-1)
    else:
        prec = np.asarray(prec, dtype=float)
        half_logdet = -0.5 * _spd_logdet(prec)
        quad = np.einsum("...i,...ij,...j->...", x - mean, prec, x - mean)
    return -0.5 * quad - half_logdet - 0.5 * D * np.log(2 * np.pi)


RUNTIME = (_mvn_stats, _unpack_sym, _mvn_natural, _mvn_packed_eta, _mvn_width, _mvn_mode, _mvn_msg_mean, _mvn_scatter, _mvn_msg_prec, _mvn_msg_cov, _mvn_logpdf)


class MvNormal(ExpFamily):
    name = "MvNormal"
    DENSITY = ("-D/2 log(2 pi) - 1/2 log|cov| - 1/2 (x - mean)^T cov^-1 (x - mean)",
               r"-\tfrac D2 \log 2\pi - \tfrac12 \log|\Sigma| - \tfrac12 (x - \mu)^\top "
               r"\Sigma^{-1} (x - \mu),\ \mu = \mathrm{mean},\ \Sigma = \mathrm{cov}")
    KIND = "mvnormal"   # the emitter of its statements (codegen/vector.py)
    EVENT_RANKS = (1, 2)
    LOGPDF = "_mvn_logpdf"
    # mean: a Gaussian form in m; cov: an inverse-Wishart form in Sigma (t = Sigma^-1,
    # log|Sigma|); prec: a Wishart form in Lambda (t = Lambda, log|Lambda|)
    MESSAGES = {"mean": ("MvNormal", "msg_mean", "_mvn_msg_mean"),
                "cov": ("InvWishart", "msg_cov", "_mvn_msg_cov"),
                "prec": ("Wishart", "msg_prec", "_mvn_msg_prec")}
    RUNTIME_MODE = "_mvn_mode"

    def stats(self, x):
        x = np.asarray(x, dtype=float)
        return (x, _outer(x, x))


    def natural(self, mean, cov=None, prec=None):
        Lam = _spd_inv(np.asarray(cov, float)) if prec is None else np.asarray(prec, float)
        mean = np.asarray(mean, float)
        return (np.einsum("...ij,...j->...i", Lam, mean), -0.5 * Lam)

    def params(self, eta):
        """(mean, cov) from eta."""
        Lam = -2.0 * np.asarray(eta[1])
        cov = _spd_inv(Lam)
        return np.einsum("...ij,...j->...i", cov, eta[0]), cov

    def log_normalizer(self, eta):
        Lam = -2.0 * np.asarray(eta[1])
        m = np.linalg.solve(Lam, np.asarray(eta[0])[..., None])[..., 0]
        D = m.shape[-1]
        return 0.5 * np.einsum("...i,...i->...", eta[0], m) - 0.5 * _spd_logdet(Lam) + 0.5 * D * LOG_2PI

    def log_base(self, x):
        return np.zeros(np.shape(x)[:-1])

    def mean_map(self, eta):
        m, cov = self.params(eta)
        return (m, cov + _outer(m, m))

    def inverse_mean_map(self, mu):
        m = np.asarray(mu[0])
        cov = _sym(np.asarray(mu[1]) - _outer(m, m))
        return self.natural(m, cov=cov)

    def mode(self, eta):
        return _mvn_mode(np.asarray(eta[0], float), np.asarray(eta[1], float))

    def entropy(self, eta):
        Lam = -2.0 * np.asarray(eta[1])
        D = Lam.shape[-1]
        return 0.5 * D * (1 + LOG_2PI) - 0.5 * _spd_logdet(Lam)

    def sample(self, rng, eta, size=()):
        m, cov = self.params(eta)
        L = _spd_chol(cov)
        z = rng.standard_normal(tuple(np.atleast_1d(size)) + m.shape if size != () else m.shape)
        return m + np.einsum("...ij,...j->...i", L, z)

    # ------------------------------------------------------------------ messages
    def msg_mean(self, sum_x, count, prec):
        """To the mean m: coefficients on (m, m m^T) (see ``_mvn_msg_mean``)."""
        return _mvn_msg_mean(np.asarray(sum_x, float), count, np.asarray(prec, float))

    def msg_prec(self, sum_x, sum_xx, count, mean):
        """To the precision: coefficients on (Lambda, log|Lambda|) = (-1/2 scatter, N/2)."""
        return _mvn_msg_prec(_mvn_scatter(np.asarray(sum_x, float), np.asarray(sum_xx, float),
                                          count, np.asarray(mean, float)), count)

    def msg_cov(self, sum_x, sum_xx, count, mean):
        """To the covariance: coefficients on (Sigma^-1, log|Sigma|) = (-1/2 scatter, -N/2)."""
        return _mvn_msg_cov(_mvn_scatter(np.asarray(sum_x, float), np.asarray(sum_xx, float),
                                         count, np.asarray(mean, float)), count)
