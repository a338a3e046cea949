r"""Adversarial training of an invertible generator in data space, alone or with maximum likelihood (Flow-GAN).

The generator is the model's inverse at a temperature :math:`T`: :math:`G(z) = f^{-1}(z)`,
:math:`z \sim p_Z` with its std scaled by :math:`T` (``model.sample(n, y, T)``, reparameterized, so the
generator's gradient reaches the network and a learned prior). A registered discriminator :math:`D`
(``[objective.discriminator]``, :mod:`revkit.discriminators`) scores data-space samples. "Real" samples
are the batch after the same uniform dequantization maximum likelihood uses
(:math:`u = (k + U)/L`, :mod:`revkit.objectives.max_likelihood`), so the discriminator cannot tell the
model's continuous samples from the data by their values lying on the grid :math:`k/(L-1)`.

Each step runs ``critic_steps`` discriminator updates (each with fresh generator samples, without a
graph through the generator), then one generator update, minimising (losses in
:mod:`revkit.objectives.gan_losses`)

.. math:: L_{\text{model}} = w_{\text{adv}}\, L_G + \lambda\, \mathrm{bpd}(x),

where :math:`\mathrm{bpd}` is the batch's bits per dimension under the model (maximum likelihood's,
with its dequantization): ``adversarial`` has :math:`\lambda = 0` by default, ``flow_gan`` (Grover et
al., 2018) is the hybrid with :math:`\lambda = 1` by default. Whatever :math:`\lambda`, evaluation
reports the exact test ``bits_per_dim`` (the main metric): the generator is invertible, so its
likelihood is known even when it was never trained on it.

With ``conditional = true`` (labelled data and a class-conditional model: ``model.conditional`` or a
class prior) the discriminator is class-conditional by projection and the generator's samples take
the batch's labels.

The updates are declared to the trainer through :meth:`updates_at`, :meth:`parameter_groups`
(``"model"``: the model and its prior; ``"critic"``: the discriminator) and
:meth:`optimizer_overrides` (the discriminator's Adam settings); the discriminator (with its spectral
normalization's power-iteration vectors) is part of the objective's ``state_dict``, so checkpoints
carry it and its optimizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.discriminators.base import Discriminator, DiscriminatorTable, as_table
from revkit.errors import RevkitError
from revkit.objectives.base import Losses
from revkit.objectives.gan_losses import GAN_LOSSES, GanLoss, critic_loss, generator_loss, gradient_penalty, interpolates
from revkit.objectives.max_likelihood import MaxLikelihood
from revkit.objectives.two_player import CRITIC, MODEL, TwoPlayerObjective, TwoPlayerParams

if TYPE_CHECKING:
    from revkit.data.base import DataInfo
    from revkit.model import Model


class AdversarialParams(TwoPlayerParams):
    loss: GanLoss = Field("non_saturating", description="generator/discriminator losses: 'minimax', "
                                                         "'non_saturating' or 'wgan_gp'")
    discriminator: DiscriminatorTable = Field(
        default_factory=DiscriminatorTable,
        description="the discriminator: kind (a registered discriminator, default 'conv') and its own keys")
    conditional: bool = Field(False, description="class-conditional discriminator (labelled data and a "
                                                 "class-conditional model); the generator takes the batch's labels")
    gp_weight: float = Field(10.0, ge=0.0, description="γ of the gradient penalty (loss = 'wgan_gp' only)")
    temperature: float = Field(1.0, gt=0.0, description="scale of the prior's std for the generator's samples")
    adversary_weight: float = Field(1.0, ge=0.0, description="weight of the generator's adversarial loss")
    nll_weight: float = Field(0.0, ge=0.0, description="λ: weight of bits/dim on the batch (0: adversarial only)")
    dequantize: Literal["uniform", "none"] = Field("uniform", description="dequantization of the real data and "
                                                                           "of bits/dim (as max_likelihood)")


class Adversarial(TwoPlayerObjective):
    r"""Data-space adversarial objective (see the module).

    Logged metrics, generator update: ``generator`` (:math:`L_G`), and ``bits_per_dim`` when
    :math:`\lambda > 0`; discriminator update (logged with the prefix ``critic_``): ``real`` and ``fake``
    (mean scores), ``gradient_penalty`` (``wgan_gp``). :meth:`evaluate` gives per sample
    ``bits_per_dim`` (the main metric), ``critic_real`` and ``critic_fake`` (scores of test images and
    of as many samples).

    Args:
        loss: ``"minimax"``, ``"non_saturating"`` or ``"wgan_gp"``.
        discriminator: a :class:`~revkit.discriminators.DiscriminatorTable`, a dict such as
            ``{"kind": "conv", "hidden": 32}``, a registered name, or None (``conv`` with its defaults).
        conditional: class-conditional discriminator.
        critic_steps: discriminator updates per step.
        critic_lr, critic_beta1, critic_beta2: the discriminator's Adam settings.
        gp_weight: :math:`\gamma`.
        temperature: :math:`T` of the generator's prior samples.
        adversary_weight, nll_weight: :math:`w_{\text{adv}}`, :math:`\lambda`.
        dequantize: as :class:`~revkit.objectives.MaxLikelihood`.
    """

    Params = AdversarialParams
    main_metric = "bits_per_dim"
    #: unconditional: the labels are not read (``conditional = true`` sets it false on the instance)
    accepts_unlabelled = True

    def __init__(
        self,
        loss: str = "non_saturating",
        discriminator: DiscriminatorTable | dict[str, Any] | str | None = None,
        conditional: bool = False,
        critic_steps: int = 1,
        critic_lr: float = 2e-4,
        critic_beta1: float = 0.5,
        critic_beta2: float = 0.999,
        gp_weight: float = 10.0,
        temperature: float = 1.0,
        adversary_weight: float = 1.0,
        nll_weight: float = 0.0,
        dequantize: Literal["uniform", "none"] = "uniform",
    ):
        super().__init__(critic_steps, critic_lr, critic_beta1, critic_beta2)
        if loss not in GAN_LOSSES:
            raise RevkitError(f"{self.name}: loss must be one of {', '.join(GAN_LOSSES)}, got {loss!r}")
        if temperature <= 0 or min(gp_weight, adversary_weight, nll_weight) < 0:
            raise RevkitError(f"{self.name}: temperature must be > 0 and the weights ≥ 0")
        self.loss_kind = loss
        self.table = as_table(discriminator)
        self.conditional = bool(conditional)
        # a class-conditional discriminator reads every label
        self.accepts_unlabelled = not self.conditional
        self.gp_weight, self.temperature = float(gp_weight), float(temperature)
        self.adversary_weight, self.nll_weight = float(adversary_weight), float(nll_weight)
        self.likelihood = MaxLikelihood(dequantize)
        self.critic: Discriminator | None = None

    @property
    def name(self) -> str:
        return "adversarial"

    def setup(self, model: Model, data: DataInfo) -> None:
        """Check the data and the model, and build the discriminator on the data's shape.

        Raises:
            RevkitError: without a prior, or for ``conditional`` without labels or a class-conditional model.
        """
        self.likelihood.setup(model, data)  # shapes agree; D and the levels for bits/dim
        prior = model.prior
        if prior is None:
            raise RevkitError(f"{self.name}: the generator samples the prior: the model needs one")
        classes = 0
        if self.conditional:
            if data.classes < 1:
                raise RevkitError(f"{self.name}: conditional = true needs labelled data; '{data.name}' has none")
            if not (model.conditional or prior.conditional):
                raise RevkitError(f"{self.name}: conditional = true needs a class-conditional model "
                                  "(model.conditional = true or a class prior such as 'class_gaussian')")
            classes = data.classes
        self.critic = self.table.build(model.input_shape, classes)

    # -- the terms ----------------------------------------------------------------------------
    def labels(self, batch: tuple[Tensor, ...]) -> Tensor | None:
        """The labels the discriminator and the generator see (None when unconditional)."""
        return batch[1] if self.conditional else None

    def real(self, x: Tensor) -> Tensor:
        """The discriminator's real samples: the data after dequantization."""
        return self.likelihood.dequantize(x)

    def generate(self, model: Model, n: int, y: Tensor | None) -> Tensor:
        """:math:`G(z)`: ``n`` samples of the model at the generator's temperature (labels ``y`` if given)."""
        return model.sample(n, y, self.temperature)

    def discriminator_losses(self, critic: Discriminator, real: Tensor, fake: Tensor, y: Tensor | None) -> Losses:
        """:math:`L_D` on ``real`` and ``fake`` (detached) samples, plus :math:`\\gamma` GP for ``wgan_gp``."""
        fake = fake.detach()
        real_scores, fake_scores = critic(real, y), critic(fake, y)
        loss = critic_loss(self.loss_kind, real_scores, fake_scores)
        metrics = {"real": float(real_scores.detach().mean()), "fake": float(fake_scores.detach().mean())}
        if self.loss_kind == "wgan_gp" and self.gp_weight > 0:
            gp = gradient_penalty(lambda p: critic(p, y), interpolates(real, fake))
            loss = loss + self.gp_weight * gp
            metrics["gradient_penalty"] = float(gp.detach())
        return Losses(loss=loss, metrics=metrics)

    def critic_update(self, model: Model, batch: tuple[Tensor, ...]) -> Losses:
        x, y = batch[0], self.labels(batch)
        with torch.no_grad():
            fake = self.generate(model, x.shape[0], y)
        return self.discriminator_losses(self.need_critic(), self.real(x), fake, y)

    def model_update(self, model: Model, batch: tuple[Tensor, ...]) -> Losses:
        x, y = batch[0], self.labels(batch)
        fake = self.generate(model, x.shape[0], y)
        gen = generator_loss(self.loss_kind, self.need_critic()(fake, y))
        loss = self.adversary_weight * gen
        metrics = {"generator": float(gen.detach())}
        if self.nll_weight > 0:
            bpd = self.likelihood.nll_per_dim(model, (batch[0], batch[1])).mean()
            loss = loss + self.nll_weight * bpd
            metrics[self.likelihood.metric_name] = float(bpd.detach())
        return Losses(loss=loss, metrics=metrics)

    def losses(self, model: Model, batch: tuple[Tensor, ...], update: str = MODEL) -> Losses:
        if update == CRITIC:
            return self.critic_update(model, batch)
        if update == MODEL:
            return self.model_update(model, batch)
        raise RevkitError(f"{self.name} updates the groups 'model' and 'critic', got {update!r}")

    @torch.no_grad()
    def evaluate(self, model: Model, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        x, y = batch[0], self.labels(batch)
        critic = self.need_critic()
        return {self.likelihood.metric_name: self.likelihood.nll_per_dim(model, (batch[0], batch[1])),
                "critic_real": critic(self.real(x), y),
                "critic_fake": critic(self.generate(model, x.shape[0], y), y)}

    def setup_done(self) -> bool:
        return self.critic is not None

    def need_critic(self) -> Discriminator:
        if self.critic is None:
            raise RevkitError(f"{self.name}: call setup(model, data_info) first (it builds the discriminator)")
        return self.critic

    def critic_module(self) -> nn.Module:
        return self.need_critic()

    def extra_repr(self) -> str:
        return (f"loss={self.loss_kind!r}, critic_steps={self.critic_steps}, nll_weight={self.nll_weight:g}, "
                f"temperature={self.temperature:g}")


class FlowGanParams(AdversarialParams):
    nll_weight: float = Field(1.0, gt=0.0, description="λ: weight of bits/dim on the batch (> 0: the hybrid)")


class FlowGan(Adversarial):
    r"""Flow-GAN's hybrid (Grover et al., 2018): :class:`Adversarial` with :math:`\lambda > 0` (default 1)."""

    Params = FlowGanParams

    def __init__(self, *args: Any, nll_weight: float = 1.0, **kwargs: Any):
        if nll_weight <= 0:
            raise RevkitError(f"flow_gan: nll_weight must be > 0 (λ = 0 is the objective 'adversarial'), got {nll_weight}")
        super().__init__(*args, nll_weight=nll_weight, **kwargs)

    @property
    def name(self) -> str:
        return "flow_gan"
