r"""The seed paper's reversible residual block (RevBlock, after RevNet).

The channels (features) are split into two streams :math:`x_1, x_2` (first and second half) and

.. math::

    y_1 = x_2 + F(x_1), \qquad y_2 = x_1 + G(y_1), \qquad y = [y_1, y_2],

with the exact inverse :math:`x_1 = y_2 - G(y_1)`, :math:`x_2 = y_1 - F(x_1)`. The two streams
swap positions in every block, so blocks come in pairs to restore stream order. Each update is a
shift by a function of the other stream, so the block is volume-preserving (log-det 0).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from revkit.blocks.shapes import require_even_channels
from revkit.blocks.subnets import residual_function
from revkit.invertible import BlockParams, InverseVJP, Invertible, Shape, leaf, vjp


class RevBlockParams(BlockParams):
    hidden: int = Field(64, gt=0, description="channels k inside F and G (the paper's 'RevBlock k')")


class RevBlock(Invertible):
    r"""Two-function reversible block ``y1 = x2 + F(x1), y2 = x1 + G(y1)``.

    ``F`` and ``G`` are ``conv3×3(C/2 → k) → ReLU → conv3×3(k → C/2)`` for images ``(C, H, W)``
    and ``Linear(D/2 → k) → ReLU → Linear(k → D/2)`` for vectors ``(D,)``, with PyTorch's default
    initialisation and no normalisation (:func:`revkit.blocks.subnets.residual_function`).

    Args:
        input_shape: ``(C, H, W)`` or ``(D,)`` with an even ``C`` (``D``).
        hidden: ``k``.

    Example:
        >>> block = RevBlock((4, 16, 16), hidden=25)
        >>> y, logdet = block(torch.randn(2, 4, 16, 16))   # logdet == 0
    """

    Params = RevBlockParams
    volume_preserving = True
    supported_ranks = (1, 3)
    block_name = "revblock"

    def __init__(self, input_shape: Shape, *, hidden: int = 64):
        super().__init__(input_shape, rank_hint="put a flatten or reshape before it")
        hint = "put a subsample (or squeeze) first" if len(input_shape) == 3 else "use an even dimension"
        require_even_channels("revblock", input_shape, hint)
        self.hidden = int(hidden)
        stream = (self.input_shape[0] // 2, *self.input_shape[1:])
        self.f = residual_function(stream, self.hidden)
        self.g = residual_function(stream, self.hidden)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = x.chunk(2, dim=1)
        y1 = x2 + self.f(x1)
        y2 = x1 + self.g(y1)
        return torch.cat([y1, y2], dim=1), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y1, y2 = y.chunk(2, dim=1)
        x1 = y2 - self.g(y1)
        x2 = y1 - self.f(x1)
        return torch.cat([x1, x2], dim=1), self.zero_logdet(y)

    def inverse_and_vjp(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> InverseVJP:
        r"""The input and the vector–Jacobian product with one evaluation each of ``F`` and ``G``.

        With :math:`\bar{y}_i = ∂L/∂y_i`: ``G`` runs on ``y_1`` (graph) to give
        :math:`x_1 = y_2 - G(y_1)` and :math:`\bar{y}_1 \mathrel{+}= J_G^T \bar{y}_2`; then ``F``
        runs on ``x_1`` (graph) to give :math:`x_2 = y_1 - F(x_1)`,
        :math:`\bar{x}_1 = \bar{y}_2 + J_F^T \bar{y}_1` and :math:`\bar{x}_2 = \bar{y}_1`.
        """
        y1, y2 = y.chunk(2, dim=1)
        grad_y1, grad_y2 = grad_y.chunk(2, dim=1)
        y1_leaf = leaf(y1)
        with torch.enable_grad():
            g_out = self.g(y1_leaf)
        (through_g,), _, grads_g = vjp(self.g, [g_out], [grad_y2], [y1_leaf], None)
        grad_y1 = grad_y1 if through_g is None else grad_y1 + through_g
        x1 = leaf(y2 - g_out.detach())
        with torch.enable_grad():
            f_out = self.f(x1)
        (through_f,), _, grads_f = vjp(self.f, [f_out], [grad_y1], [x1], None)
        x2 = y1 - f_out.detach()
        grad_x1 = grad_y2 if through_f is None else grad_y2 + through_f
        return InverseVJP(torch.cat([x1.detach(), x2], dim=1), torch.cat([grad_x1, grad_y1], dim=1),
                           None, (*grads_f, *grads_g))

    def describe(self) -> str:
        return f"RevBlock({self.hidden})"
