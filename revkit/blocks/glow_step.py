r"""Glow's flow step: actnorm → invertible 1×1 convolution → affine coupling, as one block.

.. math:: f = \text{coupling} ∘ \text{invconv}_{1×1} ∘ \text{actnorm},
          \qquad \log|\det J_f| = \text{sum of the three log-dets}.

Spelling the step out as three ``[[model.layers]]`` tables works too; this block exists so a spec
can say ``block = "glow_step"`` with ``repeat = 8`` (Kingma & Dhariwal, 2018, §3).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from revkit.blocks.actnorm import ActNorm
from revkit.blocks.coupling import AdditiveCoupling, AffineCoupling
from revkit.blocks.invconv import InvConv1x1
from revkit.blocks.masks import MaskKind
from revkit.blocks.shapes import require_rank
from revkit.invertible import BlockParams, Shape
from revkit.sequential import Sequential


class GlowStepParams(BlockParams):
    hidden: int = Field(64, gt=0, description="width of the coupling network's hidden layers")
    coupling: Literal["affine", "additive"] = Field("affine", description="kind of coupling")
    mask: MaskKind = Field("channel", description="coupling mask: 'channel' or 'checkerboard'")
    scale_bound: float = Field(2.0, ge=1e-3, description="bound of the affine coupling's log-scale")
    shift_bound: float = Field(0.0, ge=0.0, description="bound of the affine coupling's shift; 0: unbounded")


class GlowStep(Sequential):
    """ActNorm, InvConv1x1 and a coupling on ``(C, H, W)`` or ``(D,)`` inputs (``C`` even for the
    channel mask). ``context`` reaches the coupling (class conditioning)."""

    Params = GlowStepParams
    conditional = True
    supported_ranks = (1, 3)

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        coupling: Literal["affine", "additive"] = "affine",
        mask: MaskKind = "channel",
        scale_bound: float = 2.0,
        shift_bound: float = 0.0,
        context_size: int = 0,
    ):
        require_rank("glow_step", input_shape, self.supported_ranks, "put a flatten or reshape before it")
        if coupling == "affine":
            couple = AffineCoupling(input_shape, hidden=hidden, mask=mask, scale_bound=scale_bound,
                                    shift_bound=shift_bound, context_size=context_size)
        else:
            couple = AdditiveCoupling(input_shape, hidden=hidden, mask=mask, context_size=context_size)
        super().__init__([ActNorm(input_shape), InvConv1x1(input_shape), couple], input_shape)
        self.hidden = hidden

    def describe(self) -> str:
        return f"GlowStep({self.hidden})"
