r"""A fixed permutation of the channels (images) or features (vectors).

``y[:, k] = x[:, π(k)]`` with ``π`` the reversal (``mode="reverse"``) or a random permutation drawn
once from ``seed`` (``mode="random"``). ``π`` and its inverse are buffers, so they travel with the
``state_dict``. A permutation has log-det 0.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from revkit.invertible import BlockParams, Invertible, Shape
from revkit.limits import SEED

PermuteMode = Literal["reverse", "random"]


class PermuteParams(BlockParams):
    mode: PermuteMode = Field(
        "reverse", description="'reverse': reverse the channel order; 'random': a fixed random order"
    )
    seed: int = SEED.field(0, "seed of the random permutation (mode='random')")


class Permute(Invertible):
    """Fixed channel (feature) permutation.

    Example:
        >>> Permute((3,))(torch.tensor([[1.0, 2.0, 3.0]]))[0]
        tensor([[3., 2., 1.]])
    """

    Params = PermuteParams
    volume_preserving = True
    supported_ranks = (1, 3)
    block_name = "permute"
    permutation: Tensor
    inverse_permutation: Tensor

    def __init__(self, input_shape: Shape, *, mode: PermuteMode = "reverse", seed: int = 0):
        super().__init__(input_shape, rank_hint="put a flatten or reshape before it")
        self.mode = mode
        self.seed = int(seed)
        channels = self.input_shape[0]
        if mode == "reverse":
            permutation = torch.arange(channels - 1, -1, -1)
        else:
            permutation = torch.randperm(channels, generator=torch.Generator().manual_seed(self.seed))
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.permutation), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y.index_select(1, self.inverse_permutation), self.zero_logdet(y)

    def describe(self) -> str:
        return f"Permute({self.mode})"
