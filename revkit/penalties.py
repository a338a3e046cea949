r"""Training-time penalties: terms a block adds to the loss of the update that trains the flow.

A block may set its ``penalty`` attribute (:attr:`revkit.Invertible.penalty`, a scalar tensor with its
autograd graph) during a forward pass in training mode with gradients enabled. For every ``"model"``
update the trainer clears the flow's penalties, computes the objective's losses, and adds the sum of
the penalties the blocks recorded in that pass to the loss (logged as ``penalty``;
:class:`revkit.train.distributed.StepModule`). Nothing is recorded in evaluation mode, so evaluation
metrics never include a penalty.

The built-in user is ``iresnet``'s ``jacobian_penalty``: :math:`γ\,‖J_g‖_F^2/d`, estimated with one
Gaussian probe, which keeps the fixed-point inverse fast (Bai et al., 2021, "Stabilizing Equilibrium
Models by Jacobian Regularization").
"""

from __future__ import annotations

from torch import Tensor, nn

from revkit.objectives.base import Losses


def clear_penalties(module: nn.Module) -> None:
    """Forget the penalties recorded by ``module``'s submodules (before a new forward pass)."""
    for m in module.modules():
        if getattr(m, "penalty", None) is not None:
            m.penalty = None


def total_penalty(module: nn.Module) -> Tensor | None:
    """The sum of the penalties ``module``'s submodules recorded since :func:`clear_penalties`, or
    None when none did."""
    found = [p for m in module.modules() if (p := getattr(m, "penalty", None)) is not None]
    return sum(found[1:], start=found[0]) if found else None


def with_penalties(out: Losses, module: nn.Module) -> Losses:
    """``out`` with the recorded penalties (if any) added to its loss and logged as ``penalty``."""
    penalty = total_penalty(module)
    if penalty is None:
        return out
    return Losses(loss=out.loss + penalty, metrics={**out.metrics, "penalty": float(penalty.detach())})


__all__ = ["clear_penalties", "total_penalty", "with_penalties"]
