r"""Activation normalisation (Glow): a per-channel affine map with data-dependent initialisation.

For images ``(C, H, W)`` (vectors ``(D,)``: per feature, ``H·W = 1``)

.. math::

    y_{c,h,w} = (x_{c,h,w} + b_c)\, s_c, \qquad s_c = e^{\ell_c} > 0, \qquad
    \log|\det J| = H W \sum_c \log s_c .

On the first forward pass in training mode the block sets ``b = −mean`` and ``s = 1/std`` from
that batch (per channel, over batch and space), so its output has zero mean and unit standard
deviation per channel. It remembers this in the buffer ``initialized`` (part of the
``state_dict``), so it never initialises again, not even after a save/load round trip. Eval mode
and :meth:`~ActNorm.inverse` never initialise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from revkit.invertible import InverseVJP, Invertible, Shape, numel

#: standard deviations below this are treated as this when initialising (a constant channel must
#: not get an enormous scale).
MIN_STD = 1e-3


class ActNorm(Invertible):
    """Per-channel ``y = (x + b)·s`` with data-dependent initialisation (see the module docstring).

    Example:
        >>> block = ActNorm((3, 8, 8))
        >>> y, logdet = block(torch.randn(16, 3, 8, 8) * 5 + 2)   # initialises: y ≈ standardised
    """

    supported_ranks = (1, 3)
    block_name = "actnorm"
    initialized: Tensor

    def __init__(self, input_shape: Shape):
        super().__init__(input_shape, rank_hint="put a flatten or reshape before it")
        channels = self.input_shape[0]
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))
        self._positions = numel(self.input_shape[1:])
        # a Python mirror of ``initialized`` once it is True, so that later forwards read no tensor
        # (reading one is a graph break under torch.compile); reset whenever a state_dict is loaded
        self._known_initialized = False

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not self._known_initialized:
            if not bool(self.initialized):
                self.initialize(x)
            self._known_initialized = True
        y = (x + self._per_channel(self.bias)) * torch.exp(self._per_channel(self.log_scale))
        return y, self._logdet(x, 1.0)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y * torch.exp(-self._per_channel(self.log_scale)) - self._per_channel(self.bias)
        return x, self._logdet(y, -1.0)

    def inverse_and_vjp(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> InverseVJP:
        r"""The input and the vector–Jacobian product in closed form, no graph: with :math:`s = e^{\log s}`,
        :math:`x = y/s - b`, :math:`\bar{x} = \bar{y}\,s`, :math:`\bar{b}_c = \sum \bar{x}_c`,
        :math:`\overline{\log s}_c = \sum \bar{y}_c\, y_c + P \sum_n \bar{\ell}_n` (``P`` positions)."""
        with torch.no_grad():
            scale = torch.exp(self._per_channel(self.log_scale))
            x = y / scale - self._per_channel(self.bias)
            grad_x = grad_y * scale
            dims = [0, *range(2, y.dim())]
            grad_bias = grad_x.sum(dim=dims)
            grad_log_scale = (grad_y * y).sum(dim=dims)
            if grad_logdet is not None:
                grad_log_scale = grad_log_scale + self._positions * grad_logdet.sum()
        grads = {"bias": grad_bias, "log_scale": grad_log_scale}
        return InverseVJP(x, grad_x, None, tuple(grads[n] for n, p in self.named_parameters() if p.requires_grad))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``b`` and ``s`` so that this batch ``x`` comes out with zero mean and unit std per
        channel, and mark the block initialised. Called by the first training-mode forward."""
        dims = [0, *range(2, x.dim())]
        self.bias.copy_(-x.mean(dim=dims))
        self.log_scale.copy_(-torch.log(x.std(dim=dims, unbiased=False).clamp_min(MIN_STD)))
        self.initialized.fill_(True)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._known_initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    def describe(self) -> str:
        return "ActNorm"

    def _per_channel(self, t: Tensor) -> Tensor:
        """``[C] → [1, C, 1, 1]`` for images, ``[1, D]`` for vectors."""
        return t.view(1, -1, *([1] * (len(self.input_shape) - 1)))

    def _logdet(self, x: Tensor, sign: float) -> Tensor:
        return (sign * self._positions * self.log_scale.sum()).expand(x.shape[0])
