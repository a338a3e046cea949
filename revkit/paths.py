"""The one place where paths given by a user are checked: spec fields (``data.root``,
``output.dir``, ``eval.inception_weights``), command-line options (``--out``, ``--dir``) and run folders.

A path with a control character (a NUL byte, a newline, an escape) is refused before any file
function sees it: the operating system would raise a bare ``ValueError`` for a NUL byte, and a
newline in a folder name is never what was meant. A run folder must be writable before training
starts, so a read-only folder is found in a second, not at the first checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from revkit.errors import RevkitError, printable

ALLOWED = "a path of printable characters (no NUL byte, newline, tab or other control character)"


def path_problem(text: str) -> str | None:
    """None for an acceptable path text, else what is wrong with it."""
    if not text:
        return "is empty; " + ALLOWED
    bad = next((c for c in text if ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029"), None)
    if bad is not None:
        return f"holds the control character {printable(bad)!s} (U+{ord(bad):04X}); allowed: {ALLOWED}"
    try:
        os.fsencode(text)
    except UnicodeError:
        return f"cannot be encoded for the file system; allowed: {ALLOWED}"
    return None


def check_path_text(text: str, where: str) -> Path:
    """``text`` as a Path, or :class:`RevkitError` naming ``where`` (an option or a spec field)."""
    problem = path_problem(text)
    if problem:
        raise RevkitError(f"{where} '{printable(text)}': {problem}")
    return Path(text)


def check_writable_folder(folder: Path, what: str) -> None:
    """Create and remove a probe file in ``folder`` (creating the folder if needed; an existing
    folder's modification time is restored), so a folder that cannot hold checkpoints is reported
    before training starts.

    Raises:
        RevkitError: naming ``folder`` and why it cannot be written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        before = folder.stat()
        fd, probe = tempfile.mkstemp(prefix=".revkit-write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        # the probe leaves no trace: an error found later (a checkpoint that cannot be loaded) leaves the
        # folder exactly as it was, modification time included
        with contextlib.suppress(OSError):  # only the owner may set the times; writing is what matters
            os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    except OSError as exc:
        raise RevkitError(f"{folder}: {what} cannot be written ({exc.strerror or exc}); training has not "
                          "started; make the folder writable or choose another with --out DIR") from None


def check_writable_files(folder: Path, names: list[str], what: str) -> None:
    """Refuse, before training starts, a file ``folder/name`` the run will write when something that
    is not a file (a folder, a broken link, a socket) is in its place or it cannot be written.

    Raises:
        RevkitError: naming the path and why it cannot be written.
    """
    for name in names:
        path = Path(folder) / name
        if path.is_symlink() and not path.exists():
            problem = "is a link to nothing"
        elif path.exists() and not path.is_file():
            problem = "is a folder, not a file" if path.is_dir() else "is not a regular file"
        elif path.exists() and not os.access(path, os.W_OK):
            problem = "cannot be written (no permission)"
        else:
            continue
        raise RevkitError(f"{path}: {problem}, but {what} writes this file; training has not started; move it "
                          "out of the way or choose another run folder with --out DIR")


def read_pointer(path: Path, error: type[RevkitError] = RevkitError) -> str:
    """The text of a small pointer file (``checkpoints/latest``), stripped.

    Raises:
        error: naming the file when it is not UTF-8 text (or cannot be read).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise error(f"{path}: is not UTF-8 text (byte {exc.start}); expected the name of a checkpoint "
                          "file such as step-000500.pt") from None
