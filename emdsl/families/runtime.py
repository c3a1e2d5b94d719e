"""The family table's numerics as source text for generated modules.

Each family module lists, in ``RUNTIME``, plain numpy functions (names starting with
``_``) that generated code calls: natural parameters, messages, modes, log densities.
:func:`runtime_source` returns the source of the functions a module needs and of every
runtime function they call, so a generated module stays self-contained (numpy and
scipy.special only) and runs exactly the code the property tests check.
"""
from __future__ import annotations

import inspect
import re

from . import linalg
from . import mvnormal
from . import normal_wishart
from . import simplex
from . import wishart

_MODULES = (linalg, mvnormal, wishart, simplex, normal_wishart)


def runtime_functions() -> dict:
    """name -> function, over every family module's RUNTIME."""
    return {f.__name__: f for m in _MODULES for f in getattr(m, "RUNTIME", ())}


def runtime_source(names) -> str:
    """Source of the runtime functions ``names`` and of those they call, in a stable
    order (as listed by the family modules)."""
    table = runtime_functions()
    want, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in want:
            continue
        if name not in table:
            raise KeyError(f"no runtime function {name!r} in the family table")
        want.add(name)
        body = inspect.getsource(table[name])
        todo += [n for n in re.findall(r"\b(_[a-z][a-z0-9_]*)\(", body) if n in table]
    return "\n\n".join(inspect.getsource(f).rstrip() for n, f in table.items() if n in want)
