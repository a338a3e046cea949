"""Writing a batch of images as one PNG grid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def grid_array(images: Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """Tile ``images [N, C, H, W]`` (intensities in [0, 1], clamped) into an ``uint8`` array.

    ``nrow`` images go in each row. One or three channels are shown as grey or RGB; any other
    channel count is shown as the grey mean over channels. The background is white.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}")
    x = images.detach().float().cpu().clamp(0.0, 1.0)
    if x.shape[1] not in (1, 3):
        x = x.mean(dim=1, keepdim=True)
    n, c, h, w = x.shape
    ncol = max(1, int(nrow))
    rows = max(1, math.ceil(n / ncol))
    canvas = torch.ones(c, pad + rows * (h + pad), pad + ncol * (w + pad))
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, top : top + h, left : left + w] = x[i]
    array = (canvas * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return array[:, :, 0] if c == 1 else array


def save_image_grid(images: Tensor, path: Path, nrow: int | None = None) -> Path:
    """Write ``images [N, C, H, W]`` as a PNG grid with ``nrow`` images per row (default ≈ √N)."""
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    path = Path(path)
    Image.fromarray(grid_array(images, nrow)).save(path, format="PNG")
    return path
