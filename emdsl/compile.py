"""The pipeline, top to bottom: parse -> check -> graph -> plan -> conjugacy -> derive ->
codegen.

Generated code is cached on disk under a hash of the source, the file name and the
compiler's own files (``$EMDSL_CACHE`` or ``~/.cache/emdsl``), so loading a model a second
time skips the symbolic derivation, and a changed compiler never serves stale code.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .cachefiles import cache_dir
from .frontend.check import CheckedModel, check
from .frontend.parse import parse


@dataclass
class Compiled:
    checked: CheckedModel
    code: str
    updates: object | None    # the UpdateSet (None when the code came from the cache)
    graph: object | None      # the FactorGraph (built on demand for cached models)


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """A hash of the compiler's own files, so a changed compiler never reuses old code."""
    h = hashlib.sha256(__version__.encode())
    here = Path(__file__).resolve().parent
    for f in sorted([*here.rglob("*.py"), *here.rglob("*.emm"), *here.glob("_grammar/*.lark"),
                     here.parent / "grammars" / "emm.lark"]):
        if f.is_file():
            h.update(str(f.relative_to(here.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def compile_source(source: str, file: str = "<string>", use_cache: bool = True) -> Compiled:
    checked = check(parse(source, file))
    key = hashlib.sha256(f"{compiler_fingerprint()}\0{file}\0{source}".encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.py"
    if use_cache and path.is_file():
        cached = _verified(path)
        if cached is not None:
            return Compiled(checked, cached, None, None)
    from .graph import build_graph
    fg = build_graph(checked)
    updates = derive_updates(checked, fg)
    from .codegen.writer import generate
    code = generate(updates)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(f"{_SEAL}{_digest(code)}\n{code}", encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # a read-only home is no reason to fail
    return Compiled(checked, code, updates, fg)


_SEAL = "# emdsl cache sha256="


def _digest(code: str) -> str:
    return hashlib.sha256(f"{compiler_fingerprint()}\0{code}".encode()).hexdigest()


def _verified(path: Path) -> str | None:
    """The code of a cache file whose seal (the hash of the compiler and of the code, written
    with it) matches its content; None for anything else (a planted or damaged file is
    recompiled and overwritten, never executed)."""
    try:
        head, _, code = path.read_text(encoding="utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if not head.startswith(_SEAL) or head[len(_SEAL):] != _digest(code):
        return None
    return code


def derive_updates(checked: CheckedModel, fg=None):
    """graph -> plan -> (conjugacy report) -> updates."""
    from .inference.conjugacy import analyse
    from .inference.derive import derive
    from .graph import build_graph
    from .inference import make_plan
    fg = fg or build_graph(checked)
    plan = make_plan(fg)
    plan.require_supported()
    us = derive(analyse(fg), checked)
    us.plan = plan
    return us
