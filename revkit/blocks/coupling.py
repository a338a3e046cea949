r"""Coupling blocks: NICE's additive coupling and Real NVP's affine coupling.

A mask (:mod:`revkit.blocks.masks`) splits the input ``x`` into ``x_c`` (conditioning) and
``x_a`` (active). A network ``NN`` (:mod:`revkit.blocks.subnets`) computes parameters from
``x_c`` and the optional context ``c``; only ``x_a`` changes:

.. math::

    y_c = x_c, \qquad y_a = h(x_a;\ NN(x_c, c)),

so the inverse recomputes the same parameters from ``y_c = x_c`` and applies :math:`h^{-1}`. The
log-det is the sum of :math:`\log|∂h/∂x_a|` over the active entries. The base class
:class:`Coupling` holds that machinery; a subclass implements only the two half-couplings
:math:`h` and :math:`h^{-1}`. The network's last layer starts at zero, so a fresh block is the
identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from revkit.blocks.masks import MaskKind, make_mask
from revkit.blocks.shapes import require_built_shape, require_context, require_rank
from revkit.blocks.subnets import coupling_subnet
from revkit.errors import ShapeError
from revkit.invertible import BlockParams, Invertible, Shape
from revkit.memory_saving import ReverseGrad, backprop, context_leaf, leaf

#: ``(active, parameters) -> (new active, elementwise log|∂new/∂active| or None when it is 0)``
HalfCoupling = Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]]


class CouplingParams(BlockParams):
    hidden: int = Field(64, gt=0, description="width of the coupling network's hidden layers")
    mask: MaskKind = Field(
        "channel",
        description="'channel': halves of the channels (features); "
        "'checkerboard': alternating spatial positions (even/odd features)",
    )
    flip: bool = Field(
        False,
        description="transform the other half (with repeat, the builder alternates it between copies)",
    )


class AffineCouplingParams(CouplingParams):
    scale_bound: float = Field(
        2.0,
        ge=1e-3,
        description="bound B of the log-scale: log s = B·tanh(raw / B) ∈ (−B, B); at least 1e-3 "
        "(smaller bounds underflow in float32; for a fixed scale use additive_coupling)",
    )
    shift_bound: float = Field(
        0.0, ge=0.0, description="bound T of the shift: t = T·tanh(raw / T) ∈ (−T, T); 0: unbounded; "
        "else at least 1e-3"
    )


class Coupling(Invertible):
    """Base of coupling blocks: mask, coupling network and context handling.

    Subclasses set :attr:`parameters_per_entry` (how many network outputs each active entry
    needs) and implement :meth:`_forward_half` and :meth:`_inverse_half`.

    Args:
        input_shape: per-sample shape, ``(C, H, W)`` or ``(D,)``.
        hidden: width of the coupling network.
        mask: ``"channel"`` or ``"checkerboard"`` (see :mod:`revkit.blocks.masks`).
        flip: transform the other half.
        context_size: size ``K`` of the context ``[B, K]`` (0: the block ignores context).
    """

    Params = CouplingParams
    conditional = True
    supported_ranks = (1, 3)
    parameters_per_entry: ClassVar[int] = 1
    block_name: ClassVar[str] = "coupling"

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        mask: MaskKind = "channel",
        flip: bool = False,
        context_size: int = 0,
    ):
        super().__init__()
        require_rank(self.block_name, input_shape, self.supported_ranks,
                     "put a flatten or reshape before it")
        self.input_shape = tuple(input_shape)
        self.hidden = int(hidden)
        self.mask_kind = mask
        self.flip = bool(flip)
        self.context_size = int(context_size)
        self.mask = make_mask(self.block_name, mask, self.input_shape, self.flip)
        out_channels = self.mask.active_shape[0] * self.parameters_per_entry
        self.subnet = coupling_subnet(self.mask.cond_shape, out_channels, self.hidden, self.context_size)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, self._forward_half)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, self._inverse_half)

    def output_shape(self, input_shape: Shape) -> Shape:
        require_built_shape(self.block_name, self.input_shape, input_shape)
        return self.input_shape

    def reverse_grad(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> ReverseGrad:
        """Memory-saving backward step with one evaluation of the coupling network.

        The inverse needs ``NN(y_c, c)`` and ``y_c = x_c``, exactly what the backward of the forward
        needs, so the network runs once with a graph from ``x_c``; ``x_a = h⁻¹(y_a)`` is computed
        from its detached output and ``h(x_a)`` is re-applied on the graph (elementwise, cheap).
        """
        cond_y, active_y = self.mask.split(y)
        cond = leaf(cond_y)
        ctx = context_leaf(context)
        with torch.enable_grad():
            params = self.subnet(cond, self._context(ctx, y))
        with torch.no_grad():
            active_x, _ = self._inverse_half(active_y, params.detach())
        active = leaf(active_x)
        with torch.enable_grad():
            new_active, log_scale = self._forward_half(active, params)
            y_re = self.mask.merge(cond, new_active)
            logdet = None if log_scale is None else self.mask.sum_active(log_scale)
        outputs = [y_re] if logdet is None else [y_re, logdet]
        (grad_cond, grad_active), grad_context, grad_params = backprop(
            self, outputs, [grad_y, grad_logdet], [cond, active], ctx
        )
        grad_cond = torch.zeros_like(cond_y) if grad_cond is None else grad_cond
        grad_active = torch.zeros_like(active_x) if grad_active is None else grad_active
        return ReverseGrad(self.mask.merge(cond_y, active_x), self.mask.merge(grad_cond, grad_active),
                           grad_context, grad_params)

    def describe(self) -> str:
        extra = "" if self.mask_kind == "channel" else f", {self.mask_kind}"
        return f"{type(self).__name__}({self.hidden}{extra})"

    # -- the two half-couplings, implemented by subclasses ------------------------------------
    def _forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------
    def _couple(self, x: Tensor, context: Tensor | None, half: HalfCoupling) -> tuple[Tensor, Tensor]:
        cond, active = self.mask.split(x)
        params = self.subnet(cond, self._context(context, x))
        new_active, log_scale = half(active, params)
        logdet = self.zero_logdet(x) if log_scale is None else self.mask.sum_active(log_scale)
        return self.mask.merge(cond, new_active), logdet

    def _context(self, context: Tensor | None, x: Tensor) -> Tensor | None:
        return require_context(self.block_name, self.context_size, context, x)


class AdditiveCoupling(Coupling):
    r"""NICE's additive coupling: :math:`y_a = x_a + t(x_c, c)`, volume-preserving (log-det 0).

    Example:
        >>> block = AdditiveCoupling((4, 8, 8), hidden=32)
        >>> y, logdet = block(torch.randn(2, 4, 8, 8))
    """

    volume_preserving = True
    block_name = "additive_coupling"

    def _forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        return active + params, None

    def _inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        return active - params, None


class AffineCoupling(Coupling):
    r"""Real NVP's affine coupling with a bounded log-scale.

    The network outputs ``(raw, t)`` per active entry; with the bound ``B = scale_bound``

    .. math::

        \log s = B \tanh(raw / B) \in (-B, B), \qquad y_a = x_a \odot e^{\log s} + t,
        \qquad \log|\det J| = \textstyle\sum_a \log s,

    so one block can scale an entry by at most :math:`e^{±B}`, which keeps training stable. With
    ``shift_bound = T > 0`` the shift is bounded the same way, :math:`t = T \tanh(t_{raw} / T)`: a
    conditioning half unlike anything in training then moves the active half by less than ``T``
    instead of by whatever the network extrapolates to (one such test image drove an unbounded
    MNIST Glow's shift to 100 and its bits/dim into the hundreds).

    Example:
        >>> block = AffineCoupling((2,), hidden=16, mask="checkerboard")
        >>> y, logdet = block(torch.randn(5, 2))
    """

    Params = AffineCouplingParams
    parameters_per_entry = 2
    block_name = "affine_coupling"

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        mask: MaskKind = "channel",
        flip: bool = False,
        scale_bound: float = 2.0,
        shift_bound: float = 0.0,
        context_size: int = 0,
    ):
        super().__init__(input_shape, hidden=hidden, mask=mask, flip=flip, context_size=context_size)
        self.scale_bound = float(scale_bound)
        if 0 < shift_bound < 1e-3:
            raise ShapeError(f"affine_coupling: shift_bound must be 0 (unbounded) or at least 1e-3 (smaller "
                             f"bounds underflow in float32), got {shift_bound}")
        self.shift_bound = float(shift_bound)

    def _scale_and_shift(self, params: Tensor) -> tuple[Tensor, Tensor]:
        raw, shift = params.chunk(2, dim=1)
        if self.shift_bound > 0:
            shift = self.shift_bound * torch.tanh(shift / self.shift_bound)
        return self.scale_bound * torch.tanh(raw / self.scale_bound), shift

    def _forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        log_scale, shift = self._scale_and_shift(params)
        return active * torch.exp(log_scale) + shift, log_scale

    def _inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        log_scale, shift = self._scale_and_shift(params)
        return (active - shift) * torch.exp(-log_scale), -log_scale
