r"""The objective contract: named losses and metrics from a batch, and the updates that use them.

An objective declares its parameter groups (``"model"`` — the flow and the prior — and any of its
own, such as a latent critic) and the order in which the trainer updates them each step. The
trainer runs, for each name in :meth:`Objective.update_order`: zero that group's gradients,
``out = objective.losses(model, batch, update=name)``, ``out.loss.backward()``, step that group's
optimizer. So two-player training needs no special case in the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

if TYPE_CHECKING:
    from revkit.data.base import DataInfo
    from revkit.flow import Flow


class ObjectiveParams(BaseModel):
    """Base of every objective's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Losses:
    """What one update computes: the scalar to minimise and metrics to log (plain floats)."""

    loss: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class of objectives; subclasses take their parameters as keywords (``Params``)."""

    Params: ClassVar[type[ObjectiveParams]] = ObjectiveParams
    #: name of the metric that summarises evaluation (lower is better), e.g. ``"bits_per_dim"``.
    main_metric: str = "loss"
    #: the losses take training batches in which some labels are withheld
    #: (:data:`revkit.data.base.UNLABELLED`, −1; ``data.labels_per_class``): they ignore the labels or
    #: handle the mark. The builder refuses semi-supervised data for an objective that does not
    #: declare it (the default, so that no objective meets a label −1 it would read as a class);
    #: an instance may set it from its parameters.
    accepts_unlabelled: bool = False

    def setup(self, model: Flow, data: DataInfo) -> None:
        """Called once after the model is built, before training (shapes, data kind, …)."""

    def update_order(self) -> list[str]:
        """Every parameter group this objective updates, each once, in their order within a step.
        The trainer makes one optimizer per name."""
        return ["model"]

    def updates_at(self, step: int) -> list[str]:
        """The updates of step ``step`` (0-based), in order; names may repeat (several critic
        updates per step). Called once per step before its updates, so an objective with phases
        can switch on ``step`` here. The default is :meth:`update_order`."""
        return self.update_order()

    def parameter_groups(self, model: Flow) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per update name; ``"model"`` covers the flow and its prior."""
        return {"model": [p for p in model.parameters() if p.requires_grad]}

    def optimizer_overrides(self, group: str) -> dict[str, float]:
        """Optimizer settings this objective fixes for one of its own groups (e.g. a critic's lr).

        Allowed keys: ``lr``, ``weight_decay``, ``beta1``, ``beta2``, ``grad_clip``; the trainer
        rejects any other key with a :class:`~revkit.errors.RevkitError`."""
        return {}

    def begin_step(self, seed: int, step: int, first_index: int) -> None:
        """Called by the trainer before each training step: ``train.seed``, the steps taken so far,
        and the index within the global batch of this process's first sample (its share is
        contiguous). An objective that draws noise per sample in its losses (dequantization) keys
        that noise on ``(seed, step, first_index + i)``, so N processes draw exactly what one
        process draws on the global batch. The default passes the call on to child objectives."""
        for child in self.children():
            if isinstance(child, Objective):
                child.begin_step(seed, step, first_index)

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        """The loss for the update named ``update`` on one training batch."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Per-sample evaluation metrics on one batch: name → ``[batch]`` tensor (averaged by the
        caller over the whole evaluation set)."""
        out = self.losses(model, batch, update=self.update_order()[0])
        n = batch[0].shape[0]
        return {"loss": out.loss.detach().expand(n)}
