r"""Two built-in discriminators: a small convolutional network for images and an MLP for vectors.

``conv`` on ``(C, H, W)``: two strided convolutions (kernel 4, stride 2, padding 1: each halves the
height and width, rounding down), ``C → h → 2h`` channels, LeakyReLU(0.2) after each, flattened to
:math:`\phi(x)` of size :math:`2h \cdot H'' W''`; no normalization layer (a gradient penalty needs a
per-sample critic), spectral normalization of every weight when ``spectral_norm`` is true.

``mlp`` on any shape (flattened): ``D → h → h``, LeakyReLU(0.2) after each.
"""

from __future__ import annotations

import math

from pydantic import Field
from torch import Tensor, nn

from revkit.discriminators.base import Discriminator, DiscriminatorParams, maybe_spectral
from revkit.invertible import Shape


class ConvParams(DiscriminatorParams):
    hidden: int = Field(64, ge=1, le=4096, description="channels of the first convolution (twice that in the second)")
    spectral_norm: bool = Field(True, description="spectrally normalize every weight (about 1-Lipschitz layers)")


def _halved(size: int) -> int:
    """Output size of a kernel-4, stride-2, padding-1 convolution."""
    return (size + 2 - 4) // 2 + 1


class ConvDiscriminator(Discriminator):
    """The image discriminator ``conv`` (see the module); scores ``[B]``.

    Example:
        >>> ConvDiscriminator((1, 28, 28), hidden=8)(torch.rand(3, 1, 28, 28)).shape
        torch.Size([3])
    """

    Params = ConvParams
    supported_ranks = (3,)

    def __init__(self, input_shape: Shape, classes: int = 0, hidden: int = 64, spectral_norm: bool = True):
        super().__init__(input_shape, classes)
        c, h, w = self.input_shape
        if min(h, w) < 2:
            raise ValueError(f"conv discriminator: images need height and width ≥ 2, got {self.input_shape}")
        self.hidden, self.spectral = int(hidden), bool(spectral_norm)
        self.net = nn.Sequential(
            maybe_spectral(nn.Conv2d(c, hidden, 4, 2, 1), self.spectral), nn.LeakyReLU(0.2),
            maybe_spectral(nn.Conv2d(hidden, 2 * hidden, 4, 2, 1), self.spectral), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.make_head(2 * hidden * _halved(_halved(h)) * _halved(_halved(w)), self.spectral)

    def features(self, x: Tensor) -> Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, spectral_norm={self.spectral}, classes={self.classes}"


class MLPParams(DiscriminatorParams):
    hidden: int = Field(256, ge=1, le=65536, description="width of the two hidden layers")
    spectral_norm: bool = Field(True, description="spectrally normalize every weight")


class MLPDiscriminator(Discriminator):
    """The discriminator ``mlp`` on flattened samples (see the module); scores ``[B]``."""

    Params = MLPParams

    def __init__(self, input_shape: Shape, classes: int = 0, hidden: int = 256, spectral_norm: bool = True):
        super().__init__(input_shape, classes)
        self.hidden, self.spectral = int(hidden), bool(spectral_norm)
        d = math.prod(self.input_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            maybe_spectral(nn.Linear(d, hidden), self.spectral), nn.LeakyReLU(0.2),
            maybe_spectral(nn.Linear(hidden, hidden), self.spectral), nn.LeakyReLU(0.2),
        )
        self.make_head(hidden, self.spectral)

    def features(self, x: Tensor) -> Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, spectral_norm={self.spectral}, classes={self.classes}"
