r"""``rq_spline_coupling``: a coupling block whose elementwise map is a rational-quadratic spline.

As in revkit's couplings, a mask (``revkit.blocks.masks``) splits the input into ``x_c`` (kept) and
``x_a`` (transformed), and a network (``revkit.blocks.subnets``) reads ``x_c`` and the optional context
``c``:

.. math::

    y_c = x_c, \qquad y_a = g_θ(x_a), \qquad θ = NN(x_c, c),
    \qquad \log|\det ∂y/∂x| = \textstyle\sum_a \log g_θ'(x_a),

where :math:`g_θ` is, per active entry, a monotone rational-quadratic spline with ``bins`` bins on
:math:`[-B, B]` and the identity outside (:mod:`revkit_splines.rational_quadratic`). The network emits
``3·bins − 1`` numbers per active entry and its last layer starts at zero, so a fresh block is the identity.
The inverse recomputes :math:`θ` from :math:`y_c = x_c` and applies :math:`g_θ^{-1}`.

Reference: C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural Spline Flows", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field
from torch import Tensor

from revkit import Invertible
from revkit.blocks.masks import MaskKind, make_mask
from revkit.blocks.shapes import require_built_shape, require_context, require_rank
from revkit.blocks.subnets import coupling_subnet
from revkit.invertible import Shape
from revkit_splines.params import SplineParams
from revkit_splines.rational_quadratic import (
    SplineKnots,
    parameter_count,
    rq_spline,
    rq_spline_inverse,
    spline_knots,
)

BLOCK_NAME = "rq_spline_coupling"

ElementwiseMap = Callable[[Tensor, SplineKnots], tuple[Tensor, Tensor]]


class RQSplineCouplingParams(SplineParams):
    hidden: int = Field(
        64,
        ge=4,
        description="width of the coupling network's hidden layers (at least 4: narrower ReLU layers die "
        "easily, and then the spline's parameters stop learning)",
    )
    mask: MaskKind = Field(
        "channel",
        description="'channel': halves of the channels (features); "
        "'checkerboard': alternating spatial positions (even/odd features)",
    )
    flip: bool = Field(
        False,
        description="transform the other half (with repeat, the builder alternates it between copies)",
    )


class RQSplineCoupling(Invertible):
    r"""Rational-quadratic spline coupling with linear (identity) tails, for images and vectors.

    Args:
        input_shape: per-sample shape, ``(C, H, W)`` or ``(D,)``.
        hidden: width of the coupling network.
        bins: number of spline bins ``K ≥ 2``.
        bound: tail bound ``B``; entries outside ``[−B, B]`` pass through unchanged.
        mask: ``"channel"`` or ``"checkerboard"``.
        flip: transform the other half.
        context_size: size ``K_c`` of the context ``[batch, K_c]`` (0: the block ignores context).

    Shapes: ``forward(x [batch, *input_shape]) -> (y [batch, *input_shape], logdet [batch])``, data → latent.

    Example:
        >>> block = RQSplineCoupling((4, 8, 8), hidden=32, bins=8, bound=3.0)
        >>> y, logdet = block(torch.randn(2, 4, 8, 8))
        >>> x, inverse_logdet = block.inverse(y)            # x ≈ input, inverse_logdet ≈ −logdet
    """

    Params = RQSplineCouplingParams
    conditional = True
    supported_ranks = (1, 3)

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        bins: int = 8,
        bound: float = 3.0,
        mask: MaskKind = "channel",
        flip: bool = False,
        context_size: int = 0,
    ):
        super().__init__()
        require_rank(BLOCK_NAME, input_shape, self.supported_ranks, "put a flatten or reshape before it")
        self.input_shape = tuple(input_shape)
        self.hidden = int(hidden)
        self.bins = int(bins)
        self.bound = float(bound)
        self.mask_kind = mask
        self.flip = bool(flip)
        self.context_size = int(context_size)
        self.mask = make_mask(BLOCK_NAME, mask, self.input_shape, self.flip)
        self.per_entry = parameter_count(self.bins)
        active_channels = self.mask.active_shape[0]
        self.subnet = coupling_subnet(self.mask.cond_shape, active_channels * self.per_entry, self.hidden,
                                      self.context_size)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, rq_spline)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, rq_spline_inverse)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_built_shape(BLOCK_NAME, self.input_shape, input_shape)
        return self.input_shape

    def describe(self) -> str:
        extra = "" if self.mask_kind == "channel" else f", {self.mask_kind}"
        return f"RQSplineCoupling({self.hidden}, K={self.bins}, B={self.bound:g}{extra})"

    def _couple(self, x: Tensor, context: Tensor | None, elementwise: ElementwiseMap) -> tuple[Tensor, Tensor]:
        cond, active = self.mask.split(x)
        raw = self.subnet(cond, require_context(BLOCK_NAME, self.context_size, context, x))
        knots = spline_knots(self._per_entry(raw, active), self.bound)
        new_active, log_derivative = elementwise(active, knots)
        return self.mask.merge(cond, new_active), self.mask.sum_active(log_derivative)

    def _per_entry(self, raw: Tensor, active: Tensor) -> Tensor:
        """Network output ``[batch, P·C_a, …]`` (parameter-major channels) → ``[batch, C_a, …, P]``."""
        batch, channels = active.shape[0], active.shape[1]
        grouped = raw.reshape(batch, self.per_entry, channels, *active.shape[2:])
        return torch.movedim(grouped, 1, -1)


__all__ = ["BLOCK_NAME", "RQSplineCoupling", "RQSplineCouplingParams"]
