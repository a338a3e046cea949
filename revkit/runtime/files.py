"""Atomic file writes: a file is either its old content or its new content, never half of one."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it and rename it to ``path``.

    A crash or an exception while writing leaves ``path`` as it was and no temporary file behind
    (a process killed mid-write leaves at most a ``.NAME.….tmp`` file); a ``path`` that is a folder is
    refused (``IsADirectoryError``) before anything is written.
    """
    path = Path(path)
    if path.is_dir():  # refused before anything is created: a temporary file would change the folder
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
