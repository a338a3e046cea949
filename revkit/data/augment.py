r"""Training-time augmentation: random translations of images.

``data.shift = k`` moves each training image by a random whole number of pixels
:math:`(δ_y, δ_x) ∈ \{-k, …, k\}^2`, drawn independently per image and per epoch, filling the
uncovered border with zeros:

.. math:: x'_{c,i,j} = x_{c,\,i-δ_y,\,j-δ_x} \quad (0 \text{ outside the image}).

It is the standard augmentation of MNIST classifiers (a digit moved by a pixel or two is the same
digit), and it changes only the training split; evaluation sees the images as they are.

The offsets come from torch's random generator of the process that loads the data: the run's
seeded generator with ``data.num_workers = 0``, else each worker's own (seeded by the loader per
worker), so a run repeats its shifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from revkit.data.each_image import EachImage
from revkit.errors import DataError


def random_shift(x: Tensor, k: int) -> Tensor:
    """``x`` (``(C, H, W)``) translated by a random offset in ``{-k, …, k}`` along each spatial
    axis, zero-filled; ``k = 0`` returns ``x``."""
    if k == 0:
        return x
    _, h, w = x.shape
    dy, dx = (int(v) for v in torch.randint(0, 2 * k + 1, (2,)))
    return F.pad(x, (k, k, k, k))[:, dy:dy + h, dx:dx + w]


class ShiftedDataset(EachImage):
    """Wraps a dataset whose items hold images ``(C, H, W)`` and translates each image at random by up to
    ``k`` pixels (:func:`random_shift`) every time it is read. A two-domain item
    (``(x_A, y_A, x_B, y_B)``) has each of its images shifted independently."""

    def __init__(self, dataset: Dataset[tuple[Tensor, int]], k: int):
        if k < 0:
            raise DataError(f"data.shift must be ≥ 0, got {k}")
        super().__init__(dataset)
        self.k = int(k)

    def image(self, x: Tensor) -> Tensor:
        return random_shift(x, self.k)


def check_shift(k: int, shape: tuple[int, ...], name: str) -> None:
    """Raise :class:`DataError` unless ``data.shift = k`` can translate samples of ``shape``: images
    ``(C, H, W)`` with ``k`` smaller than both sides."""
    if k == 0:
        return
    if len(shape) != 3:
        raise DataError(f"data.shift = {k} translates images (C, H, W), but '{name}' gives per-sample shape "
                        f"{tuple(shape)}; set data.shift = 0")
    if k >= min(shape[1:]):
        raise DataError(f"data.shift = {k} would move '{name}' images ({shape[1]}×{shape[2]}) entirely out of "
                        f"view; use a shift smaller than {min(shape[1:])} (2 is usual for MNIST)")


__all__ = ["ShiftedDataset", "check_shift", "random_shift"]
