"""Stepwise and incremental EM from the same generated module (issue 7, items 1-2).

The lecture notes (Rai CS698X, "Batch EM in terms of ESS", "Online EM as stepwise EM",
"Online EM as incremental EM") write EM as three calls on expected sufficient statistics:
``e_step`` of a chunk returns sums over its items, ``merge_stats`` adds two chunks'
statistics, ``m_step`` maps statistics to params. The drivers here only combine them:

- **stepwise** (Cappé & Moulines 2009): after each minibatch of B items (a shuffled pass
  in bounded memory: spans of 16 B items in random order, shuffled within; the fit's
  ``seed``), the running statistics move towards the minibatch's, scaled to the
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
pass and is comparable to batch EM's. Memory is set by the minibatch and evaluation
chunks, not by N: the start is the module's ``init`` on a random subset of the items, and
``result.posterior[latent]`` (N, K) is computed when first asked for. Models whose local factors need a group's items
together (LDA's documents) are for stochastic VI (later work) and are refused here.
"""
from __future__ import annotations

import numpy as np

from .batch import (ConvergenceWarning, FitResult, ObjectiveDecreaseWarning, _rel_change,
                    factor_posterior, given_params)

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
    rng = np.random.default_rng(seed)
    centre = getattr(mod, "centring", lambda d, hyp: {})(data, h)   # one pass, O(1) memory
    step = _Minibatches(mod, data, h, items, size, centre)
    params = _start(step, init, reg, rng, B)
    trace, notes = [], []
    converged = False
    if method == "stepwise":
        sweep = _StepwisePass(step, kappa, B, rng)
    else:
        sweep = _IncrementalPass(step, B, params, reg)
    for it in range(max_iter):
        params = sweep(params, reg)
        value = step.loglik(params) + mod.log_prior(params, h)
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
    return FitResult(params, _LazyPosterior(step, params), np.array(trace), len(trace),
                     converged, notes)


def _start(step, init, reg, rng, B) -> dict:
    """The starting params: those ``init`` gives, the rest from the module's ``init`` on a
    random subset of the items (at most max(10 B, 20000): memory set by it, not by N)."""
    mod, h = step.mod, step.h
    if init and getattr(mod, "LATENT", None) in init:   # responsibilities of every item
        st = mod.prepare(step.data, h, step.centre)
        given, complete = given_params(mod, st, h, reg, init)
    else:
        given, complete = given_params(mod, None, h, reg, init)
    if complete:
        return dict(given)
    size = max(10 * B, 20000)   # distinct random items (memory O(size), not O(N))
    idx = np.arange(step.n) if step.n <= size else np.unique(rng.integers(step.n, size=size))
    chunk, hc = step.chunk(idx)
    st = mod.prepare(chunk, hc, step.centre)
    return {**mod.init(st, chunk, hc, rng, reg), **given}


class _LazyPosterior(dict):
    """result.posterior: the q factors at once, the (N, K) responsibilities of the items
    only when asked for (a streamed fit keeps memory bounded by its blocks)."""

    def __init__(self, step, params):
        super().__init__(factor_posterior(step.mod, params, step.h))
        self._step, self._params = step, params

    def __missing__(self, key):
        step = self._step
        if key != step.mod.LATENT:
            raise KeyError(key)
        self[key] = step.responsibilities(self._params)
        return self[key]

    def __contains__(self, key):
        return dict.__contains__(self, key) or key == self._step.mod.LATENT

    def keys(self):
        return [*dict.keys(self), *([self._step.mod.LATENT] if self._step.mod.LATENT
                                    and not dict.__contains__(self, self._step.mod.LATENT)
                                    else [])]


class _Minibatches:
    """The E-step of a set of items: their statistics and log likelihood."""

    def __init__(self, mod, data, h, items, size, centre):
        self.mod, self.data, self.h, self.items, self.size = mod, data, h, items, size
        self.centre = centre
        self.n = int(h[size])

    EVAL = 65536   # items per chunk of the per-pass evaluation

    def chunk(self, idx):
        """(the data of items ``idx``, sorted so that a memmap reads forward; the dims)."""
        chunk = {k: (np.asarray(v[idx]) if k in self.items else v) for k, v in self.data.items()}
        return chunk, {**self.h, self.size: len(idx)}

    def e_step(self, idx, params):
        chunk, hc = self.chunk(np.sort(idx))
        st = self.mod.prepare(chunk, hc, self.centre)
        return st, self.mod.e_step(st, params, hc)

    def stats(self, idx, params):
        """The statistics of items ``idx`` at ``params``."""
        return self.e_step(idx, params)[1][1]

    def ranges(self):
        return (np.arange(lo, min(self.n, lo + self.EVAL)) for lo in range(0, self.n, self.EVAL))

    def loglik(self, params) -> float:
        """log p(data | params) (the data's part of the ELBO), chunk by chunk."""
        return float(sum(self.e_step(idx, params)[1][2] for idx in self.ranges()))

    def responsibilities(self, params):
        """The (N, K) responsibilities of every item, chunk by chunk."""
        out = []
        for idx in self.ranges():
            st, (resp, _, _) = self.e_step(idx, params)
            out.append(getattr(self.mod, "item_resp", lambda st, r: r)(st, resp))
        return np.concatenate(out)


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

    def minibatches(self):
        """A shuffled pass in bounded memory: spans of 16 B items in random order, the
        items of each span permuted and cut into minibatches of B."""
        n, span = self.step.n, 16 * self.B
        for start in self.rng.permutation(-(-n // span)) * span:
            rows = start + self.rng.permutation(min(span, n - start))
            for lo in range(0, len(rows), self.B):
                yield rows[lo:lo + self.B]

    def __call__(self, params, reg):
        n = self.step.n
        for idx in self.minibatches():
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
