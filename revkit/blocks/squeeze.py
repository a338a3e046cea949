r"""Plain space-to-depth (Real NVP / Glow squeeze).

``(C, H, W) → (C·f², H/f, W/f)`` with ``y[c·f² + i·f + j, h, w] = x[c, h·f + i, w·f + j]``
(:func:`torch.nn.functional.pixel_unshuffle`); the inverse is ``pixel_shuffle``. A permutation of
the entries: log-det 0. For the seed paper's two-stream checkerboard variant see
:mod:`revkit.blocks.subsample`.
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from revkit.errors import ShapeError
from revkit.invertible import BlockParams, Invertible, Shape


class SqueezeParams(BlockParams):
    factor: int = Field(2, ge=2, description="side of the f×f patches moved into channels")


class Squeeze(Invertible):
    """Space-to-depth by ``factor``: ``(C, H, W) → (C·f², H/f, W/f)``.

    Example:
        >>> Squeeze((3, 8, 8)).output_shape((3, 8, 8))
        (12, 4, 4)
    """

    Params = SqueezeParams
    volume_preserving = True
    supported_ranks = (3,)
    block_name = "squeeze"

    def __init__(self, input_shape: Shape, *, factor: int = 2):
        super().__init__(input_shape, rank_hint="it works on images; put a reshape before it")
        channels, height, width = input_shape
        if height % factor or width % factor:
            raise ShapeError(
                f"squeeze with factor={factor} needs height and width divisible by {factor}; got "
                f"per-sample shape {tuple(input_shape)}; pad the images (data.pad) or use another factor"
            )
        self.factor = int(factor)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_unshuffle(x, self.factor), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(y, self.factor), self.zero_logdet(y)

    def output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = super().output_shape(input_shape)
        f = self.factor
        return (channels * f * f, height // f, width // f)

    def describe(self) -> str:
        return "Squeeze" if self.factor == 2 else f"Squeeze({self.factor})"
