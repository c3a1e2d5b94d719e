"""The example models and their data, for pip users: ``emdsl examples DIR`` (or
``emdsl.examples.copy_to(DIR)``) copies them out of the installed package (in a checkout
they are the repository's ``models/``)."""
from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from .errors import EmmError


def source() -> Path:
    """Where the examples are: the installed package's copy, else the checkout's."""
    packaged = Path(str(resources.files("emdsl"))) / "_examples"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1] / "models"
    if checkout.is_dir():
        return checkout
    raise EmmError("the example models are not in this installation")


def copy_to(target) -> list:
    """Copy every example model (``*.emm``) and ``data/`` into ``target``; returns the
    model files written. Existing files are not overwritten."""
    src, dst = source(), Path(target)
    try:
        dst.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted(src.rglob("*")):
            if path.is_dir() or path.name.startswith("."):
                continue
            out = dst / path.relative_to(src)
            if out.exists():
                raise EmmError(f"'{out}' exists; copy the examples into an empty directory")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            written.append(out)
    except OSError as exc:
        raise EmmError(f"cannot copy the examples to '{target}': {exc.strerror}") from None
    return [p for p in written if p.suffix == ".emm"]
