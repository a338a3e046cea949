r"""A learned diagonal Gaussian prior."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from revkit.invertible import Shape
from revkit.priors.base import Prior
from revkit.priors.gaussian import check_latent_shape, diag_normal_log_prob


class DiagonalGaussian(Prior):
    r"""One diagonal Gaussian over the whole latent with a learned mean and log-std.

    .. math:: \log p(z) = \log \mathcal N(z;\ \mu,\ \operatorname{diag} \sigma^2),
              \qquad \sigma = e^{s}

    ``mean`` (:math:`\mu`) and ``log_std`` (:math:`s`) have the latent shape and start at 0, so the
    prior starts as :math:`\mathcal N(0, I)`. ``rsample`` is reparameterized,
    :math:`z = \mu + T\,\sigma \odot ε` with temperature :math:`T`, so gradients reach both.
    """

    def __init__(self, shape: Shape):
        super().__init__(check_latent_shape("diagonal_gaussian", shape))
        self.mean = nn.Parameter(torch.zeros(self.shape))
        self.log_std = nn.Parameter(torch.zeros(self.shape))

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        b = z.shape[0]
        return diag_normal_log_prob(z.reshape(b, -1), self.mean.reshape(1, -1), self.log_std.reshape(1, -1))

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        eps = torch.randn((n, *self.shape), device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + temperature * self.log_std.exp() * eps
