r"""The evidence lower bound of a :class:`~revkit.vae.model.VAE` (the objective ``"elbo"``), with optional linear KL warm-up.

Training minimises, per image and averaged over the batch,

.. math:: -\mathcal L_β(x) = -\log p(x \mid z) + β_t\,\big(\log q(z \mid x) - \log p(z)\big),
          \qquad z \sim q(z \mid x),

with ``samples`` reparameterized draws per image (their mean) and the warm-up weight
:math:`β_t = \min(1, t / T)` at step ``t`` (0-based) for ``kl_warmup_steps = T`` (:math:`β ≡ 1` for
``T = 0``). Logged per step: ``elbo`` (:math:`\mathcal L` at β = 1, nats, higher is better),
``recon_nll`` (:math:`-\log p(x\mid z)`), ``kl`` (the single-sample :math:`\log q - \log p(z)`) and
``beta``.

**Evaluation** (the test split, :meth:`Elbo.evaluate`): from ``iwae_samples = L`` posterior draws
per image (:func:`revkit.vae.bounds.importance_weighted`, in chunks of at most ``iwae_chunk``
decoder rows) the per-image ``nll_iwae`` :math:`= -\mathcal L_L` (the reported :math:`-\log p(x)`,
the main metric), ``elbo``, ``recon_nll`` and ``kl`` (means over the same draws). The literature uses
L = 5000; the default here is 500 so that the 10,000 MNIST test images take a few minutes on one CPU
core; set ``objective.iwae_samples = 5000`` for the literature's number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field
from torch import Tensor

from revkit.errors import RevkitError
from revkit.objectives.base import Losses, Objective, ObjectiveParams
from revkit.vae.bounds import importance_weighted, log_weights
from revkit.vae.model import VAE

if TYPE_CHECKING:
    from revkit.data.base import DataInfo


class ElboParams(ObjectiveParams):
    samples: int = Field(1, ge=1, le=1000, description="posterior draws per image in the training loss")
    kl_warmup_steps: int = Field(0, ge=0, description="steps over which the KL weight β rises linearly from 0 to 1; "
                                                      "0: β = 1 throughout")
    iwae_samples: int = Field(500, ge=1, le=100_000, description="importance samples L per test image for "
                                                                "−log p(x) (5000 in the literature)")
    iwae_chunk: int = Field(10_000, ge=1, le=1_000_000, description="decoder rows (samples × images) per chunk of the "
                                                      "importance-weighted evaluation; bounds its memory")


class Elbo(Objective):
    """Maximise the ELBO of a VAE (``model.kind = "vae"``); see the module docstring."""

    Params = ElboParams
    main_metric = "nll_iwae"
    #: reads only the images
    accepts_unlabelled = True

    def __init__(self, samples: int = 1, kl_warmup_steps: int = 0, iwae_samples: int = 500,
                 iwae_chunk: int = 10_000):
        super().__init__()
        self.samples = int(samples)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.iwae_samples = int(iwae_samples)
        self.iwae_chunk = int(iwae_chunk)
        self.step = 0

    def setup(self, model: Any, data: DataInfo) -> None:
        if not isinstance(model, VAE):
            raise RevkitError("the 'elbo' objective trains a VAE: set model.kind = 'vae' and a [model.vae] table")
        if data.levels not in (2, None):
            raise RevkitError(f"the VAE's Bernoulli decoder models binary pixels, but data '{data.name}' have "
                              f"{data.levels} levels; use data.kind = 'binarized_mnist'")

    def updates_at(self, step: int) -> list[str]:
        self.step = int(step)  # the warm-up follows the trainer's step, resumed runs included
        return self.update_order()

    @property
    def beta(self) -> float:
        """The KL weight of the current step."""
        if self.kl_warmup_steps == 0:
            return 1.0
        return min(1.0, self.step / self.kl_warmup_steps)

    def losses(self, model: Any, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        if update != "model":
            raise RevkitError(f"elbo updates only the group 'model', got {update!r}")
        x = batch[0]
        _, log_lik, kl = log_weights(model, x, self.samples)
        recon, kl_mean = -log_lik.mean(0), kl.mean(0)
        beta = self.beta
        loss = (recon + beta * kl_mean).mean()
        metrics = {"elbo": float(-(recon + kl_mean).mean().detach()), "recon_nll": float(recon.mean().detach()),
                   "kl": float(kl_mean.mean().detach()), "beta": beta}
        return Losses(loss=loss, metrics=metrics)

    @torch.no_grad()
    def evaluate(self, model: Any, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        bounds = importance_weighted(model, batch[0], self.iwae_samples, self.iwae_chunk)
        return {"nll_iwae": -bounds.log_px, "elbo": bounds.elbo, "recon_nll": -bounds.log_px_given_z,
                "kl": bounds.kl}

    def extra_repr(self) -> str:
        return (f"samples={self.samples}, kl_warmup_steps={self.kl_warmup_steps}, iwae_samples={self.iwae_samples}, "
                f"iwae_chunk={self.iwae_chunk}")
