r"""Invertible 1×1 convolution (Glow) with an LU-parameterised weight.

Every pixel's channel vector is multiplied by one ``C×C`` matrix (for vectors ``(D,)``: a dense
invertible linear map, ``H·W = 1``):

.. math::

    y_{:,h,w} = W x_{:,h,w}, \qquad W = P\,L\,(U + \operatorname{diag}(\sigma \odot e^{\ell})),
    \qquad \log|\det J| = H W \sum_c \ell_c,

with a fixed permutation ``P``, a lower-triangular ``L`` with unit diagonal, a strictly upper
triangular ``U``, fixed signs ``σ`` and learned log-magnitudes ``ℓ`` of the diagonal; only the
strictly triangular entries of ``L`` and ``U`` and ``ℓ`` are parameters. The weight
starts as a random orthogonal matrix (so the log-det starts at 0). The inverse uses
``W⁻¹ = (U + diag)⁻¹ L⁻¹ Pᵀ`` from two triangular solves; it is cached while the module is not
training (and no gradient to its parameters is needed), and recomputed after the module switches
to training mode or any of its parameters changes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from revkit.invertible import InverseVJP, Invertible, Shape, numel, vjp


class InvConv1x1(Invertible):
    """Glow's invertible 1×1 convolution, LU-parameterised (see the module docstring).

    Example:
        >>> block = InvConv1x1((4, 8, 8))
        >>> y, logdet = block(torch.randn(2, 4, 8, 8))   # logdet ≈ 0 at initialisation
    """

    supported_ranks = (1, 3)
    block_name = "invconv1x1"
    permutation: Tensor
    sign: Tensor
    lower: Tensor
    upper: Tensor

    def __init__(self, input_shape: Shape):
        super().__init__(input_shape, rank_hint="put a flatten or reshape before it")
        channels = self.input_shape[0]
        orthogonal = torch.linalg.qr(torch.randn(channels, channels))[0]
        permutation, lower, upper = torch.linalg.lu(orthogonal)
        diagonal = torch.diagonal(upper)
        rows, cols = torch.tril_indices(channels, channels, offset=-1)
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign", torch.sign(diagonal))
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        # the strictly triangular entries, packed (row-major below the diagonal; U by transposition)
        self._learn("lower", lower[rows, cols])
        self._learn("upper", upper[cols, rows])
        self.log_abs_diagonal = nn.Parameter(diagonal.abs().log())
        self._positions = numel(self.input_shape[1:])
        self._cached_inverse: Tensor | None = None
        self._cache_key: tuple[tuple[int, int, torch.dtype], ...] | None = None

    def weight(self) -> Tensor:
        """The ``C×C`` matrix ``W = P L (U + diag(σ·e^ℓ))``."""
        lower, upper = self._triangular_factors()
        return self.permutation @ lower @ upper

    def inverse_weight(self) -> Tensor:
        """``W⁻¹``, cached when the module is in eval mode and no gradient to it is needed."""
        if not self._may_cache():
            return self._compute_inverse_weight()
        key = self._parameter_key()
        if self._cached_inverse is None or key != self._cache_key:
            with torch.no_grad():
                self._cached_inverse = self._compute_inverse_weight()
            self._cache_key = key
        return self._cached_inverse

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(self.weight(), x), self._logdet(x, 1.0)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(self.inverse_weight(), y), self._logdet(y, -1.0)

    def inverse_and_vjp(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> InverseVJP:
        r"""The input and the vector–Jacobian product, with the big products in closed form: :math:`x = W^{-1}y`,
        :math:`\bar{x} = W^T\bar{y}`, :math:`\bar{W} = \sum_{n,p} \bar{y}\,x^T`; only the ``C×C``
        map from the LU factors to ``W`` (and the log-det :math:`P\sum\ell`) is differentiated by autograd."""
        with torch.no_grad():
            x = self._mix(self._compute_inverse_weight(), y)
        with torch.enable_grad():
            weight = self.weight()
            logdet = self._positions * self.log_abs_diagonal.sum()
        with torch.no_grad():
            w = weight.detach()
            grad_x = self._mix(w.T, grad_y)
            grad_w = torch.einsum("bi...,bj...->ij", grad_y, x)
        outputs, grads = [weight], [grad_w]
        if grad_logdet is not None and logdet.requires_grad:
            outputs.append(logdet)
            grads.append(grad_logdet.sum())
        _, _, grad_params = vjp(self, outputs, grads, [], None)
        return InverseVJP(x, grad_x, None, grad_params)

    def train(self, mode: bool = True) -> InvConv1x1:
        self._cached_inverse, self._cache_key = None, None
        return super().train(mode)

    def describe(self) -> str:
        return "InvConv1x1"

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _mix(weight: Tensor, x: Tensor) -> Tensor:
        """Apply ``weight`` to the channel (feature) dimension of ``[B, C, …]``; the result is
        contiguous (einsum's own layout puts the batch innermost, which slows every later block)."""
        return torch.einsum("ij,bj...->bi...", weight, x).contiguous()

    def _learn(self, name: str, value: Tensor) -> None:
        """A parameter, or an empty buffer when there is nothing to learn (a 1-channel map has no
        off-diagonal entries, and a parameter that can never get a gradient would be a wart)."""
        if value.numel():
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def _triangular_factors(self) -> tuple[Tensor, Tensor]:
        """``L`` (unit diagonal) and ``U + diag(σ·e^ℓ)`` as ``C×C`` matrices."""
        diagonal = self.sign * torch.exp(self.log_abs_diagonal)
        eye = torch.eye(diagonal.shape[0], dtype=diagonal.dtype, device=diagonal.device)
        zeros = torch.zeros_like(eye)
        lower = eye.index_put((self._rows, self._cols), self.lower)
        upper = torch.diag(diagonal) + zeros.index_put((self._cols, self._rows), self.upper)
        return lower, upper

    def _compute_inverse_weight(self) -> Tensor:
        lower, upper = self._triangular_factors()
        eye = torch.eye(lower.shape[0], dtype=lower.dtype, device=lower.device)
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        return upper_inv @ lower_inv @ self.permutation.T

    def _may_cache(self) -> bool:
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        return not self.training and not needs_grad

    def _parameter_key(self) -> tuple[tuple[int, int, torch.dtype], ...]:
        """Changes whenever a parameter or buffer is modified in place (optimizer step,
        ``load_state_dict``) or replaced (``.to(...)``)."""
        tensors = [*self.parameters(), *self.buffers()]
        return tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)

    def _logdet(self, x: Tensor, sign: float) -> Tensor:
        return (sign * self._positions * self.log_abs_diagonal.sum()).expand(x.shape[0])
