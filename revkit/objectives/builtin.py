"""Internal plugin: registers the built-in objectives."""

from __future__ import annotations

from revkit.objectives.adversarial import Adversarial, FlowGan
from revkit.objectives.classifier import Classifier
from revkit.objectives.latent_adversary import LatentAdversary
from revkit.objectives.max_likelihood import MaxLikelihood
from revkit.objectives.optimal_transport import OptimalTransport
from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_objectives(register: Register) -> None:
    register("max_likelihood", MaxLikelihood)
    register("optimal_transport", OptimalTransport)
    register("latent_adversary", LatentAdversary)
    register("classifier", Classifier)
    register("adversarial", Adversarial)
    register("flow_gan", FlowGan)
