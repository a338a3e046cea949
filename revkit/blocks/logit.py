r"""The logit pre-transform for data in (0, 1), as an invertible block.

.. math::

    u = α + (1 - 2α)\,x, \qquad y = \operatorname{logit}(u) = \log u - \log(1 - u),

    \log\left|\frac{∂y}{∂x}\right| = \log(1 - 2α) - \log u - \log(1 - u)
    = \log(1 - 2α) + \operatorname{softplus}(y) + \operatorname{softplus}(-y),

summed over all entries.

This is the usual first step of image flows (Real NVP, Glow): pixel intensities in ``[0, 1]`` are
squeezed into ``[α, 1 − α]`` (so 0 and 1 stay finite) and mapped to the real line, where a
Gaussian prior fits better. Because it is a block and not a hidden data transform, its Jacobian
is part of the flow's log-det, so ``log p(x)`` is the density of the data as given and bits/dim
stay comparable with models that do not use it.

Since :math:`\operatorname{logit}(u) = 2\operatorname{artanh}(2u - 1)`, the block computes
:math:`y = 2\operatorname{artanh}((1 - 2α)(2x - 1))` and
:math:`x = \tfrac12 + \tanh(y/2) / (2(1 - 2α))`, which keeps full precision even for α close to
½, where rounding ``u`` would lose the detail of ``x``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from revkit.invertible import BlockParams, Invertible, Shape, sum_except_batch


class LogitParams(BlockParams):
    alpha: float = Field(
        0.05, ge=0.0, lt=0.5, description="margin α: x ∈ [0, 1] is squeezed into [α, 1 − α] first"
    )


class Logit(Invertible):
    """``y = logit(α + (1 − 2α)·x)`` for ``x`` in ``(0, 1)``, any per-sample shape.

    Example:
        >>> y, logdet = Logit((1, 4, 4))(torch.rand(2, 1, 4, 4))
    """

    Params = LogitParams
    supported_ranks = (1, 3)
    input_domain = (0.0, 1.0)
    block_name = "logit"

    def __init__(self, input_shape: Shape, *, alpha: float = 0.05):
        super().__init__(input_shape)
        self.alpha = float(alpha)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = 2.0 * torch.atanh((1.0 - 2.0 * self.alpha) * (2.0 * x - 1.0))
        return y, self._log_abs_dydx(y)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = 0.5 + torch.tanh(0.5 * y) / (2.0 * (1.0 - 2.0 * self.alpha))
        return x, -self._log_abs_dydx(y)

    def describe(self) -> str:
        return "Logit"

    def _log_abs_dydx(self, y: Tensor) -> Tensor:
        """``Σ log|∂y/∂x|`` per sample, written in terms of ``y`` (stable for large ``|y|``)."""
        elementwise = F.softplus(y) + F.softplus(-y) + math.log1p(-2.0 * self.alpha)
        return sum_except_batch(elementwise)
