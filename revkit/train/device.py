"""Choosing the torch device from ``train.device``."""

from __future__ import annotations

import re

import torch

from revkit.errors import RevkitError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available, else CPU).

    Raises:
        RevkitError: for an unknown name, or a CUDA device that this machine does not have.
    """
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(name)
    if match is None:
        raise RevkitError(f"train.device: {name!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if not torch.cuda.is_available():
        raise RevkitError(
            f"train.device = {name!r} but CUDA is not available on this machine "
            f"(torch {torch.__version__}); use 'cpu' or 'auto'"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise RevkitError(f"train.device = {name!r} but this machine has {count} CUDA device(s) (0…{count - 1})")
    return torch.device("cuda", index)
