"""The on-disk cache (``$EMDSL_CACHE`` or ``~/.cache/emdsl``) and its seals.

Every file emdsl reads back from the cache is sealed: a hash of the file's content and of
a key that names what wrote it.  A file whose seal does not match (planted, edited or cut
short) is ignored and rebuilt, never executed or unpickled.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("EMDSL_CACHE") or Path.home() / ".cache" / "emdsl")


def seal(data: bytes, key: str) -> str:
    return hashlib.sha256(key.encode() + b"\0" + data).hexdigest()


def sealed_file(path: Path, key: str) -> bool:
    """Whether ``path`` exists with a matching seal in ``path.seal``."""
    try:
        return (path.with_name(path.name + ".seal").read_text(encoding="ascii").strip()
                == seal(path.read_bytes(), key))
    except (OSError, UnicodeDecodeError):
        return False


def write_seal(path: Path, key: str) -> None:
    try:
        path.with_name(path.name + ".seal").write_text(seal(path.read_bytes(), key),
                                                        encoding="ascii")
    except OSError:
        pass  # a read-only cache: the file is rebuilt next time
