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
    return np.ascontiguousarray(getattr(mod, "item_resp", lambda st, r: r)(st, resp))


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
        self.centre = getattr(mod, "centring", lambda d, hyp: {})(first, self.dims(rows[0]))

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
        while len(tasks) > 1:   # a binary tree of merges
            tasks = [dask.delayed(_merge, pure=True)(self.code, self.key, *tasks[i:i + 2])
                     if i + 1 < len(tasks) else tasks[i] for i in range(0, len(tasks), 2)]
        stats, loglik = dask.compute(tasks[0])[0]
        return stats, float(loglik)

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

    def start(self, rng, size):
        return self.partition(0)

    def minibatches(self, rng, B):   # pragma: no cover - fit allows only batch on Dask
        raise NotImplementedError

    blocks = minibatches
