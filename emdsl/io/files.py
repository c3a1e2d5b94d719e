"""Writing files atomically: the content goes to a temporary file beside the target, which
is then renamed over it, so a crash or a failed write never leaves half a file and the
previous file stays as it was (results, checkpoints, the command line's outputs)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write, sync: bool = False) -> None:
    """Call ``write(fh)`` on a new binary file beside ``path`` (flushed to the disk first
    when ``sync``), then rename it over ``path``; on any failure the temporary file is
    removed and the exception (an OSError for the file system's) propagates."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
