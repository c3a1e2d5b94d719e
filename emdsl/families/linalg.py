"""Batched SPD linear algebra shared by the matrix families (numpy only).

Every function takes stacks of matrices (..., D, D).  No explicit inverse where a solve
serves; log-determinants come from Cholesky factors.  These functions are also copied
into generated modules (see ``runtime_source``), so they use only ``np``.
"""
from __future__ import annotations

import numpy as np


def _spd_chol(S):
    """Cholesky factors (..., D, D) of SPD matrices, with an error that gives advice."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise FloatingPointError(
            "a covariance or precision is not positive definite (a component may have "
            "collapsed onto a few points); increase the `reg` fit option, e.g. reg=1e-3"
        ) from None


def _spd_logdet(S):
    """log |S| for SPD S (..., D, D) -> (...)."""
    return 2.0 * np.log(np.diagonal(_spd_chol(S), axis1=-2, axis2=-1)).sum(-1)


def _spd_inv(S):
    """S^-1 for SPD S (..., D, D), through its Cholesky factor (symmetric result): for the
    callers that need the matrix itself (a natural parameter), not a solve with it."""
    Linv = np.linalg.inv(_spd_chol(S))   # triangular, well conditioned as S's square root
    return np.swapaxes(Linv, -1, -2) @ Linv


def _triu(D, _cache={}):
    """Row and column indices (i, j), i <= j, of the upper triangle of a D x D matrix, row
    by row (np.triu_indices, built without its D x D mask), and the coefficient of each
    packed x_i x_j in x^T A x for a symmetric A (1 on the diagonal, 2 off it).

    Cached by D, as read-only arrays: the E-step asks for them every iteration, where
    building them cost as much as the rest of the natural parameters at small D."""
    if D not in _cache:
        rows = np.repeat(np.arange(D), np.arange(D, 0, -1))
        starts = np.concatenate([[0], np.cumsum(np.arange(D, 1, -1))])  # packed offset of row i
        cols = np.arange(len(rows)) - starts[rows] + rows
        coef = np.where(rows == cols, 1.0, 2.0)
        for a in (rows, cols, coef):
            a.flags.writeable = False
        _cache[D] = rows, cols, coef
    return _cache[D]


def _sym(S):
    """The symmetric part of S (..., D, D)."""
    return 0.5 * (S + np.swapaxes(S, -1, -2))


def _outer(a, b):
    """a b^T for vectors (..., D) -> (..., D, D)."""
    return a[..., :, None] * b[..., None, :]


def multi_digamma(a, D):
    """sum_{i=1..D} digamma(a + (1 - i) / 2), the derivative of log Gamma_D(a)."""
    from scipy.special import digamma
    a = np.asarray(a, dtype=float)
    return sum(digamma(a + (1 - i) / 2) for i in range(1, D + 1))


def log_multigamma(a, D):
    """log Gamma_D(a) (the multivariate gamma function), elementwise in a."""
    from scipy.special import gammaln
    a = np.asarray(a, dtype=float)
    return D * (D - 1) / 4 * np.log(np.pi) + sum(gammaln(a + (1 - i) / 2)
                                                  for i in range(1, D + 1))


RUNTIME = (_spd_chol, _spd_logdet, _spd_inv, _sym, _outer, _triu)
