"""The Normal-Wishart q(mu, Lambda) = N(mu | m, (beta Lambda)^-1) W(Lambda | W, nu): the
variational posterior of a Gaussian's mean and precision (Bishop, PRML §10.2).

The Wishart has scale matrix W (E[Lambda] = nu W), as ``_wishart_logpdf(X, scale, df)``.
Shapes: mean (G, D), beta (G,), scale (G, D, D), df (G,); a prior's parameters may drop
the leading G (mean0 (D,), beta0 scalar, scale0 (D, D), df0 scalar) and broadcast.

As an exponential family on (Lambda mu, mu^T Lambda mu, Lambda, log|Lambda|) its natural
parameters are (beta m, -beta/2, -1/2 (W^-1 + beta m m^T), (nu - D)/2), and the
likelihood of a point x with weight r adds r (x, -1/2, -1/2 x x^T, 1/2): the conjugate
update ``_nw_posterior``.
"""
from __future__ import annotations

import numpy as np

from .linalg import _outer, _spd_inv, _spd_logdet
from .mvnormal import _mvn_logpdf, _mvn_packed_eta, _mvn_scatter
from .wishart import _wishart_logpdf


# ----------------------------------------------------------------------------- runtime
# Functions copied into generated modules (numpy / scipy.special only).
def _wishart_expected_logdet(scale, df):
    """E[log|Lambda|] under W(Lambda | scale, df): scale (..., D, D), df (...) -> (...),
    sum_{i=1..D} digamma((df + 1 - i)/2) + D log 2 + log|scale|."""
    from scipy.special import digamma
    scale = np.asarray(scale, dtype=float)
    D = scale.shape[-1]
    df = np.asarray(df, dtype=float)
    psi = sum(digamma(0.5 * (df + 1 - i)) for i in range(1, D + 1))
    return psi + D * np.log(2.0) + _spd_logdet(scale)


def _nw_expected_natural(mean, beta, scale, df):
    """The expected natural parameters of N(x | mu, Lambda^-1) under a Normal-Wishart q:
    mean (G, D), beta (G,), scale (G, D, D), df (G,) -> eta (G, P), A (G,) with
    E_q[log N(x | mu, Lambda^-1)] = eta . t(x) - A for the packed t(x) of ``_mvn_stats``
    (the packing of ``_mvn_natural``: off-diagonal quadratic coefficients doubled).
    eta = (E[Lambda mu], -1/2 E[Lambda]) = (nu W m, -nu/2 W),
    A = 1/2 (D/beta + nu m^T W m) - 1/2 E[log|Lambda|] + D/2 log(2 pi)."""
    mean, scale = np.asarray(mean, dtype=float), np.asarray(scale, dtype=float)
    D = mean.shape[1]
    beta = np.asarray(beta, dtype=float)
    df = np.asarray(df, dtype=float)
    ELam = np.reshape(df, (-1, 1, 1)) * scale
    eta, quad = _mvn_packed_eta(ELam, mean)
    A = (0.5 * (D / beta + quad)
         - 0.5 * _wishart_expected_logdet(scale, df) + 0.5 * D * np.log(2 * np.pi))
    return eta, A


def _nw_posterior(count, sum_x, sum_xx, mean0, beta0, scale0, df0):
    """The conjugate Normal-Wishart update from expected sufficient statistics.

    count (G,) = sum_n r_n, sum_x (G, D) = sum_n r_n x_n, sum_xx (G, D, D) = sum_n r_n x_n
    x_n^T; prior mean0 (D,) or (G, D), beta0 () or (G,), scale0 (D, D) or (G, D, D), df0
    () or (G,) -> (mean (G, D), beta (G,), scale (G, D, D), df (G,)):
    beta = beta0 + N, mean = (beta0 m0 + sum_x) / beta, df = df0 + N,
    scale^-1 = scale0^-1 + S + beta0 N / beta (xbar - m0)(xbar - m0)^T, with xbar = sum_x
    / N and S the scatter about xbar (a component with N = 0 gets its prior back).  As
    scikit-learn's BayesianGaussianMixture (covariances_ = scale^-1 / df,
    covariance_prior = scale0^-1)."""
    count = np.asarray(count, dtype=float)
    sum_x, sum_xx = np.asarray(sum_x, dtype=float), np.asarray(sum_xx, dtype=float)
    mean0, beta0 = np.asarray(mean0, dtype=float), np.asarray(beta0, dtype=float)
    beta = beta0 + count
    mean = (beta0[..., None] * mean0 + sum_x) / beta[..., None]
    xbar = sum_x / (count[..., None] + 1e-300)
    d = xbar - mean0
    prec = (_spd_inv(np.asarray(scale0, dtype=float)) + _mvn_scatter(sum_x, sum_xx, count, xbar)
            + (beta0 * count / beta)[..., None, None] * _outer(d, d))
    scale = _spd_inv(0.5 * (prec + np.swapaxes(prec, -1, -2)))
    return mean, beta, 0.5 * (scale + np.swapaxes(scale, -1, -2)), df0 + count


def _nw_kl(mean, beta, scale, df, mean0, beta0, scale0, df0):
    """KL(NW(mean, beta, scale, df) || NW(mean0, beta0, scale0, df0)) -> (G,), all
    constants (shapes as ``_nw_posterior``; the prior's broadcast):
    1/2 [D beta0/beta - D + D log(beta/beta0) + beta0 nu (m - m0)^T W (m - m0)]
    + (nu - nu0)/2 psi_D(nu/2) - log Gamma_D(nu/2) + log Gamma_D(nu0/2)
    + nu0/2 (log|W0| - log|W|) + nu/2 (tr(W0^-1 W) - D)."""
    from scipy.special import digamma, gammaln
    mean, scale = np.asarray(mean, dtype=float), np.asarray(scale, dtype=float)
    mean0, scale0 = np.asarray(mean0, dtype=float), np.asarray(scale0, dtype=float)
    beta, df = np.asarray(beta, dtype=float), np.asarray(df, dtype=float)
    beta0, df0 = np.asarray(beta0, dtype=float), np.asarray(df0, dtype=float)
    D = mean.shape[-1]
    d = mean - mean0
    gauss = 0.5 * (D * beta0 / beta - D + D * np.log(beta / beta0)
                   + beta0 * df * np.einsum("...i,...ij,...j->...", d, scale, d))
    psi = sum(digamma(0.5 * (df + 1 - i)) for i in range(1, D + 1))
    lmg = sum(gammaln(0.5 * (df + 1 - i)) for i in range(1, D + 1))   # log Gamma_D(nu/2),
    lmg0 = sum(gammaln(0.5 * (df0 + 1 - i)) for i in range(1, D + 1))  # the pi term cancels
    tr = np.einsum("...ij,...ji->...", _spd_inv(scale0), scale)
    wish = (0.5 * (df - df0) * psi - lmg + lmg0
            + 0.5 * df0 * (_spd_logdet(scale0) - _spd_logdet(scale)) + 0.5 * df * (tr - D))
    return gauss + wish


RUNTIME = (_wishart_expected_logdet, _nw_expected_natural, _nw_posterior, _nw_kl)


class NormalWishart:
    """Python-level density and sampler of the Normal-Wishart (for tests)."""
    name = "NormalWishart"

    def logpdf(self, mu, Lambda, mean, beta, scale, df):
        """log N(mu | mean, (beta Lambda)^-1) + log W(Lambda | scale, df); mu (..., D),
        Lambda (..., D, D), the parameters broadcast against them -> (...)."""
        Lambda = np.asarray(Lambda, dtype=float)
        prec = np.asarray(beta, dtype=float)[..., None, None] * Lambda
        return _mvn_logpdf(mu, mean, prec=prec) + _wishart_logpdf(Lambda, scale, df)

    def sample(self, rng, mean, beta, scale, df, size=()):
        """Draws (mu (size..., G..., D), Lambda (size..., G..., D, D)): Lambda from
        scipy.stats.wishart, then mu = mean + C^-T z / sqrt(beta) with Lambda = C C^T."""
        import scipy.stats as st
        mean, scale = np.asarray(mean, dtype=float), np.asarray(scale, dtype=float)
        D = mean.shape[-1]
        batch = np.broadcast_shapes(mean.shape[:-1], np.shape(beta), scale.shape[:-2],
                                    np.shape(df))
        size = (size,) if np.isscalar(size) else tuple(size)
        n = int(np.prod(size))
        m = np.broadcast_to(mean, batch + (D,)).reshape(-1, D)
        W = np.broadcast_to(scale, batch + (D, D)).reshape(-1, D, D)
        b = np.broadcast_to(np.asarray(beta, dtype=float), batch).reshape(-1)
        nu = np.broadcast_to(np.asarray(df, dtype=float), batch).reshape(-1)
        mus, lams = [], []
        for k in range(len(b)):
            Lam = np.reshape(st.wishart(df=nu[k], scale=W[k]).rvs(size=n, random_state=rng),
                             (n, D, D))
            CT = np.swapaxes(np.linalg.cholesky(Lam), -1, -2)
            z = rng.standard_normal((n, D, 1))
            mus.append(m[k] + np.linalg.solve(CT, z)[..., 0] / np.sqrt(b[k]))
            lams.append(Lam)
        mu = np.stack(mus, axis=1).reshape(size + batch + (D,))
        Lam = np.stack(lams, axis=1).reshape(size + batch + (D, D))
        return mu, Lam


# What a Normal-Wishart factor q({v}, {p}) contributes to a derivation (plain, LaTeX),
# Bishop PRML eq. 10.60-10.65; N, xbar, S: a component's expected count, mean, scatter.
VB_TEXT = {"MvNormal | Wishart": {
    "expect": ("E[{p} {v}] = nu W m,  E[{p}] = nu W,  E[{v}^T {p} {v}] = D / beta + nu m^T W m,  "
               "E[log|{p}|] = sum_i digamma((nu + 1 - i) / 2) + D log 2 + log|W|",
               r"\mathbb{{E}}[{p}{v}] = \nu W m,\ \mathbb{{E}}[{p}] = \nu W,\ "
               r"\mathbb{{E}}[{v}^\top{p}{v}] = D/\beta + \nu m^\top W m,\ "
               r"\mathbb{{E}}\log|{p}| = \sum_i\psi\big(\tfrac{{\nu+1-i}}2\big) + D\log 2 + \log|W|"),
    "update": ("beta = beta0 + N,  m = (beta0 m0 + N xbar) / beta,  nu = nu0 + N,  "
               "W^-1 = W0^-1 + S + beta0 N / (beta0 + N) (xbar - m0)(xbar - m0)^T",
               r"\beta = \beta_0 + N,\ m = \frac{{\beta_0 m_0 + N\bar x}}{{\beta}},\ "
               r"\nu = \nu_0 + N,\ W^{{-1}} = W_0^{{-1}} + S + \frac{{\beta_0 N}}{{\beta_0 + N}}"
               r"(\bar x - m_0)(\bar x - m_0)^\top"),
    "kl": ("KL = E_q(Lambda)[KL(N(m, (beta {p})^-1) || N(m0, (beta0 {p})^-1))] + "
           "KL(W(W, nu) || W(W0, nu0))",
           r"\mathrm{{KL}} = \mathbb{{E}}_{{q({p})}}\mathrm{{KL}}\big(\mathcal N(m, (\beta {p})^{{-1}})"
           r"\,\|\,\mathcal N(m_0, (\beta_0 {p})^{{-1}})\big) + \mathrm{{KL}}\big(\mathcal W(W,\nu)\,\|\,"
           r"\mathcal W(W_0,\nu_0)\big)"),
}}
