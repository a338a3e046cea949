r"""A fixed Gaussian that lets only ``k`` latent dimensions vary (the seed paper's adversarial prior)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from revkit.errors import RevkitError
from revkit.invertible import Shape, numel
from revkit.priors.base import Prior, PriorParams
from revkit.priors.gaussian import LOG_2PI, check_latent_shape


class ActiveGaussianParams(PriorParams):
    k: int = Field(64, ge=1, le=1_000_000, description="number of active latent dimensions (std 1); the rest have std 0")
    init_samples: int = Field(
        2000, ge=2, le=1_000_000, description="untrained-network encodings used to choose the k dimensions that vary most"
    )


class ActiveGaussian(Prior):
    r"""Mean 0, std 1 on ``k`` *active* dimensions and std 0 on every other one; nothing is learned.

    .. math:: z_d \sim \mathcal N(0, 1) \ \text{if } d \in A, \qquad z_d = 0 \ \text{otherwise},
              \qquad |A| = k.

    :meth:`init_from_data` chooses :math:`A` as the ``k`` dimensions whose values vary most
    (largest variance) over the untrained network's encodings (the trainer passes
    ``init_samples`` of them before step 1); until then :math:`A` is the first ``k`` dimensions in
    row-major order. :math:`A` is stored in the buffer ``active``, so checkpoints carry it.

    The mean is 0 on every dimension, as in the seed paper, rather than the encodings' mean: the
    latent-adversary objective pushes the inactive dimensions to 0 and matches the active ones to
    :math:`\mathcal N(0, 1)`, so a zero mean is the target the network is trained towards and the
    value :meth:`restrict` clamps to.

    ``log_prob`` is the density on the prior's support, :math:`\log \mathcal N(z_A; 0, I_k)`: the
    full-dimensional density is degenerate, so the inactive coordinates are ignored (it is a density
    with respect to the ``k``-dimensional Lebesgue measure, not comparable with full-rank priors).

    Args:
        shape: latent shape.
        k: number of active dimensions, ``1 ≤ k ≤ prod(shape)``.
        init_samples: encodings :meth:`init_from_data` asks for.

    Example:
        >>> prior = ActiveGaussian((10,), k=3)
        >>> int((prior.sample(5) != 0).sum(dim=1).max())
        3
    """

    Params = ActiveGaussianParams

    def __init__(self, shape: Shape, k: int = 64, init_samples: int = 2000):
        super().__init__(check_latent_shape("active_gaussian", shape))
        dims = numel(self.shape)
        if not 1 <= int(k) <= dims:
            raise RevkitError(f"active_gaussian: k must lie in [1, {dims}] (the latent's size), got {k}")
        self.k = int(k)
        self.init_samples = int(init_samples)
        active = torch.zeros(dims, dtype=torch.bool)
        active[: self.k] = True
        self.register_buffer("active", active.reshape(self.shape))
        self.register_buffer("mean", torch.zeros(self.shape))

    def active_dims(self, y: Tensor | None = None) -> Tensor:
        """``[1, *shape]``: True on the ``k`` active dimensions (the same for every sample)."""
        return self.active.unsqueeze(0)

    def restrict(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``z`` with every inactive dimension set to 0 (the prior's mean)."""
        return torch.where(self.active, z, self.mean.to(z))

    @torch.no_grad()
    def init_from_data(self, z: Tensor, y: Tensor | None = None) -> None:
        """Make the ``k`` dimensions of largest variance over the encodings ``z`` ``[n, *shape]`` active.

        Raises:
            RevkitError: with fewer than two encodings.
        """
        if z.shape[0] < 2:
            raise RevkitError(f"active_gaussian needs at least 2 encodings to rank dimensions, got {z.shape[0]}")
        variance = z.reshape(z.shape[0], -1).double().var(dim=0)
        chosen = torch.topk(variance, self.k).indices.to(self.active.device)
        active = torch.zeros(variance.numel(), dtype=torch.bool, device=self.active.device)
        active[chosen] = True
        self.active.copy_(active.reshape(self.shape))

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        flat = z.reshape(z.shape[0], -1)[:, self.active.reshape(-1)]
        return -(0.5 * flat.pow(2) + 0.5 * LOG_2PI).sum(dim=1)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        eps = torch.randn((n, *self.shape), device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + temperature * self.active.to(eps.dtype) * eps

    def extra_repr(self) -> str:
        return f"shape={self.shape}, k={self.k}"
