r"""The objective ``alignflow``: adversarial losses in both domains plus :math:`\lambda` · likelihood in both.

Batches hold unpaired images of both domains, ``(x_A, y_A, x_B, y_B)`` (the ``unpaired_mnist`` source).
With the translations :math:`\tilde x_B = G_B^{-1}(G_A(u_A))` and :math:`\tilde x_A = G_A^{-1}(G_B(u_B))`
of the dequantized batches :math:`u_A, u_B` (:mod:`revkit.alignflow.model`), one discriminator per domain,
:math:`D_A` and :math:`D_B` (the same registered kind, ``[objective.discriminator]``), and the GAN losses of
:mod:`revkit.objectives.gan_losses`:

* the discriminators' update (group ``"critic"``, ``critic_steps`` times per step):
  :math:`L_D = L_D(D_A;\ u_A, \tilde x_A) + L_D(D_B;\ u_B, \tilde x_B)` (with the gradient penalty for ``wgan_gp``);
* the flows' update (group ``"model"``):

  .. math:: L = w_{\text{adv}}\big(L_G(D_B(\tilde x_B)) + L_G(D_A(\tilde x_A))\big)
            + \lambda\,\big(\mathrm{bpd}_A(x_A) + \mathrm{bpd}_B(x_B)\big).

Cycle consistency is exact by construction (:math:`A\to B\to A` is the identity), so unlike CycleGAN
there is no cycle loss; :meth:`AlignFlowObjective.evaluate` reports the largest cycle error per sample
to show it. Evaluation: ``bits_per_dim_a``, ``bits_per_dim_b``, their mean ``bits_per_dim`` (the main
metric), ``cycle_error_a`` and ``cycle_error_b`` (:math:`\max|x - \text{back}(\text{there}(x))|`), and
``cycle_nonfinite_a`` / ``_b``: 1 for a sample whose round trip is not finite (its error counts as 0 in
``cycle_error``; the mean of ``cycle_nonfinite`` is the share of such samples). The identity is exact in exact
arithmetic; in float32 a translation whose pixels saturate a ``logit`` layer's sigmoid (exactly 0 or 1) cannot
be inverted, and one near saturation loses precision.
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
    from revkit.alignflow.model import AlignedFlows
    from revkit.data.base import DataInfo


class AlignFlowParams(TwoPlayerParams):
    loss: GanLoss = Field("non_saturating", description="'minimax', 'non_saturating' or 'wgan_gp'")
    discriminator: DiscriminatorTable = Field(
        default_factory=DiscriminatorTable, description="the kind and settings of both domains' discriminators")
    gp_weight: float = Field(10.0, ge=0.0, description="γ of the gradient penalty (loss = 'wgan_gp' only)")
    adversary_weight: float = Field(1.0, ge=0.0, description="weight of the two generator losses")
    nll_weight: float = Field(1.0, ge=0.0, description="λ: weight of the two domains' bits/dim")
    dequantize: Literal["uniform", "none"] = Field("uniform", description="as max_likelihood")


class AlignFlowObjective(TwoPlayerObjective):
    """AlignFlow's hybrid objective on an :class:`~revkit.alignflow.model.AlignedFlows` model (see the module).

    Logged metrics, flows' update: ``generator_a``, ``generator_b`` (:math:`L_G` of the translations into A
    and into B), ``bits_per_dim_a``, ``bits_per_dim_b``; discriminators' update (prefix ``critic_``):
    ``real_a``, ``fake_a``, ``real_b``, ``fake_b`` (mean scores) and ``gradient_penalty`` (``wgan_gp``).
    """

    Params = AlignFlowParams
    main_metric = "bits_per_dim"

    def __init__(
        self,
        loss: str = "non_saturating",
        discriminator: DiscriminatorTable | dict[str, Any] | str | None = None,
        critic_steps: int = 1,
        critic_lr: float = 2e-4,
        critic_beta1: float = 0.5,
        critic_beta2: float = 0.999,
        gp_weight: float = 10.0,
        adversary_weight: float = 1.0,
        nll_weight: float = 1.0,
        dequantize: Literal["uniform", "none"] = "uniform",
    ):
        super().__init__(critic_steps, critic_lr, critic_beta1, critic_beta2)
        if loss not in GAN_LOSSES:
            raise RevkitError(f"alignflow: loss must be one of {', '.join(GAN_LOSSES)}, got {loss!r}")
        self.loss_kind = loss
        self.table = as_table(discriminator)
        self.gp_weight, self.adversary_weight, self.nll_weight = float(gp_weight), float(adversary_weight), float(nll_weight)
        self.likelihood = MaxLikelihood(dequantize)
        self.critics: nn.ModuleDict | None = None

    def setup(self, model: AlignedFlows, data: DataInfo) -> None:  # type: ignore[override]
        """Check the model is a pair of aligned flows and build one discriminator per domain."""
        if not all(callable(getattr(model, m, None)) for m in ("a_to_b", "b_to_a", "log_prob_b")):
            raise RevkitError("alignflow trains two aligned flows: set model.kind = 'aligned_flows'")
        self.likelihood.setup(model, data)
        self.critics = nn.ModuleDict({"a": self.table.build(model.input_shape), "b": self.table.build(model.input_shape)})

    # -- the terms ---------------------------------------------------------------------------------
    @staticmethod
    def split(batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if len(batch) < 4:
            raise RevkitError("alignflow needs batches of both domains, (x_A, y_A, x_B, y_B): use a two-domain "
                              "data source such as 'unpaired_mnist'")
        return batch[0], batch[1], batch[2], batch[3]

    def one_critic(self, critic: Discriminator, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        fake = fake.detach()
        rs, fs = critic(real), critic(fake)
        loss = critic_loss(self.loss_kind, rs, fs)
        gp = None
        if self.loss_kind == "wgan_gp" and self.gp_weight > 0:
            gp = gradient_penalty(critic, interpolates(real, fake))
            loss = loss + self.gp_weight * gp
        return loss, rs, fs, gp

    def losses(self, model: AlignedFlows, batch: tuple[Tensor, ...], update: str = MODEL) -> Losses:  # type: ignore[override]
        x_a, y_a, x_b, y_b = self.split(batch)
        u_a, u_b = self.likelihood.dequantize(x_a), self.likelihood.dequantize(x_b)
        critics = self.need_critics()
        if update == CRITIC:
            with torch.no_grad():
                fake_b, fake_a = model.a_to_b(u_a), model.b_to_a(u_b)
            loss_a, ra, fa, gpa = self.one_critic(critics["a"], u_a, fake_a)
            loss_b, rb, fb, gpb = self.one_critic(critics["b"], u_b, fake_b)
            metrics = {"real_a": float(ra.detach().mean()), "fake_a": float(fa.detach().mean()),
                       "real_b": float(rb.detach().mean()), "fake_b": float(fb.detach().mean())}
            if gpa is not None and gpb is not None:
                metrics["gradient_penalty"] = float((gpa + gpb).detach())
            return Losses(loss=loss_a + loss_b, metrics=metrics)
        if update != MODEL:
            raise RevkitError(f"alignflow updates the groups 'model' and 'critic', got {update!r}")
        gen_b = generator_loss(self.loss_kind, critics["b"](model.a_to_b(u_a)))
        gen_a = generator_loss(self.loss_kind, critics["a"](model.b_to_a(u_b)))
        loss = self.adversary_weight * (gen_a + gen_b)
        metrics = {"generator_a": float(gen_a.detach()), "generator_b": float(gen_b.detach())}
        if self.nll_weight > 0:
            bpd_a = self.likelihood.per_dim(model.log_prob(u_a, y_a)).mean()
            bpd_b = self.likelihood.per_dim(model.log_prob_b(u_b, y_b)).mean()
            loss = loss + self.nll_weight * (bpd_a + bpd_b)
            metrics.update(bits_per_dim_a=float(bpd_a.detach()), bits_per_dim_b=float(bpd_b.detach()))
        return Losses(loss=loss, metrics=metrics)

    @torch.no_grad()
    def evaluate(self, model: AlignedFlows, batch: tuple[Tensor, ...]) -> dict[str, Tensor]:  # type: ignore[override]
        x_a, y_a, x_b, y_b = self.split(batch)
        u_a, u_b = self.likelihood.dequantize(x_a), self.likelihood.dequantize(x_b)
        bpd_a = self.likelihood.per_dim(model.log_prob(u_a, y_a))
        bpd_b = self.likelihood.per_dim(model.log_prob_b(u_b, y_b))

        def cycle(x: Tensor, there: Any, back: Any) -> tuple[Tensor, Tensor]:
            error = (back(there(x)) - x).abs().reshape(x.shape[0], -1).amax(dim=1)
            finite = torch.isfinite(error)
            return error.where(finite, torch.zeros_like(error)), (~finite).to(error.dtype)

        error_a, lost_a = cycle(u_a, model.a_to_b, model.b_to_a)
        error_b, lost_b = cycle(u_b, model.b_to_a, model.a_to_b)
        return {"bits_per_dim": (bpd_a + bpd_b) / 2, "bits_per_dim_a": bpd_a, "bits_per_dim_b": bpd_b,
                "cycle_error_a": error_a, "cycle_error_b": error_b,
                "cycle_nonfinite_a": lost_a, "cycle_nonfinite_b": lost_b}

    def need_critics(self) -> nn.ModuleDict:
        if self.critics is None:
            raise RevkitError("alignflow: call setup(model, data_info) first (it builds the discriminators)")
        return self.critics

    def critic_module(self) -> nn.Module:
        return self.need_critics()
