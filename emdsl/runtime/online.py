"""Stepwise and incremental EM from the same generated module (issue 7, items 1-2).

The lecture notes (Rai CS698X, "Batch EM in terms of ESS", "Online EM as stepwise EM",
"Online EM as incremental EM") write EM as three calls on expected sufficient statistics:
``e_step`` of a chunk returns sums over its items, ``merge_stats`` adds two chunks'
statistics, ``m_step`` maps statistics to params. The drivers here only combine them:

- **stepwise** (Cappé & Moulines 2009): after each minibatch of B items (a shuffled pass
  in bounded memory: spans of 16 B items in random order, shuffled within; the fit's
  ``seed``), the running statistics move towards the minibatch's, scaled to the
  data set, s <- (1 - g_t) s + g_t (N / B) s_hat, g_t = (t + 2)^-kappa (kappa in
  (0.5, 1]; s starts as the whole data's statistics at the start, one E-step pass, so a
  category absent from the first minibatch keeps its mass), and the M-step follows. A
  prior (MAP, or a variational factor's) enters the M-step once, with s standing for
  the whole data set:
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
pass and is comparable to batch EM's - except SVI with local factors, whose entries are
each pass's progressive estimate (``svi.py``; the result's algorithm is "SVI" and its
objective_name says so). Data come from a source (``sources.py``): arrays
or memmaps in memory, or a stream of chunks (``emdsl.chunks``), which also takes
``method="batch"``: each iteration sums every chunk's statistics at the same params (the
objective at those params in the same pass) and takes one M-step, batch EM exactly.
Memory is set by the minibatch and evaluation chunks, not by N: the start is the module's
``init`` on a random subset of the items, and ``result.posterior[latent]`` (N, K) is
computed when first asked for. Models whose local factors need a group's items together
(LDA's documents) take ``method="svi"`` (``svi.py``: a pass's objective is its
progressive estimate of the ELBO), or batch CAVI in memory or over chunks or partitions of
whole groups (``grouped.py``).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .batch import (ConvergenceWarning, FitResult, ObjectiveDecreaseWarning, _rel_change,
                    factor_posterior, given_params, settled)
from .sources import count_items


KAPPA = {"stepwise": 0.6, "svi": 0.7}   # default step size exponents
DELAY = 10.0                             # SVI's default delay (scikit-learn's learning_offset)


class DriverError(ValueError):
    """A fit option or a combination the online drivers do not take (a user error)."""


def run(mod, source, *, method: str, batch_size=None, kappa=None, delay=None, seed=0,
        max_iter=100, tol=1e-6, init=None, reg=1e-6, verbose=False, callback=None, n_init=1,
        local_iter=100, checkpoint=None, resume=None) -> FitResult:
    """Fit ``mod`` by ``method`` over the items of ``source`` (an ArraySource or a
    StreamSource); the options as :func:`batch.run`; the checkpoints hold the driver's
    state and the random generator's at the end of a pass."""
    has_groups = getattr(mod, "LOCAL_GROUP", None) is not None
    grouped = method == "svi" and has_groups
    partitioned = method == "batch" and has_groups and hasattr(source, "grouped")
    if getattr(mod, "LOCAL_FACTORS", ()) and not (grouped or partitioned):
        raise DriverError(f"method '{method}' over minibatches or chunks of items updates the "
                         f"global factors from part of the data, but "
                         f"{mod.LOCAL_FACTORS[0]!r} is a factor per group of items (fit it "
                         "in memory with method='batch' or 'svi', or by batch CAVI over "
                         "chunks or partitions of whole groups)")
    if grouped and not hasattr(source, "data"):
        raise DriverError("method 'svi' takes the data in memory (minibatches of groups)")
    h, n = source.h, source.n
    B = int(batch_size or {"stepwise": min(n, 1000), "svi": 128}.get(method, -(-n // 10)))
    kappa = kappa if kappa is not None else KAPPA.get(method, KAPPA["stepwise"])
    delay = delay if delay is not None else DELAY
    rng = np.random.default_rng(seed)
    if n_init != 1:
        raise DriverError(f"n_init > 1 takes method='batch' with the data in memory ({method} "
                          "over minibatches, chunks or partitions runs one start)")
    if resume is None:
        start_items = 20000 if method == "batch" else max(10 * B, 20000)
        params = _start(source, init, reg, rng, start_items)
    if grouped:
        from .svi import SVIPass
        sweep = SVIPass(source, kappa, delay, B, rng, local_iter)
    elif partitioned:   # batch CAVI over partitions of whole groups, their local factors kept
        from .grouped import GroupedBatchPass, local_names
        sweep = GroupedBatchPass(source, local_iter, reg, params if resume is None else {})
        if resume is None:
            params = {k: v for k, v in params.items() if k not in local_names(mod)}
    else:   # SVI without local factors: stepwise with rho_t = (delay + t)^-kappa
        sweep = {"stepwise": _StepwisePass(source, kappa, B, rng),
                 "svi": _StepwisePass(source, kappa, B, rng, delay),
                 "incremental": _IncrementalPass(source, B),
                 "batch": _BatchPass(source)}[method]
    name = getattr(mod, "ALGORITHM", "EM") if method == "batch" else f"{method} EM"
    trace, notes = [], []
    if resume is not None:
        rng.bit_generator.state = resume["rng"]
        params = {k: np.asarray(v) for k, v in resume["params"].items()}
        trace = list(resume["trace"])
        sweep.restore(resume)
    converged = False
    for it in range(resume["iteration"] if resume else 0, max_iter):
        if method == "batch":   # the objective at params, then (unless converged) the M-step
            value, stats = sweep.evaluate(params)
        elif grouped:   # every group's local factors at the new global ones
            value, params = sweep.objective(sweep(params, reg))
        else:
            params = sweep(params, reg)
            value = source.loglik(params) + mod.log_prior(params, h)
        if not np.isfinite(value):
            raise FloatingPointError(f"the objective became {value} in pass {it + 1} of "
                                     f"{name}; try a larger batch_size or reg")
        trace.append(value)
        if verbose:
            print(f"[{method}] pass {it + 1:4d}  objective {value:.10g}")
        if callback is not None:
            callback(it, value, params)
        if len(trace) > 1:
            prev = trace[-2]
            if method in ("batch", "incremental") and value < prev - 1e-9 * abs(prev):
                notes.append((ObjectiveDecreaseWarning,
                              f"the objective decreased from {prev:.10g} to {value:.10g} in "
                              f"pass {it + 1} of {name}; please report this model"))
            if settled(value, prev, tol):
                converged = True
                break
        if method == "batch":
            params = sweep.m_step(stats, params, reg)
        if checkpoint is not None and checkpoint.due(it + 1):
            checkpoint.save(it + 1, params, trace, rng, **sweep.state())
    if not converged:
        notes.append((ConvergenceWarning,
                      f"{name} did not converge in {max_iter} passes (last relative "
                      f"change {_rel_change(trace):.3g} > tol={tol:g}); increase max_iter"
                      + (" or batch_size" if method != "batch" else "") + ", or loosen tol"))
    if partitioned:   # every group's local params, gathered once
        params = sweep.params(params, converged)
        source = _GroupedPosteriorSource(source, sweep)
    algorithm = "SVI" if grouped else getattr(mod, "ALGORITHM", "EM")   # (its trace: estimates)
    return FitResult(params, _LazyPosterior(source, params), np.array(trace), len(trace),
                     converged, notes, algorithm)


def _start(source, init, reg, rng, size) -> dict:
    """The starting params: those ``init`` gives, the rest from the module's ``init`` on a
    subset of at most ``size`` items (max(10 B, 20000) for minibatches of B, 20000 for
    batch passes; a random subset in memory, the leading chunks of a stream, the first
    whole): memory set by it, not by N."""
    mod, h = source.mod, source.h
    if init and getattr(mod, "LATENT", None) in init:   # responsibilities of every item
        if not hasattr(source, "data"):
            raise DriverError("init with responsibilities needs the data in memory as "
                              "numpy arrays or memmaps")
        st = mod.prepare(source.data, h, source.centre)
        given, complete = given_params(mod, st, h, reg, init)
    else:
        given, complete = given_params(mod, None, h, reg, init)
    if complete:
        return dict(given)
    chunk = source.start(rng, size)
    hc = source.dims(count_items(chunk, source.items))
    st = mod.prepare(chunk, hc, source.centre)
    start = mod.init(st, chunk, hc, rng, reg)
    for k, kind in getattr(mod, "PARAM_KINDS", {}).items():
        if kind == "simplex" and k in start:   # a category absent from the subset keeps
            p = np.asarray(start[k], dtype=float)   # some mass (else log 0 on the rest)
            start[k] = (p + 1e-3 / p.shape[-1]) / (1.0 + 1e-3)
    return {**start, **given}


class _LazyPosterior(Mapping):
    """result.posterior: the q factors at once, the (N, K) responsibilities of the items
    computed when first read (a streamed fit keeps memory bounded by its blocks); a
    mapping like the batch fit's dict (pickled and copied as a plain dict)."""

    def __init__(self, source, params):
        self._items = factor_posterior(source.mod, params, source.h)
        self._source, self._params = source, params
        self._latent = source.mod.LATENT
        if getattr(source, "eager_posterior", False) and self._latent:
            self._items[self._latent] = source.responsibilities(params)

    def __getitem__(self, key):
        if key == self._latent and key not in self._items:
            with np.errstate(divide="ignore", under="ignore"):   # as during the fit: log 0
                self._items[key] = self._source.responsibilities(self._params)
        return self._items[key]

    def __iter__(self):
        yield from self._items
        if self._latent and self._latent not in self._items:
            yield self._latent

    def __len__(self):
        return len(self._items) + (1 if self._latent and self._latent not in self._items
                                   else 0)

    def copy(self) -> dict:
        return dict(self.items())

    def __reduce__(self):
        return (dict, (dict(self.items()),))

    def __repr__(self):
        return f"posterior({', '.join(map(repr, self))})"


class _GroupedPosteriorSource:
    """A source whose responsibilities come from a grouped pass (each partition's items
    at its groups' local params)."""

    def __init__(self, source, sweep):
        self.mod, self.h = source.mod, source.h
        self.eager_posterior = getattr(source, "eager_posterior", False)
        self.responsibilities = sweep.responsibilities


class RunningStatistics:
    """Statistics s moved towards each minibatch's, scaled to the data set:
    s <- (1 - g_t) s + g_t (n / m) s_hat, g_t = (delay + t)^-kappa (stepwise EM: delay 2;
    SVI: its tau). Entries whose shape changes between minibatches (a group's local
    statistics) are the newest minibatch's; the shifts are the fit's own."""

    def __init__(self, kappa, delay):
        self.kappa, self.delay = kappa, delay
        self.s, self.t = None, 0

    def state(self) -> dict:
        return {"arrays": {"stats": self.s} if self.s is not None else {},
                "values": {"t": self.t}}

    def restore(self, saved):
        self.s, self.t = saved.get("stats"), saved["values"]["t"]

    def step(self, stats: dict, scale: float) -> dict:
        g = (self.delay + self.t) ** -self.kappa
        self.s = {k: (v if k.startswith("shift_") else
                      np.asarray(v, dtype=float) * scale if np.shape(v) != np.shape(self.s[k])
                      else (1.0 - g) * self.s[k] + g * scale * np.asarray(v, dtype=float))
                  for k, v in stats.items()}
        self.t += 1
        return self.s


class _StepwisePass(RunningStatistics):
    """One shuffled pass of stepwise EM (Cappé & Moulines 2009, eq. 7)."""

    def __init__(self, source, kappa, B, rng, delay=2.0):
        super().__init__(kappa, delay)
        self.source, self.B, self.rng = source, B, rng

    def __call__(self, params, reg):
        src = self.source
        if self.s is None:   # the whole data's statistics at the start (one E-step pass)
            self.s = src.statistics(params)[0]
        for chunk in src.minibatches(self.rng, self.B):
            s = self.step(src.stats(chunk, params), src.n / count_items(chunk, src.items))
            params = src.mod.m_step(s, params, src.h, reg)
        return params


class _IncrementalPass:
    """One pass of incremental EM over fixed blocks (Neal & Hinton 1998; a stream's
    chunks are its blocks): the first computes every block's statistics at the starting
    params (a batch E-step, then one M-step); the others recompute one block at a time."""

    def __init__(self, source, B):
        self.source, self.B = source, B
        self.kept = None

    def state(self) -> dict:
        return {"arrays": {"kept": self.kept} if self.kept is not None else {}}

    def restore(self, saved):
        self.kept = saved.get("kept")
        blocks = sum(1 for _ in self.source.blocks(self.B))
        if self.kept is not None and len(self.kept) != blocks:
            raise DriverError(f"the checkpoint holds {len(self.kept)} blocks of statistics, "
                              f"this data gives {blocks}: resume with the same chunking")

    def __call__(self, params, reg):
        src = self.source
        if self.kept is None:
            self.kept = [src.stats(c, params) for c in src.blocks(self.B)]
            return src.mod.m_step(_sum(src.mod, self.kept), params, src.h, reg)
        total = _sum(src.mod, self.kept)   # afresh each pass: no drift from the updates
        for i, chunk in enumerate(src.blocks(self.B)):
            new = src.stats(chunk, params)
            total = {k: (v if k.startswith("shift_") else v - self.kept[i][k] + new[k])
                     for k, v in total.items()}
            self.kept[i] = new
            params = src.mod.m_step(total, params, src.h, reg)
        return params


class _BatchPass:
    """Batch EM over the chunks of a source: their statistics summed at one params."""

    def __init__(self, source):
        self.source = source

    def m_step(self, stats, params, reg):
        return self.source.mod.m_step(stats, params, self.source.h, reg)

    def state(self) -> dict:
        return {}

    def restore(self, saved):
        pass

    def evaluate(self, params):
        """(the objective at ``params``, the statistics of all the items)."""
        total, loglik = self.source.statistics(params)
        return loglik + self.source.mod.log_prior(params, self.source.h), total


def _sum(mod, stats: list) -> dict:
    total = stats[0]
    for s in stats[1:]:
        total = mod.merge_stats(total, s)
    return total
