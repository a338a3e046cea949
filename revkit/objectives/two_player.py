r"""Two-player training: an objective whose critic (a discriminator) learns alongside the model.

Each step the trainer runs ``critic_steps`` updates of the group ``"critic"``, then one update of ``"model"``
(:meth:`TwoPlayerObjective.updates_at`); an objective with phases overrides that. The critic's optimizer is
the trainer's Adam with the critic's own settings (``critic_lr``, ``critic_beta1``, ``critic_beta2``), declared
through :meth:`~revkit.objectives.Objective.optimizer_overrides`, so the trainer needs no special case.
The critic's loss and the model's are the subclass's: :mod:`revkit.objectives.adversarial` (data space),
:mod:`revkit.alignflow.objective` (one discriminator per domain), :mod:`revkit.objectives.latent_adversary`
(the latent space).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field
from torch import nn

from revkit.errors import RevkitError
from revkit.objectives.base import Objective, ObjectiveParams

if TYPE_CHECKING:
    from revkit.flow import Flow

MODEL, CRITIC = "model", "critic"


class TwoPlayerParams(ObjectiveParams):
    """The critic's schedule and Adam settings; subclasses may change the defaults and bounds."""

    critic_steps: int = Field(1, ge=1, le=100, description="critic (discriminator) updates before each model update")
    critic_lr: float = Field(2e-4, gt=0.0, description="the critic's Adam learning rate")
    critic_beta1: float = Field(0.5, ge=0.0, lt=1.0, description="the critic's Adam beta1")
    critic_beta2: float = Field(0.999, ge=0.0, lt=1.0, description="the critic's Adam beta2")


class TwoPlayerObjective(Objective):
    """Base of objectives with a critic: the update schedule, the two parameter groups and the critic's
    optimizer settings. A subclass builds its critic in ``setup`` and returns it from :meth:`critic_module`.

    Args:
        critic_steps: critic updates before each model update (≥ 1).
        critic_lr, critic_beta1, critic_beta2: the critic's Adam settings.
    """

    Params = TwoPlayerParams

    def __init__(self, critic_steps: int = 1, critic_lr: float = 2e-4, critic_beta1: float = 0.5,
                 critic_beta2: float = 0.999):
        super().__init__()
        if critic_steps < 1:
            raise RevkitError(f"{type(self).__name__}: critic_steps must be ≥ 1, got {critic_steps}")
        self.critic_steps = int(critic_steps)
        self.critic_settings = {"lr": float(critic_lr), "beta1": float(critic_beta1), "beta2": float(critic_beta2)}

    def critic_module(self) -> nn.Module:
        """The critic (every discriminator the objective trains), built by ``setup``.

        Raises:
            RevkitError: before ``setup``.
        """
        raise NotImplementedError

    def update_order(self) -> list[str]:
        return [MODEL, CRITIC]

    def updates_at(self, step: int) -> list[str]:
        """``critic_steps × "critic"``, then ``"model"``."""
        return [CRITIC] * self.critic_steps + [MODEL]

    def parameter_groups(self, model: Flow) -> dict[str, list[nn.Parameter]]:
        """``"model"``: the model's trainable parameters (its prior's included); ``"critic"``: the critic's."""
        return {MODEL: [p for p in model.parameters() if p.requires_grad],
                CRITIC: [p for p in self.critic_module().parameters() if p.requires_grad]}

    def optimizer_overrides(self, group: str) -> dict[str, float]:
        return dict(self.critic_settings) if group == CRITIC else {}
