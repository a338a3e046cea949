r"""Minibatch optimal transport to a class-conditional prior, with a decoder-smoothness term.

The seed paper's MNIST objective. For each class :math:`c` in a batch, with the :math:`n_c`
encodings :math:`z_i = f(x_i)` of that class and :math:`n_c` reparameterized prior samples
:math:`s_j = \mu_c + \sigma_c \odot ε_j`, the cost matrix is

.. math:: C_{ij} = \lVert z_i - s_j \rVert_2 \quad(\text{``euclidean''}) \quad\text{or}\quad
          \lVert z_i - s_j \rVert_2^2 \quad(\text{``sqeuclidean''}),

the transport plan :math:`T` (uniform marginals :math:`1/n_c`, so :math:`\sum_{ij} T_{ij} = 1`) is
solved by POT on the detached costs — ``ot.emd`` (exact, a permutation scaled by :math:`1/n_c`) or
``ot.sinkhorn`` (entropic) — and held constant, and the class's loss is

.. math:: L_c = \sum_{ij} T_{ij} C_{ij},

the mean cost of a matched pair. :math:`L_{\text{OT}}` is the mean of :math:`L_c` over the classes
present in the batch; its gradient reaches the network (through :math:`z`) and the prior's means
and stds (through :math:`s`).

Decoder smoothness: with latent noise :math:`η \sim \mathcal N(0, \text{noise}^2 I)`,

.. math:: L_{\text{smooth}} = \operatorname{mean}\big(f^{-1}(z+η) - f^{-1}(z)\big)^2
          + \operatorname{mean}\big|f^{-1}(z+η) - f^{-1}(z)\big|,

with means over every element. :math:`f^{-1}(z) = x` exactly for an invertible network, and
:math:`f^{-1}(f(x; θ); θ) = x` for every :math:`θ` has zero gradient, so ``x`` stands in for the
unperturbed inversion: same value and same gradients as inverting twice, one inverse pass fewer.
The training loss is :math:`L_{\text{OT}} + w \, L_{\text{smooth}}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from revkit.errors import RevkitError
from revkit.objectives.base import Losses, Objective, ObjectiveParams

if TYPE_CHECKING:
    from revkit.data.base import DataInfo
    from revkit.flow import Flow

Cost = Literal["euclidean", "sqeuclidean"]
Solver = Literal["emd", "sinkhorn"]


class OptimalTransportParams(ObjectiveParams):
    cost: Cost = Field("euclidean", description="latent-space cost: Euclidean distance or its square")
    solver: Solver = Field("emd", description="'emd': exact (ot.emd); 'sinkhorn': entropic (ot.sinkhorn)")
    reg: float = Field(0.05, gt=0.0, description="sinkhorn's entropic regularisation, relative to the "
                       "largest cost of each class's matrix")
    smoothness_weight: float = Field(15.0, ge=0.0, description="weight of the decoder-smoothness term")
    smoothness_noise: float = Field(0.01, ge=0.0, description="std of the latent noise of that term")


def cost_matrix(a: Tensor, b: Tensor, cost: Cost = "euclidean") -> Tensor:
    r"""Pairwise costs ``[n, m]`` between the rows of ``a`` ``[n, D]`` and ``b`` ``[m, D]``:
    :math:`\lVert a_i - b_j\rVert_2` or its square. Differentiable, with a zero (not NaN) gradient
    where two points coincide."""
    squared = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(dim=-1)
    if cost == "sqeuclidean":
        return squared
    positive = squared > 0
    return torch.where(positive, squared.where(positive, torch.ones_like(squared)).sqrt(), torch.zeros_like(squared))


def transport_plan(costs: Tensor, solver: Solver = "emd", reg: float = 0.05) -> Tensor:
    r"""The optimal plan ``[n, m]`` for uniform marginals (:math:`1/n`, :math:`1/m`) on ``costs``,
    computed without gradient (a constant in ``costs``'s dtype and device).

    ``"emd"`` solves the linear program exactly; ``"sinkhorn"`` solves the entropic problem in the
    log domain with regularisation ``reg · max C``."""
    import ot  # POT pulls in scipy.stats (over a second): import it only when a plan is needed

    m = costs.detach().double().cpu().numpy()
    n_rows, n_cols = m.shape
    a, b = np.full(n_rows, 1.0 / n_rows), np.full(n_cols, 1.0 / n_cols)
    if solver == "emd":
        plan = ot.emd(a, b, m)
    else:
        scale = float(m.max()) if m.size and m.max() > 0 else 1.0
        plan = ot.sinkhorn(a, b, m / scale, reg, method="sinkhorn_log", numItermax=10000)
    return torch.as_tensor(np.asarray(plan), dtype=costs.dtype, device=costs.device)


class OptimalTransport(Objective):
    r"""Per-class minibatch optimal transport between encodings and prior samples (see the module).

    Needs a class-conditional prior (``class_gaussian``) and labelled data.

    Logged metrics: ``ot_cost`` (:math:`L_{\text{OT}}`), ``smoothness`` (:math:`L_{\text{smooth}}`,
    unweighted) and ``active_dims`` (mean number of active prior dimensions per class, when the
    prior reports them). :meth:`evaluate` gives per sample ``ot_cost`` — the cost from the sample's
    encoding to the prior samples it is matched with, :math:`n_c \sum_j T_{ij} C_{ij}`, whose batch
    mean is the class-size-weighted :math:`L_c` — and ``restricted_l1``, the mean absolute error of
    :math:`f^{-1}(\text{restrict}(f(x)))` (inactive dimensions set to the class mean) against
    :math:`x`. The main metric is ``ot_cost``.

    Args:
        cost: ``"euclidean"`` (the paper's) or ``"sqeuclidean"``.
        solver: ``"emd"`` (exact) or ``"sinkhorn"`` (with ``reg``).
        reg: sinkhorn's regularisation, relative to each cost matrix's largest entry.
        smoothness_weight: :math:`w`.
        smoothness_noise: std of :math:`η`.
    """

    Params = OptimalTransportParams
    main_metric = "ot_cost"

    def __init__(
        self,
        cost: Cost = "euclidean",
        solver: Solver = "emd",
        reg: float = 0.05,
        smoothness_weight: float = 15.0,
        smoothness_noise: float = 0.01,
    ):
        super().__init__()
        if cost not in ("euclidean", "sqeuclidean"):
            raise RevkitError(f"optimal_transport: cost must be 'euclidean' or 'sqeuclidean', got {cost!r}")
        if solver not in ("emd", "sinkhorn"):
            raise RevkitError(f"optimal_transport: solver must be 'emd' or 'sinkhorn', got {solver!r}")
        if reg <= 0 or smoothness_weight < 0 or smoothness_noise < 0:
            raise RevkitError("optimal_transport: reg must be > 0 and smoothness_weight, smoothness_noise ≥ 0; "
                              f"got {reg}, {smoothness_weight}, {smoothness_noise}")
        self.cost, self.solver, self.reg = cost, solver, float(reg)
        self.smoothness_weight, self.smoothness_noise = float(smoothness_weight), float(smoothness_noise)

    def setup(self, model: Flow, data: DataInfo) -> None:
        """Check that the flow has a class-conditional prior and the data carry labels."""
        prior = model.prior
        if prior is None or not prior.conditional:
            kind = "no prior" if prior is None else f"the unconditional prior {type(prior).__name__}"
            raise RevkitError(
                f"optimal_transport matches each class's encodings to that class's prior, so it needs a "
                f"class-conditional prior (prior.kind = 'class_gaussian'); this model has {kind}"
            )
        if data.classes < 1:
            raise RevkitError(f"optimal_transport needs labelled data, but '{data.name}' has no classes")

    # -- the two terms ----------------------------------------------------------------------
    def class_plans(self, model: Flow, z: Tensor, y: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """For each class in ``y``: ``(indices [n_c], costs [n_c, n_c], plan [n_c, n_c])`` between the
        class's flattened encodings and as many fresh prior samples of that class."""
        prior = model.prior
        assert prior is not None
        flat = z.reshape(z.shape[0], -1)
        out = []
        for c in torch.unique(y).tolist():
            index = (y == c).nonzero(as_tuple=True)[0]
            samples = prior.rsample(index.numel(), torch.full_like(index, c)).reshape(index.numel(), -1)
            costs = cost_matrix(flat[index], samples, self.cost)
            out.append((index, costs, transport_plan(costs, self.solver, self.reg)))
        return out

    def transport_loss(self, model: Flow, z: Tensor, y: Tensor) -> Tensor:
        """:math:`L_{\\text{OT}}`: the mean over classes of :math:`\\sum_{ij} T_{ij} C_{ij}`."""
        return torch.stack([(plan * costs).sum() for _, costs, plan in self.class_plans(model, z, y)]).mean()

    def smoothness(self, model: Flow, x: Tensor, z: Tensor, y: Tensor) -> Tensor:
        """:math:`L_{\\text{smooth}}`: MSE + L1 between :math:`f^{-1}(z+η)` and :math:`x = f^{-1}(z)`."""
        noisy = model.decode(z + self.smoothness_noise * torch.randn_like(z), y)
        diff = noisy - x
        return diff.pow(2).mean() + diff.abs().mean()

    # -- the objective contract -------------------------------------------------------------
    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        if update != "model":
            raise RevkitError(f"optimal_transport updates only the group 'model', got {update!r}")
        x, y = batch[0], batch[1]
        z = model.encode(x, y)
        transport = self.transport_loss(model, z, y)
        metrics = {"ot_cost": float(transport.detach())}
        loss = transport
        if self.smoothness_weight > 0:
            smooth = self.smoothness(model, x, z, y)
            loss = loss + self.smoothness_weight * smooth
            metrics["smoothness"] = float(smooth.detach())
        counts = getattr(model.prior, "active_counts", None)
        if callable(counts):
            active = counts()
            metrics["active_dims"] = float(sum(active)) / max(len(active), 1)
        return Losses(loss=loss, metrics=metrics)

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        z = model.encode(x, y)
        per_sample = torch.zeros(x.shape[0], dtype=z.dtype, device=z.device)
        for index, costs, plan in self.class_plans(model, z, y):
            per_sample[index] = index.numel() * (plan * costs).sum(dim=1)
        prior = model.prior
        assert prior is not None
        restored = model.decode(prior.restrict(z, y), y)
        l1 = (restored - x).abs().reshape(x.shape[0], -1).mean(dim=1)
        return {"ot_cost": per_sample, "restricted_l1": l1}

    def extra_repr(self) -> str:
        return (f"cost={self.cost!r}, solver={self.solver!r}, smoothness_weight={self.smoothness_weight:g}, "
                f"smoothness_noise={self.smoothness_noise:g}")
