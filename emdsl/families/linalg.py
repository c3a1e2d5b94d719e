"""Batched SPD linear algebra shared by the matrix families (numpy only).

Every function takes stacks of matrices (..., D, D).  No explicit inverse where a solve
serves; log-determinants come from Cholesky factors.
"""
from __future__ import annotations

import numpy as np
from scipy.special import multigammaln


def chol(S):
    """Cholesky factors (..., D, D) of SPD matrices; LinAlgError if one is not SPD."""
    return np.linalg.cholesky(S)


def logdet(S):
    """log |S| for SPD S (..., D, D) -> (...)."""
    return 2.0 * np.log(np.diagonal(chol(S), axis1=-2, axis2=-1)).sum(-1)


def inv_spd(S):
    """S^-1 for SPD S (..., D, D), through its Cholesky factor (symmetric result)."""
    L = chol(S)
    eye = np.broadcast_to(np.eye(S.shape[-1]), S.shape)
    Linv = np.linalg.solve(L, eye)
    return np.swapaxes(Linv, -1, -2) @ Linv


def sym(S):
    return 0.5 * (S + np.swapaxes(S, -1, -2))


def outer(a, b):
    """a b^T for vectors (..., D) -> (..., D, D)."""
    return a[..., :, None] * b[..., None, :]


def trace_prod(A, B):
    """tr(A B) for (..., D, D) stacks -> (...)."""
    return np.einsum("...ij,...ji->...", A, B)


def multi_digamma(a, D):
    """sum_{i=1..D} digamma(a + (1 - i) / 2), the derivative of log Gamma_D(a)."""
    from scipy.special import digamma
    a = np.asarray(a, dtype=float)
    return sum(digamma(a + (1 - i) / 2) for i in range(1, D + 1))


def log_multigamma(a, D):
    """log Gamma_D(a) (the multivariate gamma function), elementwise in a."""
    a = np.asarray(a, dtype=float)
    return np.vectorize(lambda v: multigammaln(v, D))(a) if a.ndim else multigammaln(float(a), D)
