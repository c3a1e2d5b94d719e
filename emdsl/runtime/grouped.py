"""Batch CAVI over partitions of whole groups: models with local factors (LDA's
per-document theta) fitted from a stream of chunks or from dask arrays (issue 7, items
4-5).

A partition holds every item of its groups (documents): its groups are renumbered
0..g-1 and their local factors stay with it (on the Dask worker that holds its data; in
the driver for a stream, g x K numbers per chunk). One iteration of batch CAVI is then

1. in every partition, at the global factors: ``local_fit`` (its groups' local factors
   and their items' q to convergence), ``e_step``, its part of the objective (the data's
   part of the ELBO and -KL(q || prior) of its local factors), and the update of its
   local factors (``m_step(..., only=LOCAL_FACTORS)``); what leaves the partition is the
   statistics of the global factors (the per-group rows of ``LOCAL_STATS`` summed), a
   number and, on Dask, nothing else;
2. in the driver: the statistics summed (a tree of ``merge_stats`` on Dask), -KL of the
   global factors added, the convergence test, and the M-step of the global factors.

Each group's ``local_fit`` result does not depend on the other groups fitted with it, and
every other step is a sum over groups or items, so any partition of the groups gives the
iterates of batch CAVI in memory (to rounding). A group that no partition holds (a
document without tokens) forms one more partition without items.
"""
from __future__ import annotations

import numpy as np

from .batch import item_resp
from .online import DriverError
from .sources import count_items


class GroupError(DriverError):
    """The partitions do not hold whole groups (a user error: the data)."""


def local_names(mod) -> tuple:
    """The params of the local factors ("theta.concentration")."""
    return tuple(f"{v}.{f}" for v in mod.LOCAL_FACTORS for f in mod.Q_FACTORS[v]["fields"])


def global_latents(mod) -> tuple:
    """The latents and params whose terms are global (``only`` of the global M-step)."""
    factors = tuple(v for v in mod.Q_FACTORS if v not in mod.LOCAL_FACTORS)
    return factors + tuple(p for p in mod.PARAMS if "." not in p)


def localise(mod, chunk: dict, h: dict, size: str):
    """(the chunk with its groups renumbered 0..g-1, its dims, the groups' ids (g,))."""
    cov, dim = mod.LOCAL_GROUP
    ids, local = np.unique(np.asarray(chunk[cov], dtype=np.int64), return_inverse=True)
    return ({**chunk, cov: local.reshape(-1)}, {**h, size: len(local), dim: len(ids)}, ids)


def partition_step(mod, chunk, hc, centre, params, local, local_iter, reg):
    """One iteration's work on a localised partition: (the statistics of the global
    factors, its part of the objective, its local params after ``local_fit``, after their
    update). ``local``: its local params, or None (start: the update of its local factors
    from uniform responsibilities, the value local_fit restarts from)."""
    st = mod.prepare(chunk, hc, centre)
    if local is None:
        uniform = np.full((st["n_rows"], int(mod.n_components(hc))),
                          1.0 / mod.n_components(hc))
        local = mod.m_step(mod.expected_stats(st, uniform), params, hc, reg,
                           only=mod.LOCAL_FACTORS)
    p = {**params, **{k: local[k] for k in local_names(mod)}}
    if local_iter:
        p, (_, stats, loglik) = mod.local_fit(st, p, hc, max_iter=local_iter, with_e_step=True)
    else:
        _, stats, loglik = mod.e_step(st, p, hc)
    value = loglik + mod.log_prior(p, hc, only=mod.LOCAL_FACTORS)
    updated = mod.m_step(stats, p, hc, reg, only=mod.LOCAL_FACTORS)
    names = local_names(mod)
    return (global_stats(mod, stats), float(value), {k: p[k] for k in names},
            {k: updated[k] for k in names})


def global_stats(mod, stats: dict) -> dict:
    """The statistics with their per-group rows summed (they add up across partitions)."""
    return {k: (np.asarray(v).sum(axis=0) if k in mod.LOCAL_STATS else v)
            for k, v in stats.items()}


def partition_resp(mod, chunk, hc, centre, params, local):
    """The responsibilities (n, K) of a localised partition's items."""
    st = mod.prepare(chunk, hc, centre)
    resp = mod.e_step(st, {**params, **local}, hc)[0]
    return item_resp(mod, st, resp)


def empty_partition(template: dict, ids: np.ndarray, h: dict, size: str, dim: str):
    """(a chunk without items, its dims) for the groups ``ids`` that no partition holds."""
    chunk = {k: (v[:0] if isinstance(v, np.ndarray) else v) for k, v in template.items()}
    return chunk, {**h, size: 0, dim: len(ids)}


class Groups:
    """Which partition holds which groups, checked: no group in two partitions."""

    def __init__(self, n_groups: int):
        self.owner = np.full(n_groups, -1, dtype=np.int64)
        self.ids: list = []

    def add(self, ids: np.ndarray) -> None:
        i = len(self.ids)
        taken = ids[self.owner[ids] >= 0]
        if len(taken):
            g = int(taken[0])
            raise GroupError(f"group {g} has items in partitions {self.owner[g] + 1} and "
                             f"{i + 1}: each chunk or partition must hold whole groups "
                             "(all the items of a document); sort the items by group and "
                             "cut between groups")
        self.owner[ids] = i
        self.ids.append(ids)

    def missing(self) -> np.ndarray:
        return np.flatnonzero(self.owner < 0)

    def check(self, i: int, ids: np.ndarray) -> None:
        if not np.array_equal(ids, self.ids[i]):
            raise GroupError(f"chunk {i + 1} holds other groups than on the first pass: a "
                             "stream must give the same chunks on every pass")


class GroupedBatchPass:
    """Batch CAVI over the partitions of a source (a stream or dask arrays); the driver's
    interface (``online.run``): ``evaluate``, ``m_step``, ``state`` / ``restore``,
    ``params`` (the result) and ``responsibilities``."""

    def __init__(self, source, local_iter, reg, given: dict):
        mod = source.mod
        self.source, self.mod, self.local_iter, self.reg = source, mod, local_iter, reg
        self.names = local_names(mod)
        self.globals = global_latents(mod)
        self.given = {k: np.asarray(v) for k, v in given.items() if k in self.names}
        self.backend = source.grouped(self)

    def start_local(self, ids):
        """A partition's starting local params: those given (init or a checkpoint) on its
        groups, else None."""
        return {k: v[ids] for k, v in self.given.items()} if self.given else None

    def evaluate(self, params):
        """(the objective at ``params``, the statistics of the global factors); every
        partition's local factors fitted and updated on the way."""
        stats, value = self.backend.iterate(params, self.reg)
        return value + self.mod.log_prior(params, self.source.h, only=self.globals), stats

    def m_step(self, stats, params, reg):
        """Every factor's and param's update but the local factors' (theirs, from the
        summed per-group statistics, is meaningless and dropped: the partitions keep them)."""
        new = self.mod.m_step(stats, params, self.source.h, reg)
        return {k: v for k, v in new.items() if k not in self.names}

    def assemble(self, which: str) -> dict:
        """The local params of every group, (G, ...) each: ``which`` = "fitted" (after
        local_fit) or "updated" (after the local M-step)."""
        return self.backend.assemble(which)

    def state(self) -> dict:
        return {"arrays": {"local": self.assemble("updated")} if self.backend.started else {}}

    def restore(self, saved):
        if "local" in saved:
            self.given = {k: np.asarray(v) for k, v in saved["local"].items()}

    def params(self, params, converged) -> dict:
        """The fit's params: the global ones and every group's local ones (after
        local_fit when converged: EM's stop before the M-step; else after the update;
        a fit resumed at its end: those of its checkpoint)."""
        if not self.backend.started:
            return {**params, **self.given}
        return {**params, **self.assemble("fitted" if converged else "updated")}

    def responsibilities(self, params):
        return self.backend.responsibilities(params)


class StreamGroups:
    """The partitions of a stream: its chunks, read again on every pass; their local
    params kept in the driver."""

    def __init__(self, grouped: GroupedBatchPass):
        self.g, self.src = grouped, grouped.source
        self.groups = None
        self.fitted, self.updated = [], []
        self.started = False

    def _chunks(self):
        """(i, localised chunk, its dims, its groups' ids) of every partition, checked;
        the groups no chunk holds last, as a partition without items."""
        mod, src = self.g.mod, self.src
        cov, dim = mod.LOCAL_GROUP
        first = self.groups is None
        if first:
            self.groups = Groups(int(src.h[dim]))
        template = None
        for i, chunk in enumerate(src.fresh()):
            template = chunk if template is None else template
            local, hc, ids = localise(mod, chunk, src.h, src.size)
            self.groups.add(ids) if first else self.groups.check(i, ids)
            yield i, local, hc, ids
        if first:
            missing = self.groups.missing()
            self.empty = None
            if len(missing):
                self.groups.add(missing)
                self.empty = empty_partition(template, missing, src.h, src.size, dim)
        if self.empty is not None:
            yield len(self.groups.ids) - 1, *self.empty, self.groups.ids[-1]

    def iterate(self, params, reg):
        mod, src = self.g.mod, self.src
        total, value = None, 0.0
        for i, chunk, hc, ids in self._chunks():
            local = self.updated[i] if self.started else self.g.start_local(ids)
            stats, v, fitted, updated = partition_step(mod, chunk, hc, src.centre, params,
                                                       local, self.g.local_iter, reg)
            total = stats if total is None else mod.merge_stats(total, stats)
            value += v
            if self.started:
                self.fitted[i], self.updated[i] = fitted, updated
            else:
                self.fitted.append(fitted)
                self.updated.append(updated)
        self.started = True
        return total, value

    def assemble(self, which):
        return _assemble(self.g, self.groups.ids, getattr(self, which))

    def responsibilities(self, params):
        mod, src = self.g.mod, self.src
        out = []
        for _, chunk, hc, ids in self._chunks():
            if count_items(chunk, src.items):
                local = {k: np.asarray(params[k])[ids] for k in self.g.names}
                out.append(partition_resp(mod, chunk, hc, src.centre, params, local))
        return np.concatenate(out)


def _assemble(grouped, ids: list, parts: list) -> dict:
    """Full (G, ...) arrays of the local params from each partition's rows."""
    G = int(grouped.source.h[grouped.mod.LOCAL_GROUP[1]])
    out = {}
    for k in grouped.names:
        first = np.asarray(parts[0][k])
        out[k] = np.empty((G,) + first.shape[1:], dtype=float)
        for rows, part in zip(ids, parts):
            out[k][rows] = part[k]
    return out
