"""Training objectives: :class:`Objective` and the built-in ones."""

from revkit.objectives.adversarial import Adversarial, FlowGan
from revkit.objectives.base import Losses, Objective, ObjectiveParams
from revkit.objectives.critic import (
    SpectralCritic,
    hinge_critic_loss,
    hinge_generator_loss,
)
from revkit.objectives.latent_adversary import LatentAdversary
from revkit.objectives.max_likelihood import MaxLikelihood
from revkit.objectives.optimal_transport import (
    OptimalTransport,
    cost_matrix,
    transport_plan,
)

__all__ = [
    "Adversarial",
    "FlowGan",
    "LatentAdversary",
    "Losses",
    "MaxLikelihood",
    "Objective",
    "ObjectiveParams",
    "OptimalTransport",
    "SpectralCritic",
    "cost_matrix",
    "hinge_critic_loss",
    "hinge_generator_loss",
    "transport_plan",
]
