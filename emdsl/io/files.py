"""Writing files atomically: the content goes to a temporary file beside the target, which
is then renamed over it, so a crash or a failed write never leaves half a file and the
previous file stays as it was (results, checkpoints, the command line's outputs).

The new file gets the mode an ordinary ``open`` would give it (0666 less the umask; an
existing file's own mode when it is replaced), not the 0600 of a temporary file."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def atomic_write(path, write, sync: bool = False) -> None:
    """Call ``write(fh)`` on a new binary file beside ``path`` (flushed to the disk first
    when ``sync``), then rename it over ``path``; on any failure the temporary file is
    removed and the exception (an OSError for the file system's) propagates."""
    atomic_write_all([(path, write)], sync)


def atomic_write_all(files, sync: bool = False) -> None:
    """Write several files (``[(path, write), ...]``) as one: every temporary file is
    written before any is renamed, so a failure in any write leaves none of them."""
    temps, target = [], None
    try:
        for path, write in files:
            target = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=target.parent if str(target.parent) else ".")
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                if sync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.chmod(tmp, _mode(target))
        for tmp, target in temps:
            os.replace(tmp, target)
    except BaseException as exc:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and target is not None:
            exc.target = str(target)   # the file being written (its message unchanged)
        raise


def _mode(target: Path) -> int:
    """The permission bits the file at ``target`` keeps or would get from ``open``."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: read from /proc where there is one (setting it to learn it,
    the fallback, changes it for other threads for an instant)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask
