r"""1-Lipschitz activations for residual branches whose Lipschitz constant is bounded.

:class:`ELU` is :math:`φ(x) = x` for :math:`x > 0` and :math:`e^x - 1` otherwise (Clevert et al., 2016),
the same function as ``torch.nn.ELU()``, computed as

.. math:: φ(x) = \max\bigl(x,\; e^{\min(x, 0)} - 1\bigr)

(:math:`e^x - 1 ≥ x` for every :math:`x`, with equality only at 0, so the maximum picks the right
branch). Its derivative is read off the output, :math:`φ'(x) = 1` for :math:`x > 0` and
:math:`φ(x) + 1` otherwise, which is what ``torch``'s own ``elu_backward`` computes from the result; that
backward is itself differentiable, so the log-det estimators' double backward works.

Why not ``torch.nn.ELU``: on the CPU its forward kernel took 7.9 ms on a ``64×64×14×14`` batch
against 1.0 ms for this form (one thread; ``bench/activations.py``), a third of an i-ResNet
classifier's training step. The two agree to float32 rounding (:math:`e^x - 1` instead of
``expm1``: an absolute difference below :math:`10^{-7}`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _ELUFunction(torch.autograd.Function):
    """``max(x, exp(min(x, 0)) − 1)`` forward; ``elu_backward`` from the saved output backward. Written
    with ``setup_context`` and a generated vmap rule so that ``torch.func`` transforms (the exact log-det's
    ``jacrev``/``vmap``) can use it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.maximum(x, torch.exp(x.clamp(max=0.0)) - 1.0)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.ops.aten.elu_backward(grad, 1.0, 1.0, 1.0, True, y)


def elu(x: Tensor) -> Tensor:
    """:math:`\\mathrm{ELU}(x)` with α = 1 (see the module docstring); differentiable twice."""
    return _ELUFunction.apply(x)


class ELU(nn.Module):
    """The ELU (α = 1) as a module; no parameters, so it replaces ``nn.ELU()`` in a saved model."""

    def forward(self, x: Tensor) -> Tensor:
        return elu(x)


__all__ = ["ELU", "elu"]
