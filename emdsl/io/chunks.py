"""Data streams: ``emdsl.chunks(source)`` and their binding to a model (issue 7, item 4).

A stream is re-iterable: every pass of a fit iterates it again. Each chunk holds some of
the items of the model's plate (the rows of every datum indexed by it); data on other
plates (covariates of the groups, say) are given once, as keyword arguments of ``fit``.

Sources:

- a dict of arrays or memmaps (data name -> array): slices of ``rows`` items;
- a ``.npy`` file (opened as a memmap: only the rows of a chunk are read; the model's
  one datum, or ``name=``), a ``.csv`` file read ``rows`` lines at a time (columns named
  as for ``emdsl fit --data``), a ``.npz`` file (read whole, then sliced), an ``.ldac``
  file read ``rows`` documents at a time (every chunk holds whole documents, which a
  model with local factors per document needs; the file fixes the document and
  vocabulary sizes);
- a list of chunk dicts, or a function returning a fresh iterator of them.

:func:`bind_stream` checks every chunk on the first pass (as ``fit`` checks arrays: the
variable, the declared and the given shapes), and that chunks agree with each other (the
same data, the same dims); later passes only convert them.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import EmmDataError
from .datafiles import numpy_file_error


class Chunks:
    """A re-iterable stream of data chunks; iterate with the model's data to get dicts
    (data name -> array, the items along the first axis)."""

    def __init__(self, make, what: str, dims=None):
        self._make, self.what = make, what
        self._dims = dims

    def dims(self, cm) -> dict:
        """The dims the source fixes (an LDA-C file's document and vocabulary sizes)."""
        return self._dims(cm) if self._dims is not None else {}

    def iterate(self, cm, items: tuple):
        """Chunk dicts of model ``cm`` (``items``: the data indexed by its item plate)."""
        return self._make(cm, items)

    def __repr__(self):
        return f"<emdsl.Chunks {self.what}>"


def chunks(source, rows: int = 100_000, name: str | None = None,
           drop_missing: bool = False) -> Chunks:
    """A stream of chunks of ``rows`` items from ``source`` (see the module doc);
    ``drop_missing``: a CSV file's rows with a missing value in a column used are dropped
    (with a warning) instead of being an error."""
    if isinstance(source, Chunks):
        return source
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise EmmDataError(f"chunks: rows must be a positive integer, got {rows!r}")
    if isinstance(source, dict):
        return Chunks(lambda cm, items: _slices(dict(source), items, rows),
                      f"of {rows} rows from arrays {', '.join(source)}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise EmmDataError(f"data file '{path}' does not exist")
        if suffix == ".npy":
            return Chunks(lambda cm, items: _npy(path, cm, items, rows, name),
                          f"of {rows} rows from {path.name}")
        if suffix == ".npz":
            return Chunks(lambda cm, items: _npz(path, cm, items, rows),
                          f"of {rows} rows from {path.name}")
        if suffix == ".csv":
            return Chunks(lambda cm, items: _csv(path, cm, rows, drop_missing),
                          f"of {rows} lines from {path.name}")
        if suffix == ".ldac":
            from . import ldac
            return Chunks(lambda cm, items: ldac.stream(path, cm, rows),
                          f"of {rows} documents from {path.name}",
                          lambda cm: ldac.stream_dims(path, cm))
        raise EmmDataError(f"chunks: cannot stream '{path.name}' (a {suffix} file)",
                           hint="stream a .npy, .npz, .csv or .ldac file, arrays, or chunk "
                           "dicts")
    if callable(source):
        return Chunks(lambda cm, items: iter(source()), "from a function")
    if isinstance(source, (list, tuple)):
        return Chunks(lambda cm, items: iter(source), f"of {len(source)} chunk dicts")
    raise EmmDataError(f"chunks: cannot stream a {type(source).__name__}",
                       hint="give arrays (a dict), a .npy/.npz/.csv path, a list of chunk "
                       "dicts, or a function returning an iterator of them")


def _slices(arrays: dict, items: tuple, rows: int):
    n = {len(arrays[k]) for k in items if k in arrays}
    if len(n) > 1:
        raise EmmDataError(f"chunks: the data {', '.join(k for k in items if k in arrays)} "
                           f"have different numbers of items ({', '.join(map(str, sorted(n)))})")
    total = n.pop() if n else 0
    for lo in range(0, total, rows):
        yield {k: (v[lo:lo + rows] if k in items else v) for k, v in arrays.items()}


def _npy(path: Path, cm, items: tuple, rows: int, name):
    data = [v.name for v in cm.vars.values() if v.role == "data"]
    if name is None:
        if len(data) != 1:
            raise EmmDataError(f"a .npy file holds one array but model {cm.name} has data "
                               f"{', '.join(data)}", hint="chunks(path, name=...) or a .npz")
        name = data[0]
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise numpy_file_error(path, exc) from None
    yield from _slices({name: arr}, (name,), rows)


def _npz(path: Path, cm, items: tuple, rows: int):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise numpy_file_error(path, exc) from None
    yield from _slices(arrays, items, rows)


def _csv(path: Path, cm, rows: int, drop_missing: bool = False):
    from .datafiles import csv_arrays, csv_rows
    data_vars = [v for v in cm.vars.values() if v.role == "data"]
    mode = "chunk" if drop_missing else False
    kept = 0

    def arrays(chunk):   # a chunk whose every row was dropped yields nothing
        nonlocal kept
        out = csv_arrays(path, header, chunk, data_vars, drop_missing=mode)
        n = min((len(a) for a in out.values()), default=0)
        kept += n
        return [out] if n else []

    with open(path, newline="", encoding="utf-8-sig") as fh:
        header, chunk = None, []
        for line, cells in csv_rows(fh):
            if header is None:
                header = cells
                continue
            chunk.append((line, cells))
            if len(chunk) == rows:
                yield from arrays(chunk)
                chunk = []
        if header is None:
            raise EmmDataError(f"'{path.name}' needs a header row and at least one data row")
        if chunk:
            yield from arrays(chunk)
    if drop_missing and not kept:
        raise EmmDataError(f"every row of '{path.name}' has a missing value in the columns "
                           "used")


def _same(a, b) -> bool:
    """Whether two given values are the same numbers (shape and every element)."""
    try:
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.all(a == b))
    except (TypeError, ValueError):
        return False


def bind_stream(cm, stream: Chunks, values: dict, items: tuple, size: str):
    """(dims and hypers of the whole stream, a function giving a fresh iterator of checked
    chunk dicts): every chunk is bound like ``fit``'s arrays on the first pass (each error
    names the chunk), the dims other than the plate's ``size`` must agree between chunks,
    and ``size`` is their total."""
    from .data import bind
    fixed = {k: v for k, v in values.items() if k != size}
    for k, v in stream.dims(cm).items():   # those the source fixes (an LDA-C file's)
        if k in fixed and np.asarray(fixed[k]).tolist() != v and k != size:
            raise EmmDataError(f"dim '{k}' is given as {fixed[k]} but the stream "
                               f"({stream.what}) holds {v}",
                               hint=f"leave out {k}=... (the data determine it)")
        if k != size:
            fixed[k] = v
    first, total = None, 0
    for i, chunk in enumerate(stream.iterate(cm, items)):
        if not isinstance(chunk, dict):
            raise EmmDataError(f"chunk {i + 1} of the stream is a {type(chunk).__name__}, "
                               "not a dict of data name -> array")
        lengths = {len(np.asarray(chunk[k])) for k in items if k in chunk}
        if lengths == {0}:
            raise EmmDataError(f"chunk {i + 1} of the stream is empty (no items)")
        for k in chunk:
            if k in values and not _same(values[k], chunk[k]):
                raise EmmDataError(f"'{k}' is given both as a keyword and in chunk {i + 1} "
                                   f"of the stream ({stream.what}), with other values",
                                   hint=f"give '{k}' once: leave out {k}=... or take it "
                                   "out of the chunks")
        try:
            b = bind(cm, {**fixed, **chunk})
        except EmmDataError as exc:
            raise EmmDataError(f"chunk {i + 1} of the stream: {exc.msg}", exc.span, exc.hint,
                               exc.source) from None
        dims = {k: v for k, v in b.dims.items() if k != size}
        shared = {**b.hypers, **{k: v for k, v in b.data.items() if k not in items}}
        if first is None:
            first, first_shared = b, shared
        elif dims != {k: v for k, v in first.dims.items() if k != size}:
            diff = next(k for k in dims if dims[k] != first.dims.get(k))
            raise EmmDataError(f"chunk {i + 1} of the stream disagrees with chunk 1: dim "
                               f"'{diff}' is {dims[diff]} there and {first.dims[diff]} in "
                               "chunk 1", hint="every chunk holds the same data with the "
                               "same shapes, apart from the number of items")
        for k, v in shared.items():   # a hyper or a datum of no item: one value for all
            if not _same(v, first_shared[k]):
                what = "hyper" if k in b.hypers else "datum"
                raise EmmDataError(f"chunk {i + 1} of the stream disagrees with chunk 1: "
                                   f"the {what} '{k}' has other values there",
                                   hint=f"'{k}' is one value for the whole data set: give "
                                   "it once, as a keyword")
        total += b.dims[size]
    if first is None:
        raise EmmDataError("the data stream holds no chunks")
    if size in values and not _same(values[size], total):
        raise EmmDataError(f"dim '{size}' is given as {values[size]} but the stream "
                           f"({stream.what}) holds {total} items",
                           hint=f"leave out {size}=... (the stream determines it)")
    h = {**first.dims, **first.hypers, size: total}
    data_names = [v.name for v in cm.vars.values() if v.role == "data"]

    def fresh():
        for chunk in stream.iterate(cm, items):
            yield {k: np.asarray(chunk[k], dtype=first.data[k].dtype) for k in data_names}
    return h, fresh
