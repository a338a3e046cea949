r"""Latent-space adversarial training of a reversible network (the seed paper's CelebA objective).

The prior (``active_gaussian``) lets ``k`` latent dimensions :math:`A` vary as :math:`\mathcal N(0, 1)`
and holds the rest at 0. With :math:`z = f(x)`, :math:`\bar z = \text{restrict}(z)` (:math:`z` with
every inactive dimension set to the prior's mean 0) and the critic :math:`D` on the active
dimensions (:mod:`revkit.objectives.critic`):

* **phase 1** (steps ``< phase1_steps``) trains the network alone on clamp-then-invert
  reconstruction, :math:`L_{\text{rec}} = \operatorname{mean}|f^{-1}(\bar z) - x|`, so the image
  comes to be carried by the active dimensions;
* **phase 2** alternates ``critic_steps`` critic updates,
  :math:`L_D = \operatorname{mean}\max(0, 1 - D(s_A)) + \operatorname{mean}\max(0, 1 + D(z_A))` with prior
  samples :math:`s`, and one network update

  .. math:: L = w_{\text{adv}} \big(-\operatorname{mean} D(z_A)\big) + w_{\text{rec}} L_{\text{rec}}
            + w_{\text{inactive}} \operatorname{mean}_{d \notin A} z_d^2,

  which makes the active dimensions look like prior samples to the critic, keeps the image
  recoverable from them and pushes the inactive ones to 0.

The updates are declared to the trainer through :meth:`updates_at`, :meth:`parameter_groups`
(``"model"``: the flow; ``"critic"``: the critic) and :meth:`optimizer_overrides` (the critic's
learning rate and betas); the trainer needs no special case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.objectives.base import Losses
from revkit.objectives.critic import (
    SpectralCritic,
    hinge_critic_loss,
    hinge_generator_loss,
)
from revkit.objectives.two_player import CRITIC, MODEL, TwoPlayerObjective, TwoPlayerParams

if TYPE_CHECKING:
    from revkit.data.base import DataInfo
    from revkit.flow import Flow


class LatentAdversaryParams(TwoPlayerParams):
    phase1_steps: int = Field(1000, ge=0, description="steps of reconstruction-only training before the critic")
    critic_hidden: int = Field(512, ge=1, le=65_536, description="width of the critic's two hidden layers")
    critic_lr: float = Field(1e-4, gt=0.0, description="the critic's Adam learning rate")
    critic_steps: int = Field(1, ge=1, le=1000, description="critic updates before each network update in phase 2")
    adversary_weight: float = Field(1.0, ge=0.0, description="weight of the critic term for the network")
    reconstruction_weight: float = Field(1.0, ge=0.0, description="weight of the clamp-then-invert L1 "
                                         "reconstruction in phase 2 (phase 1 uses it alone, unweighted)")
    inactive_weight: float = Field(1.0, ge=0.0, description="weight of the MSE pushing inactive dimensions to 0")


class LatentAdversary(TwoPlayerObjective):
    r"""Two-phase latent adversary (see the module).

    Logged metrics (model update): ``reconstruction_l1``, and in phase 2 ``adversary``
    (:math:`-\operatorname{mean}D(z_A)`) and ``inactive_mse``; critic update: ``critic_real``,
    ``critic_fake`` (mean scores). :meth:`evaluate` gives per sample ``reconstruction_l1`` (the main
    metric), ``inactive_mse`` and ``critic_score`` :math:`D(z_A)`.

    Args:
        phase1_steps: length of phase 1.
        critic_hidden: the critic's width.
        critic_lr, critic_beta1, critic_beta2: the critic's Adam settings.
        critic_steps: critic updates per step in phase 2.
        adversary_weight, reconstruction_weight, inactive_weight: :math:`w_{\text{adv}}`,
            :math:`w_{\text{rec}}`, :math:`w_{\text{inactive}}`.
    """

    Params = LatentAdversaryParams
    main_metric = "reconstruction_l1"
    #: reads only the images
    accepts_unlabelled = True

    def __init__(
        self,
        phase1_steps: int = 1000,
        critic_hidden: int = 512,
        critic_lr: float = 1e-4,
        critic_beta1: float = 0.5,
        critic_beta2: float = 0.999,
        critic_steps: int = 1,
        adversary_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        inactive_weight: float = 1.0,
    ):
        super().__init__(critic_steps, critic_lr, critic_beta1, critic_beta2)
        if phase1_steps < 0 or critic_hidden < 1:
            raise RevkitError("latent_adversary: phase1_steps must be ≥ 0 and critic_hidden ≥ 1; "
                              f"got {phase1_steps} and {critic_hidden}")
        self.phase1_steps, self.critic_hidden = int(phase1_steps), int(critic_hidden)
        self.weights = {"adversary": float(adversary_weight), "reconstruction": float(reconstruction_weight),
                        "inactive": float(inactive_weight)}
        self.critic: SpectralCritic | None = None
        #: the step whose updates run now (set by :meth:`updates_at`); decides the model update's phase.
        self.current_step = 0

    def setup(self, model: Flow, data: DataInfo) -> None:
        """Build the critic on the prior's active dimensions.

        Raises:
            RevkitError: without a prior, with a class-conditional one, or when no dimension is active.
        """
        prior = model.prior
        if prior is None or prior.conditional:
            kind = "no prior" if prior is None else f"the class-conditional prior {type(prior).__name__}"
            raise RevkitError(f"latent_adversary needs an unconditional prior with a few active dimensions "
                              f"(prior.kind = 'active_gaussian'); this model has {kind}")
        k = int(prior.active_dims().sum())
        if k < 1:
            raise RevkitError("latent_adversary: the prior has no active dimension for the critic to look at")
        self.critic = SpectralCritic(k, self.critic_hidden)

    # -- what the trainer asks ---------------------------------------------------------------
    def in_phase1(self, step: int) -> bool:
        return step < self.phase1_steps

    def updates_at(self, step: int) -> list[str]:
        """Phase 1: ``["model"]``; phase 2: ``critic_steps × "critic"``, then ``"model"``. Records
        ``step`` as :attr:`current_step`, so the following model update knows its phase."""
        self.current_step = int(step)
        return [MODEL] if self.in_phase1(step) else [CRITIC] * self.critic_steps + [MODEL]

    # -- the terms --------------------------------------------------------------------------
    def active_mask(self, model: Flow) -> Tensor:
        """The prior's active dimensions as a flat boolean mask ``[D]``."""
        prior = model.prior
        assert prior is not None
        mask = prior.active_dims().reshape(-1)
        critic = self._need_critic()
        if int(mask.sum()) != critic.in_features:
            raise RevkitError(f"latent_adversary: the prior now has {int(mask.sum())} active dimensions but "
                              f"the critic was built for {critic.in_features}")
        return mask

    def restricted_reconstruction(self, model: Flow, x: Tensor, z: Tensor) -> Tensor:
        """Per-sample L1 ``[B]`` between :math:`f^{-1}(\\text{restrict}(z))` and ``x``."""
        prior = model.prior
        assert prior is not None
        restored = model.decode(prior.restrict(z))
        return (restored - x).abs().reshape(x.shape[0], -1).mean(dim=1)

    def critic_losses(self, model: Flow, x: Tensor) -> Losses:
        prior = model.prior
        assert prior is not None
        critic, mask = self._need_critic(), self.active_mask(model)
        with torch.no_grad():
            fake = model.encode(x).reshape(x.shape[0], -1)[:, mask]
            real = prior.sample(x.shape[0]).reshape(x.shape[0], -1)[:, mask]
        real_scores, fake_scores = critic(real), critic(fake)
        return Losses(loss=hinge_critic_loss(real_scores, fake_scores),
                      metrics={"real": float(real_scores.detach().mean()),
                               "fake": float(fake_scores.detach().mean())})

    def model_losses(self, model: Flow, x: Tensor, phase1: bool) -> Losses:
        z = model.encode(x)
        rec = self.restricted_reconstruction(model, x, z).mean()
        if phase1:
            return Losses(loss=rec, metrics={"reconstruction_l1": float(rec.detach())})
        mask = self.active_mask(model)
        flat = z.reshape(x.shape[0], -1)
        adversary = hinge_generator_loss(self._need_critic()(flat[:, mask]))
        inactive = flat[:, ~mask].pow(2).mean() if bool((~mask).any()) else flat.new_zeros(())
        w = self.weights
        loss = w["adversary"] * adversary + w["reconstruction"] * rec + w["inactive"] * inactive
        return Losses(loss=loss, metrics={"reconstruction_l1": float(rec.detach()),
                                          "adversary": float(adversary.detach()),
                                          "inactive_mse": float(inactive.detach())})

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = MODEL) -> Losses:
        if update == CRITIC:
            return self.critic_losses(model, batch[0])
        if update == MODEL:
            return self.model_losses(model, batch[0], self.in_phase1(self.current_step))
        raise RevkitError(f"latent_adversary updates the groups 'model' and 'critic', got {update!r}")

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x = batch[0]
        z = model.encode(x)
        mask = self.active_mask(model)
        flat = z.reshape(x.shape[0], -1)
        inactive = flat[:, ~mask].pow(2).mean(dim=1) if bool((~mask).any()) else flat.new_zeros(x.shape[0])
        return {"reconstruction_l1": self.restricted_reconstruction(model, x, z),
                "inactive_mse": inactive,
                "critic_score": self._need_critic()(flat[:, mask])}

    def _need_critic(self) -> SpectralCritic:
        if self.critic is None:
            raise RevkitError("latent_adversary: call setup(flow, data_info) first (it builds the critic)")
        return self.critic

    def critic_module(self) -> nn.Module:
        return self._need_critic()
