r"""Maximum likelihood: minimise the negative log-likelihood, reported in bits per dimension.

**Discrete data** (``DataInfo.levels = L``, e.g. 256 for 8-bit images; the data arrive as
:math:`x = k/(L-1)`, :math:`k \in \{0, …, L-1\}`). Uniform dequantization maps each element to

.. math:: u = \frac{k + U}{L}, \qquad U \sim \mathcal U[0, 1) \text{ per element},

so :math:`u \in [0, 1)^D` and the flow is a density on the unit cube. Because the bin of
:math:`k` has width :math:`1/L` in :math:`u`, the model's probability of :math:`k` is bounded below
(Jensen) by the density :math:`p(u)` times the bin volume :math:`L^{-D}`, i.e. in bits per dimension

.. math:: \text{bits/dim} = \frac{1}{\ln 2}\Big(\frac{-\log p(u)}{D} + \log L\Big),

where :math:`D` is the number of data dimensions (``prod(DataInfo.shape)``). The :math:`\log L` term
is the log-Jacobian of the scaling from :math:`u` to the integer grid :math:`k + U`. Any further
pre-transform (the ``logit`` block, :math:`u \mapsto \operatorname{logit}(\alpha + (1-2\alpha)u)`)
is a block of the flow, so its Jacobian is already inside ``flow.log_prob``.

With ``dequantize = "none"`` the data :math:`x = k/(L-1)` are fed unchanged and bits/dim is
:math:`-\log p(x) / (D \ln 2)`: the model's density at the data, not a code length.

**Continuous data** (``levels = None``): no dequantization; the metric is ``nll_per_dim``
:math:`= -\log p(x)/D` in nats.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from revkit.errors import RevkitError
from revkit.invertible import numel
from revkit.objectives.base import Losses, Objective, ObjectiveParams

if TYPE_CHECKING:
    from revkit.data.base import DataInfo
    from revkit.flow import Flow


def sample_seed(seed: int, step: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` of the global batch at step ``step`` of a run seeded ``seed``
    (BLAKE2b of the three numbers: distinct keys give unrelated streams)."""
    digest = hashlib.blake2b(f"{seed}:{step}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def keyed_uniform(x: Tensor, seed: int, step: int, first_index: int) -> Tensor:
    r""":math:`U[0, 1)` noise shaped like ``x`` ``[B, …]`` whose row ``i`` depends only on
    ``(seed, step, first_index + i)``: one :class:`torch.Generator` per sample, seeded by
    :func:`sample_seed`, draws that sample's ``x[i].numel()`` values in one call (B small calls, no
    per-element loop). Drawn on the CPU in float32 (the same values on every device), then moved
    to ``x``'s device and dtype."""
    rows = [torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(sample_seed(seed, step, first_index + i)))
            for i in range(x.shape[0])]
    noise = torch.stack(rows) if rows else torch.empty(x.shape)
    return noise.to(device=x.device, dtype=x.dtype)


class MaxLikelihoodParams(ObjectiveParams):
    dequantize: Literal["uniform", "none"] = "uniform"


class MaxLikelihood(Objective):
    """Minimise the mean negative log-likelihood per dimension (bits/dim for discrete data).

    Call :meth:`setup` with the flow and the :class:`~revkit.data.base.DataInfo` before use.
    ``losses`` returns the batch mean as ``loss`` and as the metric ``bits_per_dim`` (or
    ``nll_per_dim`` for continuous data); ``evaluate`` returns the per-sample values ``[B]``.

    Args:
        dequantize: ``"uniform"`` adds uniform noise within each intensity bin (discrete data);
            ``"none"`` uses the data as given.
    """

    Params = MaxLikelihoodParams
    main_metric = "bits_per_dim"
    #: labels reach only a class-conditional model or prior, which semi-supervised data may not use
    accepts_unlabelled = True

    def __init__(self, dequantize: Literal["uniform", "none"] = "uniform"):
        super().__init__()
        if dequantize not in ("uniform", "none"):
            raise RevkitError(f"max_likelihood: dequantize must be 'uniform' or 'none', got {dequantize!r}")
        self.dequantize_mode = dequantize
        self.dims: int | None = None
        self.levels: int | None = None
        self._noise_key: tuple[int, int, int] | None = None

    def begin_step(self, seed: int, step: int, first_index: int) -> None:
        """Key the next training batch's dequantization noise (see :meth:`dequantize`)."""
        self._noise_key = (int(seed), int(step), int(first_index))

    def setup(self, model: Flow, data: DataInfo) -> None:
        """Store ``D = prod(data.shape)`` and ``L = data.levels``; check the flow takes ``data.shape``."""
        if tuple(model.input_shape) != tuple(data.shape):
            raise RevkitError(f"max_likelihood: the flow takes per-sample shape {tuple(model.input_shape)} "
                              f"but the data '{data.name}' have shape {tuple(data.shape)}")
        if data.levels is not None and data.levels < 2:
            raise RevkitError(f"max_likelihood: data '{data.name}' declare {data.levels} intensity levels; "
                              "discrete data need levels ≥ 2 (or None for continuous data)")
        self.dims = numel(data.shape)
        self.levels = data.levels
        # continuous data report nats per dimension; the instance attribute overrides the class default
        self.main_metric = self.metric_name

    @property
    def metric_name(self) -> str:
        """``"bits_per_dim"`` for discrete data, ``"nll_per_dim"`` (nats) for continuous data."""
        return "nll_per_dim" if self.levels is None and self.dims is not None else "bits_per_dim"

    def dequantize(self, x: Tensor) -> Tensor:
        r"""Discrete data :math:`x = k/(L-1)` → :math:`u = (k + U)/L` with :math:`U \sim \mathcal U[0,1)`.

        ``u`` lies in ``[k/L, (k+1)/L)`` exactly, in ``x``'s dtype (a value that rounds up to the
        next bin edge is moved to the largest float below it). Continuous data, or
        ``dequantize="none"``, are returned unchanged.

        In training (after :meth:`begin_step`, in train mode) the noise of sample ``i`` is drawn by
        :func:`keyed_uniform` from ``(seed, step, first_index + i)``, its index in the global batch:
        data-parallel processes draw, sample for sample, the noise one process draws on the global
        batch (``tests/test_distributed.py``, MNIST-shaped discrete data). Elsewhere (evaluation)
        it comes from torch's generator.
        """
        levels = self._need_setup()[1]
        if levels is None or self.dequantize_mode == "none":
            return x
        k = torch.round(x * (levels - 1)).clamp_(0, levels - 1)
        noise = torch.rand_like(x) if self._noise_key is None or not self.training else keyed_uniform(x, *self._noise_key)
        u = (k + noise) / levels
        upper = torch.nextafter((k + 1) / levels, torch.zeros_like(u))
        return torch.minimum(u, upper)

    def nll_per_dim(self, model: Flow, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The per-sample metric ``[B]``: bits/dim (discrete data) or nats/dim (continuous data)."""
        x, y = batch
        labels = y if model.conditional or (model.prior is not None and model.prior.conditional) else None
        return self.per_dim(model.log_prob(self.dequantize(x), labels))

    def per_dim(self, log_p: Tensor) -> Tensor:
        """The metric of :meth:`nll_per_dim` from the log-density ``log_p`` ``[B]`` of dequantized data."""
        dims, levels = self._need_setup()
        if levels is None:
            return -log_p / dims
        if self.dequantize_mode == "none":
            return -log_p / (dims * math.log(2.0))
        return (-log_p / dims + math.log(levels)) / math.log(2.0)

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        if update != "model":
            raise RevkitError(f"max_likelihood updates only the group 'model', got {update!r}")
        per_sample = self.nll_per_dim(model, batch)
        loss = per_sample.mean()
        return Losses(loss=loss, metrics={self.metric_name: float(loss.detach())})

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        return {self.metric_name: self.nll_per_dim(model, batch)}

    def extra_repr(self) -> str:
        return f"dequantize={self.dequantize_mode!r}"

    def _need_setup(self) -> tuple[int, int | None]:
        if self.dims is None:
            raise RevkitError("max_likelihood: call setup(flow, data_info) before computing losses")
        return self.dims, self.levels
