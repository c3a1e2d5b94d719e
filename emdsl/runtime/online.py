"""Stepwise and incremental EM from the same generated module (issue 7, items 1-2).

The lecture notes (Rai CS698X, "Batch EM in terms of ESS", "Online EM as stepwise EM",
"Online EM as incremental EM") write EM as three calls on expected sufficient statistics:
``e_step`` of a chunk returns sums over its items, ``merge_stats`` adds two chunks'
statistics, ``m_step`` maps statistics to params. The drivers here only combine them:

- **stepwise** (Cappé & Moulines 2009): after each minibatch of B items (a shuffled pass,
  the fit's ``seed``), the running statistics move towards the minibatch's, scaled to the
  data set, s <- (1 - g_t) s + g_t (N / B) s_hat, g_t = (t + 2)^-kappa (kappa in
  (0.5, 1]; the first minibatch sets s), and the M-step follows. A prior (MAP, or a
  variational factor's) enters the M-step once, with s standing for the whole data set:
  for a conjugate variational model this is stochastic variational inference's step in
  the natural parameters (Hoffman et al. 2013) with rho_t = g_t.
- **incremental** (Neal & Hinton 1998): the items are split into blocks of B; the
  statistics of every block are kept, one block is recomputed at the current params at a
  time, the total updated (s - s_b + s_b') and the M-step follows. Each step raises the
  free energy F(q, theta), so EM's guarantee holds step by step.

A minibatch holds some items of the latent's plate: the data indexed by it are sliced by
rows (a memmap reads only those rows), the others passed whole, and every minibatch is
prepared with the fit's one centre, so that statistics of different minibatches add up.
``max_iter`` counts passes; after each pass the objective is evaluated exactly (a batch
E-step over the data, block by block, no M-step), so ``result.elbo`` has one entry per
pass and is comparable to batch EM's. Models whose local factors need a group's items
together (LDA's documents) are for stochastic VI (later work) and are refused here.
"""
from __future__ import annotations

import numpy as np

from .batch import (ConvergenceWarning, FitResult, ObjectiveDecreaseWarning, _rel_change,
                    given_params, posterior_of)

METHODS = ("stepwise", "incremental")


def run(mod, data: dict, h: dict, *, method: str, items: tuple, size: str, batch_size=None,
        kappa=0.6, seed=0, max_iter=100, tol=1e-8, init=None, reg=1e-6, verbose=False,
        callback=None, n_init=1, local_iter=None) -> FitResult:
    """Fit ``mod`` by stepwise or incremental EM. ``items``: the data indexed by the
    latent's plate, whose size is dim ``size``; the rest as :func:`batch.run`."""
    if getattr(mod, "LOCAL_FACTORS", ()):
        raise ValueError(f"method '{method}' updates the global factors from minibatches of "
                         f"items, but {mod.LOCAL_FACTORS[0]!r} is a factor per group of items "
                         "(use method='batch'; stochastic VI for such models is later work)")
    n = int(h[size])
    B = int(batch_size or (min(n, 1000) if method == "stepwise" else -(-n // 10)))
    st = mod.prepare(data, h)
    rng = np.random.default_rng(seed)
    given, complete = given_params(mod, st, h, reg, init)
    params = dict(given) if complete else {**mod.init(st, data, h, rng, reg), **given}
    step = _Minibatches(mod, data, h, items, size, st["centre"])
    trace, notes = [], []
    converged = False
    if method == "stepwise":
        sweep = _StepwisePass(step, kappa, B, rng)
    else:
        sweep = _IncrementalPass(step, B, params, reg)
    for it in range(max_iter):
        params = sweep(params, reg)
        _, _, loglik = mod.e_step(st, params, h)
        value = loglik + mod.log_prior(params, h)
        if not np.isfinite(value):
            raise FloatingPointError(f"the objective became {value} after pass {it + 1} of "
                                     f"{method} EM; try a larger batch_size or reg")
        trace.append(value)
        if verbose:
            print(f"[{method}] pass {it + 1:4d}  objective {value:.10g}")
        if callback is not None:
            callback(it, value, params)
        if len(trace) > 1:
            prev = trace[-2]
            if method == "incremental" and value < prev - 1e-9 * abs(prev):
                notes.append((ObjectiveDecreaseWarning,
                              f"the objective decreased from {prev:.10g} to {value:.10g} in "
                              f"pass {it + 1} of incremental EM; please report this model"))
            if abs(value - prev) < tol * abs(value):
                converged = True
                break
    if not converged:
        notes.append((ConvergenceWarning,
                      f"{method} EM did not converge in {max_iter} passes (last relative "
                      f"change {_rel_change(trace):.3g} > tol={tol:g}); increase max_iter or "
                      "batch_size, or loosen tol"))
    resp = mod.e_step(st, params, h)[0]
    return FitResult(params, posterior_of(mod, st, params, h, resp), np.array(trace),
                     len(trace), converged, notes)


class _Minibatches:
    """The E-step of a set of items: their statistics and log likelihood."""

    def __init__(self, mod, data, h, items, size, centre):
        self.mod, self.data, self.h, self.items, self.size = mod, data, h, items, size
        self.centre = centre
        self.n = int(h[size])

    def stats(self, idx, params):
        """(statistics of items ``idx`` (sorted: a memmap reads forward), their count)."""
        idx = np.sort(idx)
        chunk = {k: (np.asarray(v[idx]) if k in self.items else v) for k, v in self.data.items()}
        hc = {**self.h, self.size: len(idx)}
        st = self.mod.prepare(chunk, hc, self.centre)
        return self.mod.e_step(st, params, hc)[1]


def _scaled(stats: dict, factor: float) -> dict:
    """Statistics times ``factor`` (the shifts, the fit's own centre, unchanged)."""
    return {k: (v if k.startswith("shift_") else np.asarray(v, dtype=float) * factor)
            for k, v in stats.items()}


def _mix(old: dict, new: dict, g: float) -> dict:
    """(1 - g) old + g new, field by field (the shifts agree and are kept)."""
    return {k: (v if k.startswith("shift_") else (1.0 - g) * np.asarray(v, dtype=float)
                + g * np.asarray(new[k], dtype=float)) for k, v in old.items()}


class _StepwisePass:
    """One shuffled pass of stepwise EM (Cappé & Moulines 2009, eq. 7)."""

    def __init__(self, step, kappa, B, rng):
        if not 0.5 < kappa <= 1.0:
            raise ValueError(f"kappa must be in (0.5, 1] for stepwise EM, got {kappa}")
        self.step, self.kappa, self.B, self.rng = step, kappa, B, rng
        self.s, self.t = None, 0

    def __call__(self, params, reg):
        n = self.step.n
        order = self.rng.permutation(n)
        for lo in range(0, n, self.B):
            idx = order[lo:lo + self.B]
            s_hat = _scaled(self.step.stats(idx, params), n / len(idx))
            if self.s is None:
                self.s = s_hat
            else:
                self.s = _mix(self.s, s_hat, (self.t + 2.0) ** -self.kappa)
            self.t += 1
            params = self.step.mod.m_step(self.s, params, self.step.h, reg)
        return params


class _IncrementalPass:
    """One pass of incremental EM over fixed blocks (Neal & Hinton 1998): the first
    computes every block's statistics at the starting params (a batch E-step, then one
    M-step); the others recompute one block at a time."""

    def __init__(self, step, B, params, reg):
        self.step = step
        self.blocks = [np.arange(lo, min(step.n, lo + B)) for lo in range(0, step.n, B)]
        self.kept = None
        self.total = None

    def __call__(self, params, reg):
        mod = self.step.mod
        if self.kept is None:
            self.kept = [self.step.stats(b, params) for b in self.blocks]
            self.total = self._sum(self.kept)
            return mod.m_step(self.total, params, self.step.h, reg)
        self.total = self._sum(self.kept)   # afresh each pass: no drift from the updates
        for i, b in enumerate(self.blocks):
            new = self.step.stats(b, params)
            self.total = {k: (v if k.startswith("shift_") else v - self.kept[i][k] + new[k])
                          for k, v in self.total.items()}
            self.kept[i] = new
            params = mod.m_step(self.total, params, self.step.h, reg)
        return params

    def _sum(self, stats):
        total = stats[0]
        for s in stats[1:]:
            total = self.step.mod.merge_stats(total, s)
        return total
