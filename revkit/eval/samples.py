"""Drawing samples from a flow: a PNG grid for images, a scatter for 2-D data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from revkit.errors import RevkitError
from revkit.eval.images import save_image_grid
from revkit.eval.plots2d import scatter_samples
from revkit.limits import check_memory
from revkit.model import Model

CHUNK = 256
#: bytes of memory per sample value while a grid is drawn and written (the float samples, the grid,
#: its 8-bit copy and the PNG encoder's buffers); measured: 100,000 MNIST samples peak at about 1.9 GiB.
GRID_BYTES_PER_VALUE = 24


def class_count(flow: Model) -> int:
    """Number of classes the flow samples per class (0 for an unconditional model)."""
    prior = flow.prior
    if flow.conditional or (prior is not None and prior.conditional):
        return max(flow.classes, prior.classes if prior is not None else 0)
    return 0


def sample_total(flow: Model, n: int) -> int:
    """How many samples ``draw_samples(flow, n)`` draws (a full row per class for a conditional model)."""
    classes = class_count(flow)
    return classes * max(1, math.ceil(n / classes)) if classes else n


def check_grid_memory(count: int, shape: Sequence[int], where: str, what: str) -> None:
    """Refuse, before anything is drawn, a picture of ``count`` images of per-image ``shape``
    that would not fit in memory.

    Raises:
        RevkitError: ``<where>: <what> of shape C×H×W needs about …``, with the memory allowed.
    """
    dims = [int(d) for d in shape]
    check_memory(float(count) * math.prod(dims) * GRID_BYTES_PER_VALUE, where,
                 f"{what} of shape {'×'.join(str(d) for d in dims)}")


def check_sample_memory(flow: Model, n: int, where: str) -> None:
    """Refuse, before anything is drawn, a grid of ``n`` samples that would not fit in memory.

    Raises:
        RevkitError: naming ``where`` (``-n``, ``eval.samples``), the memory needed and the memory allowed.
    """
    if is_2d(flow):
        return
    total = sample_total(flow, n)
    check_grid_memory(total, flow.input_shape, where, f"a picture of {total:,} samples")


@torch.no_grad()
def draw_samples(flow: Model, n: int, temperature: float = 1.0) -> tuple[Tensor, int]:
    """``n`` samples ``[n, *input_shape]`` in eval mode, and the number per row of a grid.

    A class-conditional model gives a row per class: ``⌈n / classes⌉`` samples of class 0, then of
    class 1, … (so ``classes · ⌈n / classes⌉`` samples in all).
    """
    was_training = flow.training
    flow.eval()
    try:
        classes = class_count(flow)
        device = next(itertools.chain(flow.parameters(), flow.buffers()), torch.empty(0)).device
        if classes:
            per = max(1, math.ceil(n / classes))
            labels: Tensor | None = torch.arange(classes, device=device).repeat_interleave(per)
            ncol = per
        else:
            labels, ncol = None, max(1, math.ceil(math.sqrt(n)))
        total = labels.numel() if labels is not None else n
        chunks = []
        for start in range(0, total, CHUNK):
            k = min(CHUNK, total - start)
            y = labels[start : start + k] if labels is not None else None
            chunks.append(flow.sample(k, y=y, temperature=temperature).cpu())
        return torch.cat(chunks), ncol
    finally:
        flow.train(was_training)


def is_2d(flow: Model) -> bool:
    """The flow models 2-D points (per-sample shape ``(2,)``): plotted, not shown as images."""
    return tuple(flow.input_shape) == (2,)


def write_samples(flow: Model, path: Path, n: int, temperature: float = 1.0, data: Tensor | None = None,
                  where: str = "the number of samples") -> Path:
    """Write ``n`` samples as ``path`` (PNG): an image grid, or for 2-D data a scatter over ``data``.

    Raises:
        RevkitError: naming ``where`` when the grid would not fit in memory (before drawing).
    """
    check_sample_memory(flow, n, where)
    samples, ncol = draw_samples(flow, n, temperature)
    bad = int((~torch.isfinite(samples.reshape(len(samples), -1))).any(dim=1).sum()) if samples.numel() else 0
    if bad:
        raise RevkitError(f"{path}: not written: {bad} of {len(samples)} samples at temperature {temperature:g} are "
                          "not finite (the model's inverse overflows that far from the prior's mean); choose a "
                          "smaller temperature")
    if is_2d(flow):
        return scatter_samples(samples, path, data=data, title=f"samples (T = {temperature:g})")
    return save_image_grid(samples, path, nrow=ncol)
