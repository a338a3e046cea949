r"""``rq_spline_coupling``: a coupling block whose elementwise map is a rational-quadratic spline.

A subclass of revkit's public :class:`revkit.blocks.Coupling`: a mask splits the input into ``x_c``
(kept) and ``x_a`` (transformed), and the coupling network reads ``x_c`` and the optional context ``c``:

.. math::

    y_c = x_c, \qquad y_a = g_θ(x_a), \qquad θ = NN(x_c, c),
    \qquad \log|\det ∂y/∂x| = \textstyle\sum_a \log g_θ'(x_a),

where :math:`g_θ` is, per active entry, a monotone rational-quadratic spline with ``bins`` bins on
:math:`[-B, B]` and the identity outside (:mod:`revkit_splines.rational_quadratic`). The network emits
``3·bins − 1`` numbers per active entry (``parameters_per_entry``), handed over as
``[batch, 3·bins − 1, *active_shape]``; its last layer starts at zero, so a fresh block is the identity.
The inverse recomputes :math:`θ` from :math:`y_c = x_c` and applies :math:`g_θ^{-1}`. Masks, context,
shape checks and the memory-saving backward that evaluates the network once all come from ``Coupling``.

Reference: C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural Spline Flows", NeurIPS 2019.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from revkit.blocks import Coupling, CouplingParams, MaskKind, Shape
from revkit_splines.params import SplineParams
from revkit_splines.rational_quadratic import (
    SplineKnots,
    parameter_count,
    rq_spline,
    rq_spline_inverse,
    spline_knots,
)

BLOCK_NAME = "rq_spline_coupling"


class RQSplineCouplingParams(CouplingParams, SplineParams):
    """revkit's coupling keys (``hidden``, ``mask``, ``flip``) and the spline's (``bins``, ``bound``)."""

    hidden: int = Field(
        64,
        ge=4,
        description="width of the coupling network's hidden layers (at least 4: narrower ReLU layers die "
        "easily, and then the spline's parameters stop learning)",
    )


class RQSplineCoupling(Coupling):
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
    block_name = BLOCK_NAME

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
        super().__init__(input_shape, hidden=hidden, mask=mask, flip=flip, context_size=context_size,
                         parameters_per_entry=parameter_count(int(bins)))
        self.bins = int(bins)
        self.bound = float(bound)

    def forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`(g_θ(x_a), \\log g_θ'(x_a))` per entry."""
        return rq_spline(active, self.knots(params))

    def inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`(g_θ^{-1}(y_a), -\\log g_θ'(g_θ^{-1}(y_a)))` per entry."""
        return rq_spline_inverse(active, self.knots(params))

    def knots(self, params: Tensor) -> SplineKnots:
        """The splines' knots from the network output ``[batch, 3K − 1, *active_shape]``."""
        return spline_knots(torch.movedim(params, 1, -1), self.bound)

    def describe(self) -> str:
        extra = "" if self.mask_kind == "channel" else f", {self.mask_kind}"
        return f"RQSplineCoupling({self.hidden}, K={self.bins}, B={self.bound:g}{extra})"


__all__ = ["BLOCK_NAME", "RQSplineCoupling", "RQSplineCouplingParams"]
