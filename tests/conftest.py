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
        yield cache
