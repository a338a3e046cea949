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

Two options answer the within-class collapse of the paper's setting (``docs/mnist_ot_diversity.md`` has
the diagnosis). Minibatch OT between two samples of *one* distribution is not zero, and in many
dimensions it grows with their spread (pairwise distances concentrate near
:math:`\sqrt{D(σ_z^2 + σ_s^2)}`), so its gradient shrinks the encodings and the prior together.

* ``divergence = "energy"`` replaces it by the energy distance (Székely & Rizzo, 2013), with the
  unbiased (U-statistic) estimate per class,

  .. math:: E_c = \frac{1}{n_c^2}\sum_{i,j} \lVert z_i - s_j\rVert
            - \frac{1}{2 n_c(n_c-1)}\sum_{i\ne j} \lVert z_i - z_j\rVert
            - \frac{1}{2 n_c(n_c-1)}\sum_{i\ne j} \lVert s_i - s_j\rVert ,

  whose expectation is zero when encodings and prior samples are drawn alike, at any scale, so it no
  longer rewards shrinking both. (It is the large-ε limit of the Sinkhorn divergence; at the small ε
  of the entropic solver here the Sinkhorn divergence keeps the bias, which
  ``tests/test_optimal_transport.py`` shows.) ``cost`` must be ``"euclidean"``;
* ``prior_fit = "moments"`` takes the prior out of the transport loss: its samples are drawn with the
  means and stds detached, and after every step the class's mean and std move towards the batch's
  encodings of that class (exponential moving average with rate ``prior_momentum``), so the prior
  follows the encodings' spread instead of racing them to zero. (Each process updates its prior from its
  own share of the batch, so under data parallelism the processes' priors drift apart: use it with one
  process.)

Logged in every case: ``std_ratio``, the mean over the batch's classes of the prior's mean std over the
encodings' mean per-dimension std in the batch (1 when the prior's spread matches the encodings').
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
Divergence = Literal["ot", "energy"]
PriorFit = Literal["learned", "moments"]


class OptimalTransportParams(ObjectiveParams):
    cost: Cost = Field("euclidean", description="latent-space cost: Euclidean distance or its square")
    solver: Solver = Field("emd", description="'emd': exact (ot.emd); 'sinkhorn': entropic (ot.sinkhorn)")
    reg: float = Field(0.05, gt=0.0, description="sinkhorn's entropic regularisation, relative to the "
                       "largest cost of each class's matrix")
    smoothness_weight: float = Field(15.0, ge=0.0, description="weight of the decoder-smoothness term")
    smoothness_noise: float = Field(0.01, ge=0.0, description="std of the latent noise of that term")
    divergence: Divergence = Field(
        "ot", description="'ot': the minibatch transport cost (the paper's); 'energy': the energy distance "
                          "E‖z−s‖ − ½E‖z−z′‖ − ½E‖s−s′‖ per class, unbiased, zero when encodings and prior samples "
                          "are drawn alike (needs cost = 'euclidean')")
    prior_fit: PriorFit = Field(
        "learned", description="'learned': the prior's means and stds are trained by the transport loss (the "
                               "paper's); 'moments': they follow the encodings' per-class mean and std")
    prior_momentum: float = Field(0.99, ge=0.0, lt=1.0, description="for prior_fit = 'moments': the moving "
                                                                    "average's weight on the old value per step")


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
        divergence: ``"ot"`` or ``"energy"`` (see the module).
        prior_fit: ``"learned"`` or ``"moments"`` (see the module).
        prior_momentum: the moving average's weight on the old moments.
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
        divergence: Divergence = "ot",
        prior_fit: PriorFit = "learned",
        prior_momentum: float = 0.99,
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
        if divergence not in ("ot", "energy") or prior_fit not in ("learned", "moments"):
            raise RevkitError(f"optimal_transport: divergence must be 'ot' or 'energy' and prior_fit "
                              f"'learned' or 'moments'; got {divergence!r}, {prior_fit!r}")
        if divergence == "energy" and cost != "euclidean":
            raise RevkitError("optimal_transport: divergence = 'energy' is defined with cost = 'euclidean'")
        if not 0.0 <= prior_momentum < 1.0:
            raise RevkitError(f"optimal_transport: prior_momentum must lie in [0, 1), got {prior_momentum}")
        self.divergence, self.prior_fit, self.prior_momentum = divergence, prior_fit, float(prior_momentum)

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
        if self.prior_fit == "moments" and not (hasattr(prior, "means") and hasattr(prior, "component_stds")):
            raise RevkitError(f"optimal_transport: prior_fit = 'moments' sets a class prior's means and stds, but "
                              f"{type(prior).__name__} has none (use prior.kind = 'class_gaussian')")

    # -- the two terms ----------------------------------------------------------------------
    def _prior_samples(self, model: Flow, n: int, c: int, like: Tensor) -> Tensor:
        """``n`` reparameterized samples of class ``c``'s prior, flattened; with ``prior_fit = "moments"``
        drawn from the detached moments (no gradient reaches the prior)."""
        prior = model.prior
        assert prior is not None
        labels = torch.full((n,), c, dtype=torch.long, device=like.device)
        if self.prior_fit == "moments":
            return prior.sample(n, labels).reshape(n, -1)
        return prior.rsample(n, labels).reshape(n, -1)

    def class_plans(self, model: Flow, z: Tensor, y: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """For each class in ``y``: ``(indices [n_c], costs [n_c, n_c], plan [n_c, n_c])`` between the
        class's flattened encodings and as many fresh prior samples of that class."""
        return [(index, costs, plan) for index, _, costs, plan in self._class_terms(model, z, y)]

    def _class_terms(self, model: Flow, z: Tensor, y: Tensor) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per class: indices, prior samples, costs and the transport plan."""
        flat = z.reshape(z.shape[0], -1)
        out = []
        for c in torch.unique(y).tolist():
            index = (y == c).nonzero(as_tuple=True)[0]
            samples = self._prior_samples(model, index.numel(), int(c), flat)
            costs = cost_matrix(flat[index], samples, self.cost)
            out.append((index, samples, costs, transport_plan(costs, self.solver, self.reg)))
        return out

    @staticmethod
    def energy_distance(a: Tensor, b: Tensor) -> Tensor:
        r"""The unbiased energy distance between the rows of ``a`` and ``b`` (see the module); the
        within-set terms need two rows, and a set with one row contributes none."""
        cross = cost_matrix(a, b, "euclidean").mean()

        def within(points: Tensor) -> Tensor:
            n = points.shape[0]
            return cost_matrix(points, points, "euclidean").sum() / (n * (n - 1)) if n > 1 else points.new_zeros(())

        return cross - 0.5 * within(a) - 0.5 * within(b)

    def transport_loss(self, model: Flow, z: Tensor, y: Tensor) -> Tensor:
        """:math:`L_{\\text{OT}}`: the mean over classes of :math:`\\sum_{ij} T_{ij} C_{ij}` (of the energy
        distance :math:`E_c` with ``divergence = "energy"``)."""
        flat = z.reshape(z.shape[0], -1)
        if self.divergence == "energy":
            per_class = []
            for c in torch.unique(y).tolist():
                index = (y == c).nonzero(as_tuple=True)[0]
                samples = self._prior_samples(model, index.numel(), int(c), flat)
                per_class.append(self.energy_distance(flat[index], samples))
            return torch.stack(per_class).mean()
        return torch.stack([(plan * costs).sum() for _, _, costs, plan in self._class_terms(model, z, y)]).mean()

    @torch.no_grad()
    def std_ratio(self, model: Flow, z: Tensor, y: Tensor) -> float:
        """Mean over the batch's classes (with ≥ 2 members) of the prior's mean std over the encodings'
        mean per-dimension std."""
        prior = model.prior
        stds = getattr(prior, "component_stds", None)
        if not callable(stds):
            return float("nan")
        flat = z.reshape(z.shape[0], -1)
        all_stds = stds().reshape(-1, flat.shape[1])
        ratios = [float(all_stds[c].mean() / flat[y == c].std(dim=0).mean().clamp_min(1e-12))
                  for c in torch.unique(y).tolist() if int((y == c).sum()) >= 2]
        return sum(ratios) / len(ratios) if ratios else float("nan")

    @torch.no_grad()
    def fit_prior_moments(self, model: Flow, z: Tensor, y: Tensor) -> None:
        """``prior_fit = "moments"``: move each batch class's prior mean and std towards its encodings'."""
        prior = model.prior
        assert prior is not None
        flat = z.detach().reshape(z.shape[0], -1)
        keep = self.prior_momentum
        for c in torch.unique(y).tolist():
            members = flat[y == c]
            if members.shape[0] < 2:
                continue
            mean = prior.means[c]
            mean.mul_(keep).add_((1 - keep) * members.mean(dim=0).reshape(mean.shape))
            std = members.std(dim=0).reshape(mean.shape)
            if prior.param == "std":
                prior.stds[c].mul_(keep).add_((1 - keep) * std)
            else:
                current = prior.log_stds[c].exp()
                prior.log_stds[c].copy_((keep * current + (1 - keep) * std).clamp_min(1e-12).log())

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
        metrics["std_ratio"] = self.std_ratio(model, z, y)
        if self.prior_fit == "moments" and model.training:
            self.fit_prior_moments(model, z, y)
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
                f"smoothness_noise={self.smoothness_noise:g}, divergence={self.divergence!r}, "
                f"prior_fit={self.prior_fit!r}")
