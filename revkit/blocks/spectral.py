r"""Spectral normalisation of linear and convolutional layers by power iteration on the operator.

A layer :math:`W` (an ``nn.Linear`` or an ``nn.Conv2d`` with "same" padding) is a linear map
between per-sample tensors. Its operator norm :math:`σ = \max_{‖u‖=1} ‖Wu‖` is estimated by power
iteration on :math:`W^⊤W`,

.. math:: u ← \frac{W^⊤ W u}{‖W^⊤ W u‖}, \qquad \hat σ = ‖W u‖,

where for a convolution :math:`W` is the convolution itself and :math:`W^⊤` the transposed
convolution (``conv_transpose2d`` with the same kernel and padding) on the per-sample input shape
``(C, H, W)``: the norm of the map the layer computes, not the norm of the kernel reshaped into a
``C_out × (C_in·k·k)`` matrix (which can be larger or smaller). The normalised layer uses

.. math:: \tilde W = W / \max(1, \hat σ / c),

so :math:`‖\tilde W‖ ≤ c` (up to the estimate's accuracy). The vector :math:`u` is a buffer
(saved in the ``state_dict``) that warm-starts the next estimate. Every call runs
``n_power_iterations`` from the stored :math:`u`, in training and in evaluation alike, so both
modes compute the same function; only training mode writes the improved :math:`u` back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revkit.invertible import Shape

#: guards the normalisation of u against division by zero.
EPS = 1e-12


class SpectralNormalized(nn.Module):
    r"""A linear or "same"-padded convolutional layer whose operator norm is kept at most ``coeff``.

    Args:
        layer: ``nn.Linear`` (inputs ``[B, D]``) or ``nn.Conv2d`` with stride 1 and padding
            ``k // 2`` (inputs ``[B, C, H, W]``, output of the same height and width).
        input_shape: the per-sample input shape ``(D,)`` or ``(C, H, W)``.
        coeff: the bound :math:`c` on the operator norm.
        n_power_iterations: power iterations per call (see the module docstring).

    Call :meth:`weight` once per pass and :meth:`apply` with it as often as needed (a fixed-point
    inverse evaluates the layer many times with one weight).
    """

    u: Tensor

    def __init__(self, layer: nn.Linear | nn.Conv2d, input_shape: Shape, coeff: float, n_power_iterations: int):
        super().__init__()
        if isinstance(layer, nn.Conv2d) and (layer.stride != (1, 1) or layer.dilation != (1, 1) or layer.groups != 1):
            raise ValueError("spectral normalisation here takes stride-1, undilated, ungrouped convolutions")
        self.layer = layer
        self.input_shape = tuple(input_shape)
        self.coeff = float(coeff)
        self.n_power_iterations = int(n_power_iterations)
        u = torch.randn(1, *self.input_shape)
        self.register_buffer("u", u / u.norm().clamp_min(EPS))

    # -- the operator and its adjoint --------------------------------------------------------
    def operator(self, u: Tensor, weight: Tensor) -> Tensor:
        """``W u`` without the bias."""
        if isinstance(self.layer, nn.Conv2d):
            return F.conv2d(u, weight, padding=self.layer.padding)
        return F.linear(u, weight)

    def adjoint(self, v: Tensor, weight: Tensor) -> Tensor:
        """``W^⊤ v``: the transposed convolution (or ``v Wᵀ``ᵀ for a linear layer)."""
        if isinstance(self.layer, nn.Conv2d):
            return F.conv_transpose2d(v, weight, padding=self.layer.padding)
        return F.linear(v, weight.t())

    # -- the estimate ------------------------------------------------------------------------
    def sigma(self, store: bool | None = None) -> Tensor:
        r"""The estimate :math:`\hat σ = ‖W u‖` after ``n_power_iterations`` from the stored ``u``;
        differentiable in the weight (``u`` is held constant). The new ``u`` is stored when
        ``store`` (default: in training mode)."""
        w = self.layer.weight
        with torch.no_grad():
            u = self.u.to(dtype=w.dtype)
            for _ in range(self.n_power_iterations):
                u = self.adjoint(self.operator(u, w), w)
                u = u / u.norm().clamp_min(EPS)
            if self.training if store is None else store:
                self.u.copy_(u)
        return self.operator(u, w).norm()

    def weight(self) -> Tensor:
        r"""The normalised weight :math:`W / \max(1, \hat σ / c)`."""
        factor = torch.clamp(self.sigma() / self.coeff, min=1.0)
        return self.layer.weight / factor

    def apply(self, x: Tensor, weight: Tensor) -> Tensor:
        """The layer with the given (normalised) weight and its own bias."""
        if isinstance(self.layer, nn.Conv2d):
            return F.conv2d(x, weight, self.layer.bias, padding=self.layer.padding)
        return F.linear(x, weight, self.layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.weight())


def operator_norm(layer: SpectralNormalized, weight: Tensor | None = None) -> float:
    """The exact operator norm of ``layer``'s map (without bias) on its input shape, from the dense
    matrix: the largest singular value. For small shapes (tests and checks)."""
    w = layer.layer.weight if weight is None else weight
    n = int(torch.tensor(layer.input_shape).prod())
    basis = torch.eye(n, dtype=w.dtype, device=w.device).reshape(n, *layer.input_shape)
    with torch.no_grad():
        matrix = layer.operator(basis, w).reshape(n, -1)  # row i: W e_i, so this is Wᵀ
    return float(torch.linalg.matrix_norm(matrix, ord=2))


__all__ = ["SpectralNormalized", "operator_norm"]
