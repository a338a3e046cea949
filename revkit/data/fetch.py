"""Opening a torchvision data set from disk, downloading it if allowed, or saying what is missing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from revkit.data.base import ENV_DATA
from revkit.errors import DataError

T = TypeVar("T")


def missing_files(root: Path, expected: Sequence[str]) -> list[str]:
    """The entries of ``expected`` (paths relative to ``root``) that do not exist."""
    return [rel for rel in expected if not (root / rel).exists()]


def first_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` — torchvision's messages run over many lines."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def missing_data_error(
    name: str,
    root: Path,
    expected: Sequence[str],
    download: bool,
    download_error: BaseException | None = None,
) -> DataError:
    """A :class:`DataError` naming the root folder, the files expected there and how to fix it."""
    missing = missing_files(root, expected) or list(expected)
    if download_error is not None:
        why = f"; downloading them failed ({first_line(download_error)})"
    elif not download:
        why = " (data.download is false, so nothing was downloaded)"
    else:
        why = ""
    return DataError(
        f"{name}: data not found in {root}: expected {', '.join(missing)} there{why}. "
        f"Fix: set data.root (or the {ENV_DATA} environment variable) to the folder that holds "
        f"them, or download them on a machine with internet access and copy them into {root}"
    )


def open_or_download(
    name: str,
    root: Path,
    expected: Sequence[str],
    download: bool,
    make: Callable[[bool], T],
) -> T:
    """Open a data set with ``make(download)`` (a torchvision constructor), files first.

    When every path in ``expected`` exists, ``make(False)`` reads them; an error then means the
    files are unreadable. Otherwise, if ``download`` is allowed, ``make(True)`` tries torchvision's
    download. Every failure becomes a :class:`DataError` that names ``root``, the missing files
    and how to fix it.
    """
    if not missing_files(root, expected):
        try:
            return make(False)
        except Exception as exc:  # present but unreadable (truncated, wrong format, …)
            raise DataError(f"{name}: could not read the files in {root} ({first_line(exc)}); "
                            "delete them and download them again") from exc
    if not download:
        raise missing_data_error(name, root, expected, download=False)
    try:
        return make(True)
    except Exception as exc:  # no network, a mirror down, a checksum mismatch, …
        raise missing_data_error(name, root, expected, True, download_error=exc) from exc
