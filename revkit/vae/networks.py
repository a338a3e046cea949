r"""The VAE's encoder and decoders for binary images ``(1, 28, 28)`` (any ``(C, H, W)`` with ``H, W``
divisible by 4).

* :class:`ConvEncoder`: ``x [B, C, H, W]`` → ``(μ [B, D], log σ [B, D], h [B, K])`` through
  ``conv5×5/2 (c) → ELU → conv5×5/2 (2c) → ELU → dense (hidden) → ELU`` and three linear heads; ``h``
  is the context of the posterior flow (``K = 0``: ``h`` is None).
* :class:`MLPDecoder`: ``z [B, D]`` → Bernoulli logits ``[B, C, H, W]`` through two dense ELU layers.
* :class:`ConvDecoder`: ``dense → ELU → [2c, H/4, W/4] → convT/2 (c) → ELU → convT/2 (C)``, the
  encoder's mirror.

The log σ head starts at zero weights and bias, so a fresh posterior is :math:`N(μ, I)` up to μ.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from revkit.errors import ShapeError
from revkit.invertible import Shape


def _check_image(shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ShapeError(f"the VAE's networks take images (C, H, W) with H and W divisible by 4, got {tuple(shape)}")
    c, h, w = (int(s) for s in shape)
    return c, h, w


class ConvEncoder(nn.Module):
    """``x → (μ, log σ, h)``; see the module docstring. ``h`` is None when ``context == 0``."""

    def __init__(self, input_shape: Shape, latent: int, channels: int = 32, hidden: int = 300, context: int = 0):
        super().__init__()
        c, h, w = _check_image(input_shape)
        self.features = nn.Sequential(
            nn.Conv2d(c, channels, 5, stride=2, padding=2), nn.ELU(),
            nn.Conv2d(channels, 2 * channels, 5, stride=2, padding=2), nn.ELU(),
            nn.Flatten(), nn.Linear(2 * channels * (h // 4) * (w // 4), hidden), nn.ELU(),
        )
        self.mean = nn.Linear(hidden, latent)
        self.log_std = nn.Linear(hidden, latent)
        nn.init.zeros_(self.log_std.weight)
        nn.init.zeros_(self.log_std.bias)
        self.context = nn.Linear(hidden, context) if context else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        f = self.features(x)
        h = None if self.context is None else torch.tanh(self.context(f))
        return self.mean(f), self.log_std(f), h


class MLPDecoder(nn.Module):
    """``z [B, D]`` → Bernoulli logits ``[B, *output_shape]``."""

    def __init__(self, latent: int, output_shape: Shape, hidden: int = 300):
        super().__init__()
        self.output_shape = tuple(int(s) for s in output_shape)
        self.net = nn.Sequential(
            nn.Linear(latent, hidden), nn.ELU(),
            nn.Linear(hidden, hidden), nn.ELU(),
            nn.Linear(hidden, math.prod(self.output_shape)),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.output_shape)


class ConvDecoder(nn.Module):
    """``z [B, D]`` → Bernoulli logits ``[B, C, H, W]`` (the encoder's mirror)."""

    def __init__(self, latent: int, output_shape: Shape, channels: int = 32, hidden: int = 300):
        super().__init__()
        c, h, w = _check_image(output_shape)
        self.start = (2 * channels, h // 4, w // 4)
        self.dense = nn.Sequential(
            nn.Linear(latent, hidden), nn.ELU(), nn.Linear(hidden, math.prod(self.start)), nn.ELU()
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 5, stride=2, padding=2, output_padding=1), nn.ELU(),
            nn.ConvTranspose2d(channels, c, 5, stride=2, padding=2, output_padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.dense(z).reshape(z.shape[0], *self.start))
