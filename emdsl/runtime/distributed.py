"""Batch EM on Dask (issue 7, item 5): ``fit`` with dask arrays.

Each iteration maps the module's local step (``prepare`` + ``e_step`` of one partition of
the items) over the partitions, where the data live, and sums the statistics in a tree
of ``merge_stats``; the client takes the M-step. What travels per iteration: the global
params to every partition (for a GMM, K (D + D^2 + 1) numbers), and one set of
statistics (the same size) back up each edge of the tree: nothing of the order of N.

Workers need the generated module: its source text travels with the tasks (a few tens
of kB, once per task: dask caches the constant) and is executed once per worker process,
cached by its hash. It is the compiler's own output (numpy and scipy only), never text
from a model file. The item arrays are persisted on the cluster at the start, so the
data are read once. Use with a ``dask.distributed.Client`` to run on a cluster (without
one, dask's default local scheduler).
"""
from __future__ import annotations

import hashlib
import types

import numpy as np

from .grouped import GroupError, Groups, _assemble, empty_partition, localise, partition_resp, \
    partition_step
from .batch import centring, item_resp
from .sources import _Source

_MODULES: dict = {}   # per process: hash of generated source -> module


def is_dask(value) -> bool:
    return type(value).__module__.split(".")[0] == "dask"


def _module(code: str, key: str):
    mod = _MODULES.get(key)
    if mod is None:
        mod = types.ModuleType(f"emdsl_generated_{key}")
        exec(compile(code, f"<emdsl generated {key}>", "exec"), mod.__dict__)
        _MODULES[key] = mod
    return mod


def _e_step(code, key, chunk, hc, centre, params):
    """(module, prepared partition, its e_step) on the worker that holds the partition."""
    mod = _module(code, key)
    st = mod.prepare(chunk, hc, centre)
    return mod, st, mod.e_step(st, params, hc)


def _local(code, key, chunk, hc, centre, params):
    """(statistics, log likelihood) of one partition."""
    _, _, (_, stats, loglik) = _e_step(code, key, chunk, hc, centre, params)
    return stats, float(loglik)


def _resp(code, key, chunk, hc, centre, params):
    """The responsibilities of one partition's items."""
    mod, st, (resp, _, _) = _e_step(code, key, chunk, hc, centre, params)
    return np.ascontiguousarray(item_resp(mod, st, resp))


def _grouped_step(code, key, chunk, h, size, centre, params, local, local_iter, reg):
    """``partition_step`` of one partition of whole groups, on its worker."""
    mod = _module(code, key)
    chunk, hc, _ = localise(mod, chunk, h, size)
    return partition_step(mod, chunk, hc, centre, params, local, local_iter, reg)


def _grouped_resp(code, key, chunk, h, size, centre, params, local):
    mod = _module(code, key)
    chunk, hc, _ = localise(mod, chunk, h, size)
    return np.ascontiguousarray(partition_resp(mod, chunk, hc, centre, params, local))


def _runs(doc):
    """(the distinct groups of a partition's items, whether they are sorted, the
    positions where the group changes, the first and last group)."""
    doc = np.asarray(doc, dtype=np.int64).reshape(-1)
    return (np.unique(doc), bool(np.all(doc[1:] >= doc[:-1])),
            np.flatnonzero(doc[1:] != doc[:-1]) + 1, doc[:1], doc[-1:])


def _group_rows(doc, rows) -> tuple:
    """Partition sizes along the items that cut only between groups: ``rows`` when no
    group has items in two partitions, else (items sorted by group) each cut moved to
    the next change of group; unsorted items with a group split are an error."""
    import dask
    runs = dask.compute(*[dask.delayed(_runs)(b) for b in doc.to_delayed().ravel()])
    seen = np.concatenate([r[0] for r in runs])
    if len(np.unique(seen)) == len(seen):
        return rows
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    changes = [o + r[2] for o, r in zip(offsets, runs)]
    ends = [(o, int(r[3][0]), int(r[4][0])) for o, r in zip(offsets, runs) if len(r[3])]
    ordered = all(r[1] for r in runs)
    for (_, _, last), (o, first, _) in zip(ends, ends[1:]):
        ordered = ordered and first >= last
        if first != last:
            changes.append(np.array([o]))
    if not ordered:
        raise GroupError("the items of a group (a document) lie in two partitions of the "
                         "dask arrays and are not sorted by group: sort them by group, or "
                         "cut the partitions between groups")
    changes = np.unique(np.concatenate(changes + [offsets[-1:]]))
    cuts = changes[np.searchsorted(changes, offsets[1:-1])]   # the next change of group
    return tuple(int(x) for x in np.diff(np.unique(np.concatenate([[0], cuts, offsets[-1:]])))
                 if x > 0)


def _merge(code, key, a, b):
    mod = _module(code, key)
    return mod.merge_stats(a[0], b[0]), a[1] + b[1]


class DaskSource(_Source):
    """Items in dask arrays, partitioned along their first axis; the posterior's
    responsibilities are a dask array (built at the end of the fit, computed on the
    cluster when asked for)."""

    eager_posterior = True

    def __init__(self, mod, code, data, h, items, size):
        import dask
        super().__init__(mod, h, size)
        self.code, self.key = code, hashlib.sha256(code.encode()).hexdigest()[:16]
        self.items = items
        arrays = {k: v for k, v in data.items() if k in items}
        rows = next(iter(arrays.values())).chunks[0]
        if getattr(mod, "LOCAL_GROUP", None) is not None:   # partitions of whole groups
            rows = _group_rows(arrays[mod.LOCAL_GROUP[0]], rows)
        # every item array cut at the same rows, whole along its other axes, kept on the
        # cluster (the data are read once)
        arrays = {k: v.rechunk((rows,) + tuple(-1 for _ in v.shape[1:])) for k, v in arrays.items()}
        arrays = dict(zip(arrays, dask.persist(*arrays.values())))
        self.arrays = arrays   # holds the persisted partitions on the cluster
        self.rest = {k: (np.asarray(v.compute()) if is_dask(v) else v)
                     for k, v in data.items() if k not in items}
        self.sizes = list(rows)
        delayed = {k: a.to_delayed().ravel() for k, a in arrays.items()}
        self.parts = [{k: d[i] for k, d in delayed.items()} for i in range(len(rows))]
        first = self.partition(0)
        self.centre = centring(mod, first, self.dims(rows[0]))

    def partition(self, i) -> dict:
        """Partition ``i`` as numpy arrays in the client (the start, the posterior)."""
        import dask
        values = dask.compute(*self.parts[i].values())
        return {**dict(zip(self.parts[i], values)), **self.rest}

    def statistics(self, params):
        import dask
        tasks = [dask.delayed(_local, pure=True)(self.code, self.key, {**p, **self.rest},
                                                 self.dims(m), self.centre, params)
                 for p, m in zip(self.parts, self.sizes)]
        return _tree(self.code, self.key, tasks)

    def responsibilities(self, params):
        """A dask array (N, K) of the items' responsibilities, partition by partition."""
        import dask
        import dask.array as da
        K = int(self.mod.n_components(self.h))
        pieces = [da.from_delayed(dask.delayed(_resp, pure=True)(
            self.code, self.key, {**p, **self.rest}, self.dims(m), self.centre, params),
            shape=(m, K), dtype=float) for p, m in zip(self.parts, self.sizes)]
        return da.concatenate(pieces)

    def evaluation(self):
        return (self.partition(i) for i in range(len(self.parts)))

    def grouped(self, grouped):
        """The backend of batch CAVI over partitions of whole groups (``grouped.py``)."""
        return DaskGroups(grouped)

    def start(self, rng, size):
        return self.partition(0)

    def minibatches(self, rng, B):   # pragma: no cover - fit allows only batch on Dask
        raise NotImplementedError

    blocks = minibatches


class DaskGroups:
    """The partitions of dask arrays of whole groups: each partition's local params stay
    on the cluster (persisted results of its last step); only the global params go out
    and the global factors' statistics come back."""

    def __init__(self, grouped):
        import dask
        self.g, self.src = grouped, grouped.source
        mod, src = grouped.mod, grouped.source
        cov, dim = mod.LOCAL_GROUP
        ids = dask.compute(*[dask.delayed(_runs)(p[cov]) for p in src.parts])
        self.groups = Groups(int(src.h[dim]))
        for r in ids:
            self.groups.add(r[0])
        missing = self.groups.missing()
        self.empty = None
        if len(missing):   # groups without items: a partition of the client's
            self.groups.add(missing)
            first = src.partition(0)
            self.empty = empty_partition(first, missing, src.h, src.size, dim)
        self.results, self.empty_result = None, None
        self.started = False

    def iterate(self, params, reg):
        import dask
        g, src = self.g, self.src
        tasks = [dask.delayed(_grouped_step, pure=True)(
            src.code, src.key, {**p, **src.rest}, src.h, src.size, src.centre, params,
            dask.delayed(_take)(r, 3) if self.started else g.start_local(ids),
            g.local_iter, reg)
            for p, ids, r in zip(src.parts, self.groups.ids, self.results or src.parts)]
        self.results = list(dask.persist(*tasks))   # the local params stay on the cluster
        pairs = [dask.delayed(_take)(r, slice(0, 2)) for r in self.results]
        stats, value = _tree(src.code, src.key, pairs)
        if self.empty is not None:
            local = (self.empty_result[3] if self.started
                     else g.start_local(self.groups.ids[-1]))
            self.empty_result = partition_step(g.mod, *self.empty, src.centre, params, local,
                                               g.local_iter, reg)
            stats = g.mod.merge_stats(stats, self.empty_result[0])
            value += self.empty_result[1]
        self.started = True
        return stats, value

    def assemble(self, which):
        import dask
        at = {"fitted": 2, "updated": 3}[which]
        parts = list(dask.compute(*[dask.delayed(_take)(r, at) for r in self.results]))
        if self.empty is not None:
            parts.append(self.empty_result[at])
        return _assemble(self.g, self.groups.ids, parts)

    def responsibilities(self, params):
        """A dask array (N, K) of the items' responsibilities, partition by partition."""
        import dask
        import dask.array as da
        g, src = self.g, self.src
        K = int(g.mod.n_components(src.h))
        pieces = [da.from_delayed(dask.delayed(_grouped_resp, pure=True)(
            src.code, src.key, {**p, **src.rest}, src.h, src.size, src.centre, params,
            {k: np.asarray(params[k])[ids] for k in g.names}), shape=(m, K), dtype=float)
            for p, ids, m in zip(src.parts, self.groups.ids, src.sizes)]
        return da.concatenate(pieces)


def _take(result, at):
    return result[at]


def _tree(code, key, pairs):
    """(statistics, objective) of delayed (statistics, objective) pairs, summed in a
    binary tree of merges on the cluster."""
    import dask
    while len(pairs) > 1:
        pairs = [dask.delayed(_merge, pure=True)(code, key, *pairs[i:i + 2])
                 if i + 1 < len(pairs) else pairs[i] for i in range(0, len(pairs), 2)]
    stats, value = dask.compute(pairs[0])[0]
    return stats, float(value)
