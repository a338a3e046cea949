r"""Coupling blocks: NICE's additive coupling and Real NVP's affine coupling.

A mask (:mod:`revkit.blocks.masks`) splits the input ``x`` into ``x_c`` (conditioning) and
``x_a`` (active). A network ``NN`` (:mod:`revkit.blocks.subnets`) computes parameters from
``x_c`` and the optional context ``c``; only ``x_a`` changes:

.. math::

    y_c = x_c, \qquad y_a = h(x_a;\ NN(x_c, c)),

so the inverse recomputes the same parameters from ``y_c = x_c`` and applies :math:`h^{-1}`. The
log-det is the sum of :math:`\log|∂h/∂x_a|` over the active entries. The base class
:class:`Coupling` holds that machinery; a subclass says how many parameters each active entry
needs (``parameters_per_entry``, per instance) and implements only the two half-couplings
:math:`h` and :math:`h^{-1}` (:meth:`Coupling.forward_half`, :meth:`Coupling.inverse_half`),
which receive the network output shaped per entry, ``[B, P, *active_shape]`` (``P`` parameters
of entry ``(c, …)`` at ``[:, :, c, …]``). The network's last layer starts at zero, so a fresh
block is the identity.

Memory-saving execution (:mod:`revkit.memory_saving`) uses :meth:`Coupling.inverse_and_vjp`,
which evaluates the network once to rebuild the input and back-propagate; every subclass
inherits it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field
from torch import Tensor

from revkit.blocks.masks import MaskKind, make_mask
from revkit.blocks.shapes import require_context
from revkit.blocks.subnets import coupling_subnet
from revkit.errors import ShapeError
from revkit.invertible import BlockParams, InverseVJP, Invertible, Shape, context_leaf, leaf, vjp

#: ``(active [B, *active_shape], parameters [B, P, *active_shape]) -> (new active, elementwise
#: log|∂new/∂active| or None when it is 0)``
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
    r"""Base of coupling blocks: mask, coupling network, context handling and the single-evaluation
    inverse with its vector–Jacobian product.

    A subclass implements :meth:`forward_half` (:math:`h`) and :meth:`inverse_half`
    (:math:`h^{-1}`), and its constructor (whose keywords are the spec's, as for every registered
    block) passes how many network outputs each active entry needs as ``parameters_per_entry``: 1
    for a shift, 2 for a scale and a shift, ``3K − 1`` for a spline with ``K`` bins.

    Args:
        input_shape: per-sample shape, ``(C, H, W)`` or ``(D,)``.
        hidden: width of the coupling network.
        mask: ``"channel"`` or ``"checkerboard"`` (see :mod:`revkit.blocks.masks`).
        flip: transform the other half.
        context_size: size ``K`` of the context ``[B, K]`` (0: the block ignores context).
        parameters_per_entry: ``P ≥ 1``, network outputs per active entry.

    Example (a shift, as :class:`AdditiveCoupling` writes it):

        >>> class Shift(Coupling):
        ...     volume_preserving = True
        ...     def forward_half(self, active, params):
        ...         return active + params[:, 0], None
        ...     def inverse_half(self, active, params):
        ...         return active - params[:, 0], None
        >>> y, logdet = Shift((4,), hidden=8, parameters_per_entry=1)(torch.randn(3, 4))
    """

    Params = CouplingParams
    conditional = True
    supported_ranks = (1, 3)
    block_name = "coupling"
    #: ``P``: network outputs per transformed entry (set per instance by the constructor).
    parameters_per_entry: int

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        mask: MaskKind = "channel",
        flip: bool = False,
        context_size: int = 0,
        parameters_per_entry: int = 1,
    ):
        super().__init__(input_shape, rank_hint="put a flatten or reshape before it")
        if parameters_per_entry < 1:
            raise ValueError(f"{self.block_name}: parameters_per_entry must be at least 1, got {parameters_per_entry}")
        self.parameters_per_entry = int(parameters_per_entry)
        self.hidden = int(hidden)
        self.mask_kind = mask
        self.flip = bool(flip)
        self.context_size = int(context_size)
        self.mask = make_mask(self.block_name, mask, self.input_shape, self.flip)
        out_channels = self.mask.active_shape[0] * self.parameters_per_entry
        self.subnet = coupling_subnet(self.mask.cond_shape, out_channels, self.hidden, self.context_size)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, self.forward_half)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, self.inverse_half)

    def conditioner(self, cond: Tensor, context: Tensor | None) -> Tensor:
        """:math:`θ = NN(x_c, c)` shaped per entry: ``[B, P, *active_shape]`` (a view of the network's
        ``[B, P·C_a, …]`` output, parameter-major: channel ``p·C_a + c`` is parameter ``p`` of entry ``c``)."""
        raw = self.subnet(cond, self._context(context, cond))
        return raw.unflatten(1, (self.parameters_per_entry, self.mask.active_shape[0]))

    def inverse_and_vjp(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> InverseVJP:
        r"""The input ``x = f⁻¹(y)`` and the vector–Jacobian product of ``forward`` at it, with one
        evaluation of the coupling network.

        The inverse needs :math:`θ = NN(y_c, c)` and :math:`y_c = x_c`, exactly what the backward of
        the forward needs, so the network runs once with a graph from :math:`x_c`;
        :math:`x_a = h^{-1}(y_a; θ)` is computed from its detached output and :math:`h(x_a; θ)` is
        re-applied on the graph (elementwise, cheap). Then
        :math:`\bar{x} = \mathrm{merge}(\bar{x}_c, \bar{x}_a)` from one vector–Jacobian product of
        :math:`(y, \log|\det J|)` with respect to :math:`x_c, x_a, c` and the parameters.
        """
        cond_y, active_y = self.mask.split(y)
        cond = leaf(cond_y)
        ctx = context_leaf(context)
        with torch.enable_grad():
            params = self.conditioner(cond, ctx)
        with torch.no_grad():
            active_x, _ = self.inverse_half(active_y, params.detach())
        active = leaf(active_x)
        with torch.enable_grad():
            new_active, log_scale = self.forward_half(active, params)
            y_re = self.mask.merge(cond, new_active)
            logdet = None if log_scale is None else self.mask.sum_active(log_scale)
        outputs = [y_re] if logdet is None else [y_re, logdet]
        (grad_cond, grad_active), grad_context, grad_params = vjp(
            self, outputs, [grad_y, grad_logdet], [cond, active], ctx
        )
        grad_cond = torch.zeros_like(cond_y) if grad_cond is None else grad_cond
        grad_active = torch.zeros_like(active_x) if grad_active is None else grad_active
        return InverseVJP(self.mask.merge(cond_y, active_x), self.mask.merge(grad_cond, grad_active),
                           grad_context, grad_params)

    def describe(self) -> str:
        extra = "" if self.mask_kind == "channel" else f", {self.mask_kind}"
        return f"{type(self).__name__}({self.hidden}{extra})"

    # -- the two half-couplings, implemented by subclasses ------------------------------------
    def forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        r""":math:`y_a = h(x_a; θ)` elementwise and :math:`\log|∂h/∂x_a|` per entry (None when it is 0).

        Args:
            active: :math:`x_a`, ``[B, *active_shape]``.
            params: :math:`θ`, ``[B, P, *active_shape]`` (:meth:`conditioner`).
        """
        raise NotImplementedError

    def inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        r""":math:`x_a = h^{-1}(y_a; θ)` elementwise and :math:`\log|∂h^{-1}/∂y_a|` per entry (None when
        it is 0); shapes as in :meth:`forward_half`."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------
    def _couple(self, x: Tensor, context: Tensor | None, half: HalfCoupling) -> tuple[Tensor, Tensor]:
        cond, active = self.mask.split(x)
        params = self.conditioner(cond, context)
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

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        mask: MaskKind = "channel",
        flip: bool = False,
        context_size: int = 0,
    ):
        super().__init__(input_shape, hidden=hidden, mask=mask, flip=flip, context_size=context_size,
                         parameters_per_entry=1)

    def forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        return active + params[:, 0], None

    def inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        return active - params[:, 0], None


class AffineCoupling(Coupling):
    r"""Real NVP's affine coupling with a bounded log-scale.

    The network outputs ``(raw, t)`` per active entry (``params[:, 0]``, ``params[:, 1]``); with the bound ``B = scale_bound``

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
        super().__init__(input_shape, hidden=hidden, mask=mask, flip=flip, context_size=context_size,
                         parameters_per_entry=2)
        self.scale_bound = float(scale_bound)
        if 0 < shift_bound < 1e-3:
            raise ShapeError(f"affine_coupling: shift_bound must be 0 (unbounded) or at least 1e-3 (smaller "
                             f"bounds underflow in float32), got {shift_bound}")
        self.shift_bound = float(shift_bound)

    def _scale_and_shift(self, params: Tensor) -> tuple[Tensor, Tensor]:
        raw, shift = params.unbind(1)
        if self.shift_bound > 0:
            shift = self.shift_bound * torch.tanh(shift / self.shift_bound)
        return self.scale_bound * torch.tanh(raw / self.scale_bound), shift

    def forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        log_scale, shift = self._scale_and_shift(params)
        return active * torch.exp(log_scale) + shift, log_scale

    def inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        log_scale, shift = self._scale_and_shift(params)
        return (active - shift) * torch.exp(-log_scale), -log_scale
