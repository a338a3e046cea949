r"""Reconstructions ``decode(encode(x))``: an exact inverse gives back ``x`` up to float error."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from revkit.eval.images import save_image_grid
from revkit.model import Model


@torch.no_grad()
def reconstruct(flow: Model, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, float]:
    """``x̂ = decode(encode(x))`` in eval mode, and the largest absolute error ``max |x̂ − x|``."""
    was_training = flow.training
    flow.eval()
    try:
        labels = y if flow.conditional else None
        x_hat = flow.decode(flow.encode(x, labels), labels)
    finally:
        flow.train(was_training)
    return x_hat, float((x_hat - x).abs().max()) if x.numel() else 0.0


def write_reconstructions(x: Tensor, x_hat: Tensor, path: Path) -> Path:
    """A PNG with the images ``x [N, C, H, W]`` in the top row and ``x_hat`` below them."""
    n = x.shape[0]
    return save_image_grid(torch.cat([x.cpu(), x_hat.cpu()]), path, nrow=n)
