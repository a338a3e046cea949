r"""The seed paper's two-stream checkerboard subsampling step.

For an input ``(C, H, W)`` the channels are first split into the two streams of the following
RevBlocks exactly as ``torch.chunk(x, 2, dim=1)`` splits them (⌈C/2⌉ and ⌊C/2⌋ channels, so an
RGB image gives streams of 2 and 1 channels; a 1-channel input is a single stream). Each stream ``s``
with ``c`` channels is then space-to-depth'ed, taking its 2×2 phases in the order

.. math:: s[:, :, 0::2, 0::2],\ s[:, :, 1::2, 1::2],\ s[:, :, 0::2, 1::2],\ s[:, :, 1::2, 0::2]

(``4c`` channels of size ``H/2 × W/2``), and the streams are concatenated: ``C×H×W →
4C×H/2×W/2``. The first two phases form the even checkerboard and the last two the odd one, so
after the first step on a 1-channel image the first half of the channels (the next blocks' first
stream) holds the even checkerboard and the second half the odd one, and each stream sees a
subsampled version of the *whole* image rather than one half of it. The map is a permutation of
the entries: log-det 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from revkit.errors import ShapeError
from revkit.invertible import Invertible, Shape

#: the 2×2 phases ``(row offset, column offset)`` in the order they are stacked.
PHASES: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (0, 1), (1, 0))


class Subsample(Invertible):
    """Two-stream checkerboard space-to-depth: ``(C, H, W) → (4C, H/2, W/2)`` (see the module).

    Example:
        >>> block = Subsample((1, 32, 32))
        >>> block(torch.rand(2, 1, 32, 32))[0].shape
        torch.Size([2, 4, 16, 16])
    """

    volume_preserving = True
    supported_ranks = (3,)
    block_name = "subsample"

    def __init__(self, input_shape: Shape):
        super().__init__(input_shape, rank_hint="it works on images; put a reshape before it")
        channels, height, width = input_shape
        if height % 2 or width % 2:
            raise ShapeError(
                f"subsample halves height and width, so both must be even; got per-sample shape "
                f"{tuple(input_shape)}; pad the images (data.pad) or change the layers before it"
            )
        first = (channels + 1) // 2
        #: channels per stream, as ``torch.chunk(x, 2, dim=1)`` splits them.
        self.stream_channels: list[int] = [channels] if channels == 1 else [first, channels - first]

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        phases = [s[:, :, i::2, j::2] for s in x.split(self.stream_channels, dim=1) for i, j in PHASES]
        return torch.cat(phases, dim=1), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        streams = []
        for packed in y.split([len(PHASES) * c for c in self.stream_channels], dim=1):
            phase = dict(zip(PHASES, packed.chunk(len(PHASES), dim=1)))
            # pixel_shuffle wants, per channel, the phases in row-major order (0,0), (0,1), (1,0), (1,1)
            grid = torch.stack([phase[(i, j)] for i in (0, 1) for j in (0, 1)], dim=2)
            streams.append(F.pixel_shuffle(grid.flatten(1, 2), 2))
        return torch.cat(streams, dim=1), self.zero_logdet(y)

    def output_shape(self, input_shape: Shape) -> Shape:
        channels, height, width = super().output_shape(input_shape)
        return (4 * channels, height // 2, width // 2)

    def describe(self) -> str:
        return "Subsample"
