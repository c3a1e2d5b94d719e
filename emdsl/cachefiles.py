"""The on-disk cache (``$EMDSL_CACHE`` or ``~/.cache/emdsl``) and its seals.

Every file emdsl reads back from the cache carries a seal: an HMAC-SHA256 of its content
and of a key naming what wrote it, under a secret of this user's that lives outside the
cache (``$EMDSL_KEY`` or ``~/.config/emdsl/cache-key``, created with mode 0600).  A file
whose seal does not match (planted, edited, or cut short) is rebuilt, never executed or
unpickled; without a readable secret nothing is read from the cache at all.  The content
is checked and used from the same bytes in memory (no second read of the file).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("EMDSL_CACHE") or Path.home() / ".cache" / "emdsl")


def _key_path() -> Path:
    return Path(os.environ.get("EMDSL_KEY") or Path.home() / ".config" / "emdsl" / "cache-key")


@functools.lru_cache(maxsize=4)
def _secret(path: str) -> bytes | None:
    p = Path(path)
    try:
        return bytes.fromhex(p.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pass
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32))
        return bytes.fromhex(p.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None   # no secret: the cache is neither read nor written


def secret() -> bytes | None:
    return _secret(str(_key_path()))


def seal(data: bytes, key: str) -> str | None:
    s = secret()
    if s is None:
        return None
    return hmac.new(s, key.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def read_sealed(path: Path, key: str) -> bytes | None:
    """The payload of a sealed cache file, or None when it is missing or its seal does
    not match."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head, _, payload = blob.partition(b"\n")
    want = seal(payload, key)
    if want is None or not hmac.compare_digest(head, want.encode()):
        return None
    return payload


def write_sealed(path: Path, key: str, payload: bytes) -> None:
    """Write ``payload`` with its seal, atomically (a crash never leaves half a file)."""
    mark = seal(payload, key)
    if mark is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(mark.encode() + b"\n" + payload)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache is no reason to fail
