"""LDA-C files (Blei's format: a line ``n id:count id:count ...`` per document, 0-based
word ids), read whole (``read``) or streamed a number of documents at a time
(``stream``: the chunks of ``emdsl.chunks("corpus.ldac", rows=R)``).

The model needs two ``cat`` data in one plate, the document (only used as an index) and
the word (modelled by ``~``). Counts are expanded to long format in document order; the
file fixes the plate dim (total tokens), the document count and the vocabulary size (the
lines of a sibling ``.tokens`` file if present, else the largest id + 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EmmDataError
from ..frontend import ast
from .data import _decl, physical_memory


def roles(cm, data_vars) -> tuple:
    """(the document datum, the word datum) of the model, or a located error."""
    cats = [v for v in data_vars if v.kind == "cat" and len(v.shape) == 1]
    modelled = {f.target for f in cm.factors}
    words = [v for v in cats if v.name in modelled]
    docs = [v for v in cats if v.name not in modelled
            and ast.show(v.shape[0]) in {ast.show(w.shape[0]) for w in words}]
    if len(data_vars) != 2 or len(words) != 1 or len(docs) != 1:
        raise EmmDataError(f"an .ldac file needs a model with exactly two cat data in one "
                           f"plate (document index and modelled word); model {cm.name} has "
                           f"data {', '.join(_decl(v) for v in data_vars)}",
                           hint="e.g. `data doc[T] : cat[D]` and `data w[T] : cat[V]`")
    return docs[0], words[0]


def documents(path: Path):
    """(ids, counts) of every document (line) of the file, in order, each checked; blank
    lines are allowed only at the end."""
    blank = None
    with open(path, encoding="utf-8") as fh:
        for d, line in enumerate(fh):
            parts = line.split()
            if not parts:
                blank = d if blank is None else blank
                continue
            if blank is not None:
                _bad(path, blank)
            pairs = _pairs(path, d, parts)
            if any(max(p) >= 2 ** 53 for p in pairs):
                raise EmmDataError(f"line {d + 1} of '{path.name}' has a word id or count "
                                   "beyond 2^53", hint="check the file")
            pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
            yield pairs[:, 0], pairs[:, 1]


def _pairs(path: Path, d: int, parts: list) -> list:
    """The [id, count] pairs of line ``d`` (its fields ``parts``), or an error saying what
    is wrong with it."""
    for j, p in enumerate(parts[1:]):
        fields = p.split(":")
        if len(fields) != 2 or not all(f.isascii() and f.isdigit() for f in fields):
            why = (f"'{p}' is not id:count" if len(fields) != 2 else
                   f"'{p}' has a {'negative' if '-' in p else 'non-integer'} "
                   f"{'word id' if not fields[0].isdigit() else 'count'}")
            _bad(path, d, f"its pair {j + 1}, {why}")
    if not (parts[0].isascii() and parts[0].isdigit()):
        _bad(path, d, f"it starts with '{parts[0]}', not the number of pairs")
    pairs = [[int(f) for f in p.split(":")] for p in parts[1:]]
    if int(parts[0]) != len(pairs):
        _bad(path, d, f"it says {int(parts[0])} pairs and has {len(pairs)}")
    return pairs


def _bad(path: Path, d: int, why: str | None = None):
    raise EmmDataError(f"line {d + 1} of '{path.name}' is not in LDA-C format "
                       "(`n id:count id:count ...` with n pairs, ids and counts whole "
                       "numbers >= 0)" + (f": {why}" if why else ""))


def _tokens(docs: list) -> tuple:
    """(document index (T,), word (T,)) of the documents ``docs`` = [(d, ids, counts)]."""
    if not docs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    sizes = [int(c.sum()) for _, _, c in docs]
    if 16.0 * sum(sizes) > physical_memory():   # two int64 per token
        d = max(range(len(docs)), key=lambda i: sizes[i])
        raise EmmDataError(f"the counts of the documents up to line {docs[-1][0] + 1} add up "
                           f"to {sum(sizes):,} tokens ({16.0 * sum(sizes) / 2**30:,.0f} GiB in "
                           f"memory; line {docs[d][0] + 1} alone holds {sizes[d]:,})",
                           hint="check the counts, or stream the file: chunks(path, rows=...) "
                           "or --chunk-rows")
    doc = np.repeat(np.array([d for d, _, _ in docs], dtype=np.int64), sizes)
    w = np.repeat(np.concatenate([i for _, i, _ in docs]),
                  np.concatenate([c for _, _, c in docs]))
    return doc, w


def _dims(path: Path, cm, n_tokens: int, n_docs: int, largest: int) -> dict:
    doc_v, w_v = roles(cm, [v for v in cm.vars.values() if v.role == "data"])
    vocab = largest + 1
    tokens = path.with_suffix(".tokens")
    if tokens.is_file():
        n_words = len(tokens.read_text(encoding="utf-8").rstrip("\n").splitlines())
        if vocab > n_words:
            raise EmmDataError(f"'{path.name}' uses word id {vocab - 1} but '{tokens.name}' "
                               f"lists only {n_words} words")
        vocab = n_words
    return {e.id: val for e, val in ((doc_v.shape[0], n_tokens), (doc_v.elem_dims[0], n_docs),
                                     (w_v.elem_dims[0], vocab)) if isinstance(e, ast.Name)}


def read(path: Path, cm, data_vars) -> tuple[dict, dict]:
    """(the document and word arrays, the dims the file fixes)."""
    doc_v, w_v = roles(cm, data_vars)
    docs = [(d, ids, counts) for d, (ids, counts) in enumerate(documents(path))]
    doc, w = _tokens(docs)
    largest = max((int(ids.max()) for _, ids, _ in docs if ids.size), default=-1)
    dims = _dims(path, cm, w.size, len(docs), largest)   # V from the ids, as stream_dims
    return {doc_v.name: doc, w_v.name: w}, dims


def stream(path: Path, cm, rows: int):
    """Chunk dicts of ``rows`` documents each (their tokens; document ids global);
    documents without words add no tokens, and a chunk of only such documents is left
    out."""
    doc_v, w_v = roles(cm, [v for v in cm.vars.values() if v.role == "data"])
    chunk = []
    for d, (ids, counts) in enumerate(documents(path)):
        chunk.append((d, ids, counts))
        if len(chunk) == rows:
            yield from _nonempty(chunk, doc_v, w_v)
            chunk = []
    yield from _nonempty(chunk, doc_v, w_v)


def _nonempty(chunk, doc_v, w_v):
    doc, w = _tokens(chunk)
    if doc.size:
        yield {doc_v.name: doc, w_v.name: w}


def stream_dims(path: Path, cm) -> dict:
    """The dims the file fixes, from one pass that keeps nothing but counts."""
    n_tokens = n_docs = 0
    largest = -1
    for ids, counts in documents(path):
        n_docs += 1
        n_tokens += int(counts.sum())
        largest = max(largest, int(ids.max()) if ids.size else -1)
    return _dims(path, cm, n_tokens, n_docs, largest)
