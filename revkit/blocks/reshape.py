r"""Reshaping blocks: ``flatten`` and ``reshape``.

Both only rearrange the per-sample entries (row-major, as :meth:`torch.Tensor.reshape`), so the
log-det is 0. They connect image blocks ``(C, H, W)`` to vector blocks ``(D,)`` and back.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, PositiveInt
from torch import Tensor

from revkit.errors import ShapeError
from revkit.invertible import BlockParams, Invertible, Shape, numel


class ReshapeParams(BlockParams):
    shape: list[PositiveInt] = Field(
        min_length=1, description="per-sample output shape, e.g. [4, 16, 16]; same number of elements"
    )


class _Rearrange(Invertible):
    """A reshape from ``input_shape`` to ``target``: shared by :class:`Flatten` and :class:`Reshape`."""

    volume_preserving = True
    block_name: ClassVar[str] = "reshape"

    def __init__(self, input_shape: Shape, target: Shape, rank_hint: str = ""):
        super().__init__(input_shape, rank_hint=rank_hint)
        self.target = tuple(target)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.target), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y.reshape(y.shape[0], *self.input_shape), self.zero_logdet(y)

    def output_shape(self, input_shape: Shape) -> Shape:
        super().output_shape(input_shape)
        return self.target


class Flatten(_Rearrange):
    """``(C, H, W) → (C·H·W,)``.

    Example:
        >>> Flatten((4, 2, 2)).output_shape((4, 2, 2))
        (16,)
    """

    supported_ranks = (3,)
    block_name = "flatten"

    def __init__(self, input_shape: Shape):
        super().__init__(input_shape, (numel(input_shape),), "a vector is already flat: remove the flatten")

    def describe(self) -> str:
        return "Flatten"


class Reshape(_Rearrange):
    """Any per-sample shape → ``shape`` with the same number of elements.

    Example:
        >>> Reshape((1024,), shape=[4, 16, 16]).output_shape((1024,))
        (4, 16, 16)
    """

    Params = ReshapeParams
    supported_ranks = (1, 3)
    block_name = "reshape"

    def __init__(self, input_shape: Shape, *, shape: list[int]):
        super().__init__(input_shape, tuple(shape))
        if not shape or min(shape) < 1 or numel(input_shape) != numel(shape):
            raise ShapeError(
                f"reshape cannot turn per-sample shape {tuple(input_shape)} ({numel(input_shape)} "
                f"elements) into {tuple(shape)} ({numel(shape)} elements); the target shape needs "
                f"positive sizes with the same number of elements"
            )

    def describe(self) -> str:
        return f"Reshape({', '.join(map(str, self.target))})"
