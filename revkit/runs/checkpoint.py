"""Checkpoint files: atomic writes, a ``latest`` pointer, keep-last-N, safe loading.

A checkpoint is a ``torch.save``'d dict of plain data only (tensors, numbers, strings, lists,
dicts), so it is read back with ``torch.load(weights_only=True)`` and never runs pickled code.
Layout inside the run folder::

    checkpoints/step-000500.pt   one file per saved step
    checkpoints/latest           a text file naming the newest one (written last)

Each file is written to a temporary file in the same folder, flushed, fsynced and renamed over its
final name, so a crash or a failure while saving leaves the previous checkpoints intact; the
``latest`` pointer is replaced the same way, after the checkpoint it names. A process killed while
saving leaves at most a ``.step-….tmp`` file behind, which the next save removes.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from revkit.errors import CheckpointError
from revkit.paths import read_pointer
from revkit.pickles import refused_objects
from revkit.runtime.files import atomic_write

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
KEEP_LAST = 3
FORMAT = 1
#: keys every revkit checkpoint has.
REQUIRED_KEYS = ("format", "step", "flow", "objective", "optimizers", "schedulers", "rng", "spec")

#: the type of each required entry (what load_checkpoint checks before anyone uses them).
ENTRY_TYPES: dict[str, type] = {"step": int, "flow": dict, "objective": dict, "optimizers": dict,
                                "schedulers": dict, "rng": dict, "spec": str}

_KIND_NAMES = {int: "an integer", dict: "a dict", str: "a string"}
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    """``step-000500.pt`` for step 500."""
    return f"step-{int(step):06d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """The checkpoint files in ``folder``, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` would not read back."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, torch.dtype, torch.device)):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint key {where}[{k!r}] is a {type(k).__name__}, not a str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint entry {where} is a {type(value).__name__}; only plain data may be saved")


def save_checkpoint(folder: Path, state: dict[str, Any], keep: int = KEEP_LAST) -> Path:
    """Write ``state`` as ``folder/step-NNNNNN.pt``, point ``latest`` at it, keep the newest ``keep``.

    ``state`` must hold the :data:`REQUIRED_KEYS` (``format`` is filled in) and plain data only.

    Returns:
        the path of the new checkpoint.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    _check_plain(state, "state")
    path = folder / checkpoint_name(state["step"])
    for stale in folder.glob(".*.tmp"):  # left by a process killed while saving
        stale.unlink(missing_ok=True)
    previous = list_checkpoints(folder)
    try:
        atomic_write(path, lambda f: torch.save(state, f))
        atomic_write(folder / LATEST, lambda f: f.write((path.name + "\n").encode()))
    except OSError as exc:  # a full disk, a folder made read-only while training
        raise CheckpointError(f"{path}: cannot be written ({exc.strerror or exc}); {_kept(previous, folder)}") from exc
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def _kept(previous: list[Path], folder: Path) -> str:
    """What a failed save left intact, for its message."""
    if not previous:
        return "no checkpoint of this run was saved before, so there is none to resume from"
    return (f"the last checkpoint, {previous[-1]}, is intact and {folder / LATEST} still names it; free space "
            "and continue with --resume")


def latest_checkpoint(folder: Path) -> Path:
    """The checkpoint that ``folder/latest`` names.

    Raises:
        CheckpointError: when there is no ``latest`` file or it names a missing file.
    """
    folder = Path(folder)
    pointer = folder / LATEST
    if not pointer.exists():
        raise CheckpointError(f"{pointer}: no checkpoint to resume from (the run saved none yet)")
    name = read_pointer(pointer, CheckpointError)
    if not _NAME.match(name):
        raise CheckpointError(f"{pointer}: names {name!r}, which is not a checkpoint file (step-NNNNNN.pt)")
    path = folder / name
    if not path.exists():
        raise CheckpointError(f"{pointer}: names {name}, which does not exist")
    return path


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*([^\n]+?)(?:\.\s|\n|$)")
#: what a checkpoint is, for messages about files that are not one.
EXPECTED = "a revkit checkpoint (a torch.save'd dict of tensors and plain data, written by `revkit run`)"


def _reason(exc: BaseException) -> str:
    """What went wrong, on one line: torch's unpickler detail when there is one (``Unsupported
    global: GLOBAL io.open …``), else the message's first line; no terminal colour codes."""
    text = _ANSI.sub("", str(exc)).strip()
    detail = _UNPICKLER.search(text)
    if detail:
        return detail.group(1).strip().rstrip(".")
    # torch's advice to load without weights_only is never passed on: that load would run code
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line
             and "Weights only load failed" not in line and "torch.load" not in line]
    return lines[0] if lines else type(exc).__name__


def _is_refused_object(exc: BaseException) -> bool:
    """True when ``torch.load(weights_only=True)`` refused the file because its pickle would
    import something (a class or function: the way a pickle runs code)."""
    return isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors and plain data only, so
    loading never runs code stored in the file.

    Raises:
        CheckpointError: naming the file, when it is missing, a folder, empty, truncated, corrupt,
            holds objects other than tensors and plain data, or is not a revkit checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; expected {EXPECTED}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: is empty, so the file is truncated or corrupt; expected {EXPECTED}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: not one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip, pickle and EOF errors all mean the same to the user
        objects = refused_objects(path)
        if objects or _is_refused_object(exc):
            named = ", ".join(objects[:3]) or _reason(exc)
            raise CheckpointError(
                f"{path}: refused, because loading it would run code: its pickle imports or calls {named}, "
                f"and revkit loads tensors and plain data only (nothing in the file was run); "
                f"expected {EXPECTED}") from exc
        raise CheckpointError(f"{path}: cannot be read, the file is truncated or corrupt ({_reason(exc)}); "
                              f"expected {EXPECTED}") from exc
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        have = sorted(map(str, state)) if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CheckpointError(f"{path}: not a revkit checkpoint (expected keys {list(REQUIRED_KEYS)}, got {have})")
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']!r}; this revkit reads format {FORMAT}")
    for key, kind in ENTRY_TYPES.items():
        value = state[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"{path}: not a revkit checkpoint: its '{key}' is a {type(value).__name__}, "
                                  f"expected {_KIND_NAMES[kind]}")
    if state["step"] < 0:
        raise CheckpointError(f"{path}: not a revkit checkpoint: its step is {state['step']}, expected ≥ 0")
    return state
