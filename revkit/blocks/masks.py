r"""Coupling masks: which entries a coupling block conditions on and which it transforms.

A mask splits an input ``x`` into ``cond`` (passed through unchanged and fed to the coupling
network) and ``active`` (transformed elementwise with parameters computed from ``cond``), and
merges them back. Both kinds below satisfy ``merge(*split(x)) == x`` and
``split(merge(cond, a))[0] == cond``, which is all a coupling needs to be invertible.

* ``"channel"``: the first and second half of the channels (images ``(C, H, W)``) or features
  (vectors ``(D,)``); ``cond`` and ``active`` have shape ``(C/2, …)``. Needs an even count ≥ 2.
* ``"checkerboard"``: entries at even and odd positions — ``(h + w)`` even/odd for images
  (every channel alike), even/odd feature index for vectors. ``cond`` is ``x`` with the active
  entries zeroed and ``active`` is all of ``x``; only active positions are changed by
  :meth:`Mask.merge` and counted by :meth:`Mask.sum_active`.

``flip=True`` swaps the roles of the two halves.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from revkit.blocks.shapes import require_even_channels
from revkit.errors import RevkitError, ShapeError
from revkit.invertible import Shape, sum_except_batch

MaskKind = Literal["channel", "checkerboard"]


class Mask(nn.Module):
    """Base of the coupling masks (see the module docstring)."""

    #: per-sample shape of ``cond`` (what the coupling network sees).
    cond_shape: Shape
    #: per-sample shape of ``active`` (what the coupling network's output must match, per parameter).
    active_shape: Shape

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` → ``(cond, active)``."""
        raise NotImplementedError

    def merge(self, cond: Tensor, active: Tensor) -> Tensor:
        """``(cond, active)`` → ``x``, the inverse of :meth:`split` (``active`` may be transformed)."""
        raise NotImplementedError

    def sum_active(self, t: Tensor) -> Tensor:
        """Sum ``t`` (shaped like ``active``) over the transformed entries: ``[B, …] → [B]``."""
        raise NotImplementedError


class ChannelMask(Mask):
    """First half of the channels (features) conditions, the second half is transformed."""

    def __init__(self, input_shape: Shape, flip: bool = False):
        super().__init__()
        self.flip = bool(flip)
        self.cond_shape = self.active_shape = (input_shape[0] // 2, *input_shape[1:])

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first, second = x.chunk(2, dim=1)
        return (second, first) if self.flip else (first, second)

    def merge(self, cond: Tensor, active: Tensor) -> Tensor:
        halves = (active, cond) if self.flip else (cond, active)
        return torch.cat(halves, dim=1)

    def sum_active(self, t: Tensor) -> Tensor:
        return sum_except_batch(t)


class CheckerboardMask(Mask):
    """Even positions condition, odd positions are transformed (``(h + w)`` parity for images)."""

    keep: Tensor

    def __init__(self, input_shape: Shape, flip: bool = False):
        super().__init__()
        self.flip = bool(flip)
        self.cond_shape = self.active_shape = tuple(input_shape)
        if len(input_shape) == 3:
            _, height, width = input_shape
            parity = torch.arange(height)[:, None] + torch.arange(width)[None, :]
        else:
            parity = torch.arange(input_shape[0])
        keep = (parity % 2 == 0) != self.flip
        self.register_buffer("keep", keep, persistent=False)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.masked_fill(~self.keep, 0.0), x

    def merge(self, cond: Tensor, active: Tensor) -> Tensor:
        return torch.where(self.keep, cond, active)

    def sum_active(self, t: Tensor) -> Tensor:
        return sum_except_batch(t.masked_fill(self.keep, 0.0))


def make_mask(block: str, kind: MaskKind, input_shape: Shape, flip: bool) -> Mask:
    """The mask ``kind`` for per-sample shape ``input_shape``; raises
    :class:`~revkit.errors.ShapeError` when the shape cannot be split that way."""
    if kind == "channel":
        hint = "use mask='checkerboard'"
        if len(input_shape) == 3:
            hint += " or put a squeeze (or subsample) first"
        require_even_channels(f"{block} with mask='channel'", input_shape, hint)
        return ChannelMask(input_shape, flip)
    if kind == "checkerboard":
        positions = input_shape[0] if len(input_shape) == 1 else input_shape[1] * input_shape[2]
        if positions < 2:
            hint = "use mask='channel'" if len(input_shape) == 3 else "a coupling needs at least 2 features"
            raise ShapeError(
                f"{block} with mask='checkerboard' needs at least 2 positions to alternate, got "
                f"per-sample shape {tuple(input_shape)}; {hint}"
            )
        return CheckerboardMask(input_shape, flip)
    raise RevkitError(f"{block}: unknown mask {kind!r}; allowed: 'channel', 'checkerboard'")
