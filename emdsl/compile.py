"""The pipeline, top to bottom: parse -> check -> graph -> plan -> conjugacy -> derive ->
codegen.

Generated code is cached on disk under a hash of the source, the file name and the
compiler's own files (``$EMDSL_CACHE`` or ``~/.cache/emdsl``), so loading a model a second
time skips the symbolic derivation, and a changed compiler never serves stale code.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .cachefiles import cache_dir, read_sealed, write_sealed
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
    key = hashlib.sha256(f"{compiler_fingerprint()}\0{file}\0{source}".encode()).hexdigest()[:32]
    path = cache_dir() / f"{key}.py"
    cached = read_sealed(path, key) if use_cache else None
    # a cached module passed every check of this compiler: its families' symbolic
    # validation (sympy's import alone is ~0.8 s) is not repeated
    checked = check(parse(source, file), validate_families=cached is None)
    if cached is not None:
        try:
            return Compiled(checked, cached.decode("utf-8"), None, None)
        except UnicodeDecodeError:  # pragma: no cover - the seal matched: never
            pass
    from .graph import build_graph
    fg = build_graph(checked)
    updates = derive_updates(checked, fg)
    from .codegen.writer import generate
    code = generate(updates)
    if use_cache:
        write_sealed(path, key, code.encode("utf-8"))
    return Compiled(checked, code, updates, fg)


def derive_updates(checked: CheckedModel, fg=None):
    """graph -> plan -> (conjugacy report) -> updates."""
    from .graph import build_graph
    from .inference import make_plan
    from .inference.derive import derive_plan
    return derive_plan(make_plan(fg or build_graph(checked)))
