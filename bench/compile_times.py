#!/usr/bin/env python
"""Cold compile and cached load time of models, each in a fresh interpreter.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compile_times.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compile_times.py my.emm ...

For every model of models/ (or the .emm files given), best of --repeat runs of
``emdsl.load`` alone (interpreter start and imports excluded, timed inside the child):
a cold compile (``use_cache=False``) and a load from a warm private cache (EMDSL_CACHE
set to a temporary directory filled first). Models the compiler rejects are listed as
such. Issue 5's targets: cold compile <= 2 s, cached load <= 0.3 s.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
import emdsl
t0 = time.perf_counter()
try:
    emdsl.load(sys.argv[1], use_cache=sys.argv[2] == "cached")
except emdsl.errors.EmmError:
    print("rejected")
else:
    print(time.perf_counter() - t0)
"""


def load_time(path: Path, mode: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), mode], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, help="default: every models/*.emm")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    paths = a.models or sorted((ROOT / "models").glob("*.emm"))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "EMDSL_CACHE": cache, "PYTHONPATH": str(ROOT)}
        print(f"{'model':>28} {'cold compile s':>15} {'cached load s':>14}")
        for path in paths:
            cold = [load_time(path, "cold", env) for _ in range(a.repeat)]
            if "rejected" in cold:
                print(f"{path.name:>28} {'rejected by the compiler':>30}")
                continue
            load_time(path, "cached", env)   # fill the cache
            warm = [load_time(path, "cached", env) for _ in range(a.repeat)]
            print(f"{path.name:>28} {min(map(float, cold)):15.3f} "
                  f"{min(map(float, warm)):14.3f}", flush=True)


if __name__ == "__main__":
    main()
