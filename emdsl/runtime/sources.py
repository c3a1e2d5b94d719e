"""Where the online and streamed drivers read items from (``online.py``).

A source hands out chunks of items (data dicts with the dims of the chunk), prepared by
the module with the fit's one centre, so that the statistics of any chunks add up:

- :class:`ArraySource`: arrays or memmaps in memory; the data indexed by the item plate
  are sliced by rows (a memmap reads only those rows), the others passed whole;
- :class:`StreamSource`: a re-iterable stream of checked chunk dicts (``emdsl.chunks``),
  read in its own order on every pass.

Both give: ``minibatches(rng, B)`` (a shuffled pass), ``blocks()`` (the same fixed blocks
on every pass), ``evaluation()`` (chunks for the objective and the responsibilities) and
``start(rng, size)`` (a subset of about ``size`` items for the module's ``init``).
"""
from __future__ import annotations

import numpy as np

from .batch import centring, item_resp

EVAL = 65536   # items per chunk of an evaluation pass over in-memory data


class _Source:
    def __init__(self, mod, h, size):
        self.mod, self.h, self.size = mod, h, size
        self.n = int(h[size])
        self.centre = {}

    def dims(self, m: int) -> dict:
        return {**self.h, self.size: m}

    def e_step(self, chunk, params):
        """(prepared chunk, (resp, statistics, log likelihood)) of a chunk's items."""
        hc = self.dims(count_items(chunk, self.items))
        st = self.mod.prepare(chunk, hc, self.centre)
        return st, self.mod.e_step(st, params, hc)

    def stats(self, chunk, params) -> dict:
        return self.e_step(chunk, params)[1][1]

    def loglik(self, params) -> float:
        """log p(data | params) (the data's part of the ELBO), chunk by chunk."""
        return self.statistics(params)[1]

    def statistics(self, params) -> tuple[dict, float]:
        """(the statistics of all the items at ``params``, their log likelihood)."""
        total, loglik = None, 0.0
        for chunk in self.evaluation():
            _, (_, stats, ll) = self.e_step(chunk, params)
            total = stats if total is None else self.mod.merge_stats(total, stats)
            loglik += ll
        return total, float(loglik)

    def responsibilities(self, params):
        """The (N, K) responsibilities of every item, chunk by chunk."""
        out = []
        for chunk in self.evaluation():
            st, (resp, _, _) = self.e_step(chunk, params)
            out.append(item_resp(self.mod, st, resp))
        return np.concatenate(out)


class ArraySource(_Source):
    """Items of in-memory arrays or memmaps."""

    def __init__(self, mod, data, h, items, size):
        super().__init__(mod, h, size)
        self.data, self.items = data, items
        self.centre = centring(mod, data, h)  # one pass, O(1)

    def chunk(self, idx) -> dict:
        """The data of items ``idx`` (increasing: a memmap reads forward)."""
        return {k: (np.asarray(v[idx]) if k in self.items else v) for k, v in self.data.items()}

    def minibatches(self, rng, B):
        """A shuffled pass in bounded memory: spans of 16 B items in random order, the
        items of each span permuted and cut into minibatches of B."""
        span = 16 * B
        for start in rng.permutation(-(-self.n // span)) * span:
            rows = start + rng.permutation(min(span, self.n - start))
            for lo in range(0, len(rows), B):
                yield self.chunk(np.sort(rows[lo:lo + B]))

    def blocks(self, B):
        for lo in range(0, self.n, B):
            yield self.chunk(np.arange(lo, min(self.n, lo + B)))

    def evaluation(self):
        return self.blocks(EVAL)

    def start(self, rng, size):
        idx = np.arange(self.n) if self.n <= size else np.unique(rng.integers(self.n, size=size))
        return self.chunk(idx)


class StreamSource(_Source):
    """Items of a stream of chunks (``fresh()`` gives a new iterator of checked dicts)."""

    def __init__(self, mod, fresh, h, items, size):
        super().__init__(mod, h, size)
        self.fresh, self.items = fresh, items
        first = next(iter(fresh()), None)
        if first is None:
            from .online import DriverError
            raise DriverError("the stream gave no chunks when read again: a fit reads it on "
                              "every pass; give a list, a file, or a function that returns a "
                              "new iterator each time")
        self.centre = centring(mod, first, self.dims(count_items(first, items)))

    def minibatches(self, rng, B):
        """The chunks in the stream's order, the items of each permuted and cut into
        minibatches of B."""
        for chunk in self.fresh():
            m = count_items(chunk, self.items)
            rows = rng.permutation(m)
            for lo in range(0, m, B):
                idx = np.sort(rows[lo:lo + B])
                yield {k: (v[idx] if k in self.items else v) for k, v in chunk.items()}

    def blocks(self, B=None):
        return self.fresh()

    def evaluation(self):
        return self.fresh()

    def start(self, rng, size):
        """The leading items of the stream: whole chunks until ``size`` items (the first
        chunk whatever its length), so that a start does not see only a chunk's few."""
        parts, m = [], 0
        for chunk in self.fresh():
            parts.append(chunk)
            m += count_items(chunk, self.items)
            if m >= size:
                break
        if len(parts) == 1:
            return parts[0]
        return {k: (np.concatenate([p[k] for p in parts])[:max(size, len(parts[0][k]))]
                    if k in self.items else v) for k, v in parts[0].items()}

    def grouped(self, grouped):
        """The backend of batch CAVI over chunks of whole groups (``grouped.py``)."""
        from .grouped import StreamGroups
        return StreamGroups(grouped)


def count_items(chunk: dict, items: tuple) -> int:
    """The number of items in ``chunk`` (the length of its item-indexed data)."""
    return next(len(chunk[k]) for k in items if k in chunk)
