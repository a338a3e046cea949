r"""Classification with an invertible network: cross-entropy on a small head over the flow's output.

The i-ResNet paper's point that one architecture serves discrimination and generation: the flow
:math:`f` (data → latent, invertible, so it discards nothing) is followed by a head :math:`h`
(linear, or one hidden ReLU layer) on the flattened latent :math:`z = f(x) ∈ ℝ^D`:

.. math:: \text{logits} = h(\operatorname{vec} f(x)) ∈ ℝ^K, \qquad
          L_{\text{CE}} = -\frac1B \sum_i \log \operatorname{softmax}(\text{logits}_i)_{y_i}.

With ``nll_weight = λ > 0`` the loss is the hybrid :math:`L_{\text{CE}} + λ\,\mathrm{bpd}(x)`, the
bits per dimension of maximum likelihood (:class:`~revkit.objectives.max_likelihood.MaxLikelihood`,
uniform dequantization) on the same batch; then the flow needs a prior and a log-det. With
:math:`λ = 0` the log-det is not used, and it is not computed by blocks that can skip an estimate
(see :func:`skipping_logdet_estimates`), which makes i-ResNet classifiers several times cheaper.

Metrics: ``cross_entropy``, ``accuracy`` and ``error_rate`` (the main metric, lower is better), and
``bits_per_dim`` in the hybrid. The head is the objective's module, trained with the flow in the
update group ``"model"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import numel
from revkit.objectives.base import Losses, Objective, ObjectiveParams
from revkit.objectives.max_likelihood import MaxLikelihood

if TYPE_CHECKING:
    from revkit.data.base import DataInfo
    from revkit.flow import Flow


class ClassifierParams(ObjectiveParams):
    head_hidden: int = Field(0, ge=0, le=65_536, description="hidden units of the head (0: a linear head)")
    nll_weight: float = Field(0.0, ge=0.0, description="weight λ of bits/dim in a hybrid loss (0: none)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="cross-entropy label smoothing")


@contextlib.contextmanager
def skipping_logdet_estimates(model: nn.Module) -> Iterator[None]:
    """Within it, blocks that declare ``skip_logdet`` (a stochastic estimator such as ``iresnet``'s)
    return NaN log-dets instead of estimating them, for callers that use only the outputs."""
    blocks = [m for m in model.modules() if hasattr(m, "skip_logdet")]
    previous = [m.skip_logdet for m in blocks]
    for m in blocks:
        m.skip_logdet = True
    try:
        yield
    finally:
        for m, p in zip(blocks, previous):
            m.skip_logdet = p


class Classifier(Objective):
    """Cross-entropy of a head over the flow's latent (see the module docstring).

    Args:
        head_hidden: 0 for a linear head ``D → K``; else ``D → head_hidden → ReLU → K``.
        nll_weight: :math:`λ` of the hybrid loss.
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.
    """

    Params = ClassifierParams
    main_metric = "error_rate"

    def __init__(self, head_hidden: int = 0, nll_weight: float = 0.0, label_smoothing: float = 0.0):
        super().__init__()
        self.head_hidden, self.nll_weight, self.label_smoothing = int(head_hidden), float(nll_weight), float(label_smoothing)
        self.head: nn.Module | None = None
        self.likelihood = MaxLikelihood() if self.nll_weight > 0 else None

    def setup(self, model: Flow, data: DataInfo) -> None:
        """Build the head on the flow's flattened latent for ``data.classes`` classes.

        Raises:
            RevkitError: the data have fewer than 2 classes, or a hybrid loss without a prior.
        """
        if data.classes < 2:
            raise RevkitError(f"classifier: the data '{data.name}' have {data.classes} classes; "
                              "classification needs labelled data with at least 2 classes")
        d = numel(tuple(model.latent_shape))
        if self.head_hidden:
            self.head = nn.Sequential(nn.Linear(d, self.head_hidden), nn.ReLU(), nn.Linear(self.head_hidden, data.classes))
        else:
            self.head = nn.Linear(d, data.classes)
        if self.likelihood is not None:
            if model.prior is None:
                raise RevkitError("classifier: nll_weight > 0 needs a prior on the latent ([prior])")
            self.likelihood.setup(model, data)

    def parameter_groups(self, model: Flow) -> dict[str, list[nn.Parameter]]:
        return {"model": [p for p in model.parameters() if p.requires_grad] + list(self._need_head().parameters())}

    def logits(self, model: Flow, x: Tensor) -> Tensor:
        """``[B, K]`` class logits of images ``x`` (log-dets skipped)."""
        with skipping_logdet_estimates(model):
            z = model.encode(x)
        return self._need_head()(z.reshape(x.shape[0], -1))

    def _terms(self, model: Flow, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-sample cross-entropy ``[B]``, logits ``[B, K]`` and (hybrid) bits/dim ``[B]``."""
        x, y = batch[0], batch[1].long()
        if self.likelihood is None:
            logits = self.logits(model, x)
            bpd = None
        else:
            x_in = self.likelihood.dequantize(x)
            z, logdet = model(x_in)
            prior = model.prior
            assert prior is not None
            bpd = self.likelihood.per_dim(prior.log_prob(z) + logdet)
            logits = self._need_head()(z.reshape(x.shape[0], -1))
        ce = F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)
        return ce, logits, bpd

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        if update != "model":
            raise RevkitError(f"classifier updates only the group 'model', got {update!r}")
        ce, logits, bpd = self._terms(model, batch)
        loss = ce.mean()
        metrics = {"cross_entropy": float(loss.detach()),
                   "accuracy": float((logits.argmax(1) == batch[1]).float().mean())}
        if bpd is not None:
            loss = loss + self.nll_weight * bpd.mean()
            metrics["bits_per_dim"] = float(bpd.mean().detach())
        return Losses(loss=loss, metrics=metrics)

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        ce, logits, bpd = self._terms(model, batch)
        correct = (logits.argmax(1) == batch[1].long()).double()
        out = {"cross_entropy": ce, "accuracy": correct, "error_rate": 1.0 - correct}
        if bpd is not None:
            out["bits_per_dim"] = bpd
        return out

    def extra_repr(self) -> str:
        return f"head_hidden={self.head_hidden}, nll_weight={self.nll_weight:g}"

    def _need_head(self) -> nn.Module:
        if self.head is None:
            raise RevkitError("classifier: call setup(flow, data_info) before computing losses")
        return self.head


__all__ = ["Classifier", "ClassifierParams", "skipping_logdet_estimates"]
