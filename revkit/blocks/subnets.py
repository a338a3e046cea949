r"""The small networks inside the blocks.

* :class:`ConvSubnet` and :class:`MLPSubnet` are the coupling networks: three layers whose last
  layer starts at zero, so a coupling block starts as the identity. A context ``[B, K]`` is
  concatenated to the input (as ``K`` constant extra channels for images).
* :func:`residual_function` is the RevBlock's ``F``/``G``: two layers with PyTorch's default
  initialisation and no normalisation, as in the seed paper.

The convolutional networks keep their weights and compute in the ``channels_last`` memory format
(the input is converted on entry; the output keeps that layout): with oneDNN on the CPU that makes a
Glow step's forward and backward about 1.3× faster than the default layout (bench/README.md). The
layout changes neither the function nor the ``state_dict`` keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from revkit.invertible import Shape


class ChannelsLast(nn.Sequential):
    """``nn.Sequential`` of convolutions that runs in the ``channels_last`` memory format."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x.contiguous(memory_format=torch.channels_last))


class ConvSubnet(nn.Module):
    r"""``conv3×3(c_in+K → h) → ReLU → conv1×1(h → h) → ReLU → conv3×3(h → c_out)``, ``h = hidden``.

    Maps ``[B, c_in, H, W]`` (and a context ``[B, K]``, broadcast over space) to
    ``[B, c_out, H, W]``. The last convolution is zero-initialised.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, context_size: int = 0):
        super().__init__()
        self.context_size = int(context_size)
        self.net = ChannelsLast(
            nn.Conv2d(in_channels + self.context_size, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, 3, padding=1),
        )
        _zero_init(self.net[-1])

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_size:
            assert context is not None
            planes = context[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, planes], dim=1)
        return self.net(x)


class MLPSubnet(nn.Module):
    r"""``Linear(d_in+K → h) → ReLU → Linear(h → h) → ReLU → Linear(h → d_out)``, ``h = hidden``.

    Maps ``[B, d_in]`` (and a context ``[B, K]``) to ``[B, d_out]``. The last layer is
    zero-initialised.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, context_size: int = 0):
        super().__init__()
        self.context_size = int(context_size)
        self.net = nn.Sequential(
            nn.Linear(in_features + self.context_size, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_features),
        )
        _zero_init(self.net[-1])

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.context_size:
            assert context is not None
            x = torch.cat([x, context], dim=1)
        return self.net(x)


def coupling_subnet(
    in_shape: Shape, out_channels: int, hidden: int, context_size: int = 0
) -> ConvSubnet | MLPSubnet:
    """The coupling network for inputs of per-sample shape ``in_shape``: convolutional for images
    ``(C, H, W)``, an MLP for vectors ``(D,)``; it outputs ``out_channels`` channels (features)."""
    if len(in_shape) == 3:
        return ConvSubnet(in_shape[0], out_channels, hidden, context_size)
    return MLPSubnet(in_shape[0], out_channels, hidden, context_size)


def residual_function(shape: Shape, hidden: int) -> nn.Sequential:
    """The RevBlock's ``F`` (or ``G``) on per-sample shape ``shape`` (one stream, ``(C/2, H, W)`` or
    ``(D/2,)``): ``conv3×3(C/2 → k) → ReLU → conv3×3(k → C/2)`` for images, ``Linear → ReLU →
    Linear`` for vectors; default PyTorch initialisation, no normalisation."""
    channels = shape[0]
    if len(shape) == 3:
        return ChannelsLast(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 3, padding=1),
        )
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))


def _zero_init(layer: nn.Module) -> None:
    for p in layer.parameters():
        nn.init.zeros_(p)
