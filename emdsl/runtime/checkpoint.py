"""Checkpoint and resume a fit (issue 7, item 6).

``fit(..., checkpoint=PATH, checkpoint_every=n)`` writes the fit's whole state after every
n-th iteration (pass): the params, the objective's trace, the random generator's state
and the driver's own (stepwise EM's running statistics and step count, incremental EM's
statistics of every block). ``fit(..., resume=PATH)`` continues from it and gives the
bit-identical result of an uninterrupted run, whatever killed the first one: nothing of
the run lives outside the file.

A checkpoint is one ``.npz`` (a zip whose members carry CRC-32 checks) written to a
temporary file in the same directory, flushed to disk and renamed over the old one: a
crash while writing leaves the previous checkpoint intact. Its ``meta`` member names the
model (name and a hash of its source), the method, the number of items and the options
that shape the run; resuming with another model, data size, method or options, or from a
truncated or corrupt file, is an :class:`~emdsl.errors.EmmDataError` that says which.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import EmmDataError

FORMAT = "emdsl-checkpoint-1"
# the fit options that shape a run: a resumed fit must give the same (defaults spelt out)
OPTIONS = ("seed", "batch_size", "kappa", "delay", "reg", "local_iter")


def identity(model_name: str, source: str, method: str, n: int, options: dict) -> dict:
    """What a checkpoint must match to be resumed: the model, the run's shape."""
    return {"format": FORMAT, "model": model_name,
            "source": hashlib.sha256(source.encode("utf-8")).hexdigest()[:16],
            "method": method, "items": int(n),
            "options": {k: options.get(k) for k in sorted(options)}}


class Checkpoint:
    """Saves a fit's state every ``every`` iterations to ``path``."""

    def __init__(self, path, every: int, ident: dict):
        self.path = Path(path)
        self.every, self.ident = max(int(every or 1), 1), ident

    def due(self, iteration: int) -> bool:
        """Whether the state after ``iteration`` (1-based count of those done) is saved."""
        return iteration % self.every == 0

    def save(self, iteration: int, params: dict, trace: list, rng=None, arrays=None,
             values=None) -> None:
        """Write the state atomically: ``arrays`` (name -> array or dict of arrays, or a
        list of such dicts) and JSON ``values`` of the driver."""
        meta = {**self.ident, "iteration": int(iteration),
                "rng": rng.bit_generator.state if rng is not None else None,
                "values": values or {}}
        members = {"meta": np.array(json.dumps(meta)), "trace": np.asarray(trace, dtype=float)}
        members.update(_flat("params", params))
        for name, a in (arrays or {}).items():
            members.update(_flat(name, a))
        from ..io.files import atomic_write
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda fh: np.savez(fh, **members), sync=True)
        except OSError as exc:   # the previous checkpoint stays as it was
            raise EmmDataError(f"cannot write checkpoint '{self.path}': {exc}",
                               hint="free some space or choose another path") from None


def load(path, ident: dict, defaults=None) -> dict:
    """The state saved at ``path``, checked against the run's ``ident``: {"iteration",
    "params", "trace", "rng", "values", and the driver's arrays by name}. ``defaults``:
    the options' default values, which a checkpoint of an earlier 0.2 build recorded as
    None when they were not given."""
    path = Path(path)
    if not path.is_file():
        raise EmmDataError(f"checkpoint '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
        meta = json.loads(str(members.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EmmDataError(f"checkpoint '{path}' is truncated or corrupt ({exc})",
                           hint="resume from an intact checkpoint or start the fit again"
                           ) from None
    if meta.get("format") != FORMAT:
        raise EmmDataError(f"'{path}' is not an emdsl checkpoint")
    for key, what in (("model", "model"), ("source", "model source"), ("method", "method"),
                      ("items", "number of items")):
        if meta.get(key) != ident.get(key):
            raise EmmDataError(f"checkpoint '{path}' is from another run: its {what} is "
                               f"{meta.get(key)!r}, this fit's is {ident.get(key)!r}",
                               hint="resume with the model, data and options that wrote it")
    saved, given = dict(meta.get("options") or {}), ident.get("options") or {}
    for k, v in (defaults or {}).items():   # (None given now is None, as it was then)
        if k in saved and saved[k] is None and given.get(k) is not None:
            saved[k] = v
    for k in sorted(set(saved) | set(given)):
        if saved.get(k) != given.get(k):
            raise EmmDataError(f"checkpoint '{path}' is from another run: its "
                               f"{'fit option ' + k if k in OPTIONS else k} is "
                               f"{saved.get(k)!r}, this fit's is {given.get(k)!r}",
                               hint="resume with the model, data and options that wrote it")
    state = {"iteration": meta["iteration"], "rng": meta["rng"], "values": meta["values"],
             "trace": [float(v) for v in members.pop("trace")]}
    state.update(_unflat(members))
    return state


def _flat(name: str, value) -> dict:
    """Members ``name/key`` of a dict, ``name/i/key`` of a list of dicts, ``name`` of an
    array."""
    if isinstance(value, dict):
        return {f"{name}/{k}": np.asarray(v) for k, v in value.items()}
    if isinstance(value, list):
        out = {f"{name}/#": np.array(len(value))}
        for i, d in enumerate(value):
            out.update(_flat(f"{name}/{i}", d))
        return out
    return {name: np.asarray(value)}


def _unflat(members: dict) -> dict:
    out: dict = {}
    for key, value in members.items():
        parts = key.split("/")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return {k: _lists(v) for k, v in out.items()}


def _lists(node):
    if isinstance(node, dict) and "#" in node:
        return [_lists(node[str(i)]) for i in range(int(node["#"]))]
    if isinstance(node, dict):
        return {k: _lists(v) for k, v in node.items()}
    return node
