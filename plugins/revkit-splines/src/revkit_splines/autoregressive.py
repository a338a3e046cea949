r"""``rq_spline_autoregressive``: every feature through its own rational-quadratic spline, whose
parameters depend on the features before it (Durkan et al. 2019, §3.2; a masked autoregressive flow with
spline transformers).

For a vector :math:`x ∈ ℝ^D` with the features in order :math:`1…D` (``flip`` reverses it) and a MADE
network (:mod:`revkit_splines.made`):

.. math::

    y_i = g_{θ_i}(x_i), \qquad θ_i = \mathrm{MADE}(x_{<i}, c)_i, \qquad
    \log|\det ∂y/∂x| = \textstyle\sum_i \log g_{θ_i}'(x_i),

since :math:`∂y/∂x` is triangular. :math:`g_θ` is the monotone rational-quadratic spline with ``bins``
bins on :math:`[-B, B]` and identity tails (:mod:`revkit_splines.rational_quadratic`). The forward pass
(data → latent, the density direction) is one network evaluation; the inverse (sampling) is exact but
sequential: pass :math:`k` recomputes :math:`θ` from the current estimate, whose first :math:`k-1`
features are already right, and inverts every spline, so after :math:`D` passes all :math:`D` are right.
Every transformed feature can depend on every earlier one, which a coupling cannot offer; the price is
``D`` network evaluations to sample.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from revkit.blocks import Invertible, Shape, require_context
from revkit_splines.made import MADE
from revkit_splines.params import SplineParams
from revkit_splines.rational_quadratic import parameter_count, rq_spline, rq_spline_inverse, spline_knots

BLOCK_NAME = "rq_spline_autoregressive"


class RQSplineAutoregressiveParams(SplineParams):
    hidden: int = Field(64, ge=4, description="width of the MADE network's two hidden layers")
    flip: bool = Field(
        False,
        description="order the features D…1 instead of 1…D (with repeat, the builder alternates it between copies)",
    )


class RQSplineAutoregressive(Invertible):
    r"""Autoregressive rational-quadratic spline flow on vectors ``(D,)``.

    Args:
        input_shape: per-sample shape ``(D,)``.
        hidden: width of the MADE network.
        bins: number of spline bins ``K ≥ 2``.
        bound: tail bound ``B``.
        flip: reverse the autoregressive order.
        context_size: size ``K_c`` of the context ``[batch, K_c]`` (0: the block ignores context).

    Shapes: ``forward(x [batch, D]) -> (y [batch, D], logdet [batch])``, data → latent; ``inverse`` takes
    ``D`` network evaluations.

    Example:
        >>> block = RQSplineAutoregressive((5,), hidden=32, bins=8, bound=3.0)
        >>> y, logdet = block(torch.randn(2, 5))
        >>> x, inverse_logdet = block.inverse(y)            # x ≈ input, inverse_logdet ≈ −logdet
    """

    Params = RQSplineAutoregressiveParams
    conditional = True
    supported_ranks = (1,)
    block_name = BLOCK_NAME

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        bins: int = 8,
        bound: float = 3.0,
        flip: bool = False,
        context_size: int = 0,
    ):
        super().__init__(input_shape, rank_hint="it is autoregressive over the features of a vector: put a "
                         "flatten before it, or use rq_spline_coupling on images")
        self.hidden, self.bins, self.bound = int(hidden), int(bins), float(bound)
        self.flip = bool(flip)
        self.context_size = int(context_size)
        self.made = MADE(self.input_shape[0], parameter_count(self.bins), self.hidden, self.context_size,
                         reverse=self.flip)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        knots = spline_knots(self.made(x, require_context(BLOCK_NAME, self.context_size, context, x)), self.bound)
        y, log_derivative = rq_spline(x, knots)
        return y, log_derivative.sum(dim=1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        context = require_context(BLOCK_NAME, self.context_size, context, y)
        x = torch.zeros_like(y)
        for _ in range(self.input_shape[0]):
            x, log_derivative = rq_spline_inverse(y, spline_knots(self.made(x, context), self.bound))
        return x, log_derivative.sum(dim=1)

    def describe(self) -> str:
        order = ", reversed" if self.flip else ""
        return f"RQSplineAutoregressive({self.hidden}, K={self.bins}, B={self.bound:g}{order})"


__all__ = ["BLOCK_NAME", "RQSplineAutoregressive", "RQSplineAutoregressiveParams"]
