"""The torch device: choosing it from ``train.device`` (or ``--device``), moving batches to it, and
finding the device and dtype a module lives on."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

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


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of an ``(x, y)`` batch (or any tuple/list of tensors) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (the CPU for a module with neither)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of ``module``'s first parameter (the default dtype for a module without one)."""
    for t in module.parameters():
        return t.dtype
    return torch.get_default_dtype()
