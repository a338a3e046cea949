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

**Semi-supervised batches** (``data.labels_per_class``): an image whose label was withheld has
:math:`y_i =` :data:`~revkit.data.base.UNLABELLED` (−1). With :math:`\mathcal L ⊆ \{1, …, B\}` the
labelled images of the batch,

.. math:: L = \frac{1}{|\mathcal L|} \sum_{i ∈ \mathcal L} \mathrm{CE}_i
          \;+\; λ\,\frac1B \sum_{i=1}^{B} \mathrm{bpd}(x_i),

the cross-entropy term being 0 when :math:`\mathcal L = ∅` (the loss stays finite). So the
likelihood uses every image and the cross-entropy the labelled ones only: an unlabelled image
sends no gradient into the head, and into the flow only through its bits/dim. With :math:`λ = 0`
only the labelled images are encoded. The logged ``cross_entropy`` and ``accuracy`` are over the
labelled images of the batch (NaN, left out of the logged means, when there are none). Evaluation
needs every label (the test split keeps them).

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

from revkit.data.base import UNLABELLED
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
    #: labels −1 (withheld) get no cross-entropy (see the module)
    accepts_unlabelled = True

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

    def _terms(self, model: Flow, x: Tensor, labelled: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Logits ``[|L|, K]`` of the labelled images ``x[labelled]`` (None when there are none) and, in
        the hybrid, bits/dim ``[B]`` of every image (else None)."""
        if self.likelihood is None:
            if bool(labelled.all()):
                return self.logits(model, x), None
            return (self.logits(model, x[labelled]) if bool(labelled.any()) else None), None
        x_in = self.likelihood.dequantize(x)
        z, logdet = model(x_in)
        prior = model.prior
        assert prior is not None
        bpd = self.likelihood.per_dim(prior.log_prob(z) + logdet)
        z_labelled = z[labelled] if not bool(labelled.all()) else z
        logits = self._need_head()(z_labelled.reshape(z_labelled.shape[0], -1)) if z_labelled.shape[0] else None
        return logits, bpd

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        if update != "model":
            raise RevkitError(f"classifier updates only the group 'model', got {update!r}")
        x, y = batch[0], batch[1].long()
        labelled = y != UNLABELLED
        logits, bpd = self._terms(model, x, labelled)
        nan = float("nan")
        if logits is not None:
            targets = y[labelled]
            ce = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
            metrics = {"cross_entropy": float(ce.detach()),
                       "accuracy": float((logits.argmax(1) == targets).float().mean())}
        else:  # no labelled image: no cross-entropy term (a zero whose graph reaches every trained parameter,
            # so each gets a zero gradient, as data-parallel training expects)
            params = self.parameter_groups(model)["model"]
            ce = sum((p.sum() for p in params), torch.zeros((), device=x.device)) * 0.0
            metrics = {"cross_entropy": nan, "accuracy": nan}
        loss = ce
        if bpd is not None:
            loss = loss + self.nll_weight * bpd.mean()
            metrics["bits_per_dim"] = float(bpd.mean().detach())
        return Losses(loss=loss, metrics=metrics)

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Per image: ``cross_entropy``, ``accuracy`` (0/1), ``error_rate`` and, in the hybrid,
        ``bits_per_dim``.

        Raises:
            RevkitError: some labels are withheld (−1): evaluation needs every label.
        """
        x, y = batch[0], batch[1].long()
        labelled = y != UNLABELLED
        if not bool(labelled.all()):
            raise RevkitError(f"classifier: {int((~labelled).sum())} of {y.shape[0]} evaluated images have no "
                              "label (-1); evaluation needs every label (the test split keeps them all)")
        logits, bpd = self._terms(model, x, labelled)
        assert logits is not None
        ce = F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)
        correct = (logits.argmax(1) == y).double()
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
