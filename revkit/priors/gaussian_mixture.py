r"""A learned mixture of diagonal Gaussians."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import Shape
from revkit.priors.base import Prior, PriorParams
from revkit.priors.gaussian import check_latent_shape, diag_normal_log_prob


class GaussianMixtureParams(PriorParams):
    components: int = Field(10, ge=1, le=10_000, description="number of mixture components K")


class GaussianMixture(Prior):
    r"""A mixture of ``K`` diagonal Gaussians with learned weights, means and log-stds.

    .. math::
        \log p(z) = \operatorname{logsumexp}_k \big(\log \pi_k
                    + \log \mathcal N(z;\ \mu_k,\ \operatorname{diag}\sigma_k^2)\big),
        \qquad \pi = \operatorname{softmax}(\text{logits})

    ``logits`` ``[K]`` start at 0 (equal weights), ``means`` ``[K, *shape]`` are drawn from
    :math:`N(0, I)` so the components start apart, ``log_stds`` ``[K, *shape]`` start at 0.

    ``rsample`` first draws a component :math:`k \sim \operatorname{Categorical}(\pi)`, then
    :math:`z = \mu_k + T\,\sigma_k \odot ε`. It is reparameterized *within* the component only:
    gradients reach the chosen components' means and log-stds, but the discrete choice of the
    component is not differentiable, so no gradient reaches ``logits`` through samples (they are
    learned through :meth:`log_prob`).

    Args:
        shape: latent shape.
        components: number of components ``K ≥ 1``.
    """

    Params = GaussianMixtureParams

    def __init__(self, shape: Shape, components: int = 10):
        super().__init__(check_latent_shape("gaussian_mixture", shape))
        if int(components) < 1:
            raise RevkitError(f"gaussian_mixture: components must be ≥ 1, got {components}")
        self.components = int(components)
        self.logits = nn.Parameter(torch.zeros(self.components))
        self.means = nn.Parameter(torch.randn(self.components, *self.shape))
        self.log_stds = nn.Parameter(torch.zeros(self.components, *self.shape))

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        k = self.components
        flat = z.reshape(z.shape[0], 1, -1)
        per_component = diag_normal_log_prob(flat, self.means.reshape(k, -1), self.log_stds.reshape(k, -1))
        return torch.logsumexp(per_component + torch.log_softmax(self.logits, dim=0), dim=1)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        which = torch.multinomial(torch.softmax(self.logits.detach(), dim=0), n, replacement=True)
        means, log_stds = self.means[which], self.log_stds[which]
        return means + temperature * log_stds.exp() * torch.randn_like(means)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, components={self.components}"
