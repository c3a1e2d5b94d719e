"""Shared pytest setup: ``--update-golden``, a seeded ``rng`` and a private compile cache."""
from __future__ import annotations

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the expected files under tests/golden/ from the current "
                          "compiler output (review the diff before committing)")


@pytest.fixture
def update_golden(request) -> bool:
    """True when pytest runs with ``--update-golden``."""
    return request.config.getoption("--update-golden")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session", autouse=True)
def _emdsl_cache(tmp_path_factory):
    """Compile into a temporary cache, never the user's home directory."""
    cache = tmp_path_factory.mktemp("emdsl-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMDSL_CACHE", str(cache))
        mp.setenv("EMDSL_KEY", str(tmp_path_factory.mktemp("emdsl-key") / "cache-key"))
        yield cache


# ----------------------------------------------------------------------------- generated code
def undefined_names(code: str) -> set:
    """Names a module reads that it neither defines, imports nor gets from builtins."""
    import builtins
    import symtable
    top = symtable.symtable(code, "<generated>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()
               or s.is_namespace()}
    known = defined | set(dir(builtins))
    missing = set()

    def walk(table):
        for s in table.get_symbols():
            if s.is_referenced() and (s.is_global() or (table is top and not s.is_local())) \
                    and s.get_name() not in known:
                missing.add(s.get_name())
        for child in table.get_children():
            walk(child)
    walk(top)
    return missing


@pytest.fixture(scope="session", autouse=True)
def _check_every_generated_module():
    """Every module the test suite compiles uses only names it imports or defines."""
    from emdsl.codegen import writer as codegen
    original = codegen.generate

    def checked(us):
        code = original(us)
        missing = undefined_names(code)
        assert not missing, f"generated module reads undefined names {sorted(missing)}"
        return code
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codegen, "generate", checked)
        yield
