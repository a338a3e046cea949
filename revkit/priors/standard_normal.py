r"""The fixed standard normal prior :math:`\mathcal N(0, I)`."""

from __future__ import annotations

import torch
from torch import Tensor

from revkit.invertible import Shape
from revkit.priors.base import Prior
from revkit.priors.gaussian import LOG_2PI, check_latent_shape


class StandardNormal(Prior):
    r"""Standard normal prior on the latent, no parameters.

    .. math:: \log p(z) = -\tfrac12 \lVert z \rVert^2 - \tfrac D2 \log 2\pi, \qquad D = \prod \text{shape}

    ``rsample`` returns ``temperature · ε`` with ``ε ~ N(0, I)``, shape ``[n, *shape]``.

    Example:
        >>> prior = StandardNormal((2,))
        >>> prior.log_prob(torch.zeros(1, 2))  # -log(2π)
        tensor([-1.8379])
    """

    def __init__(self, shape: Shape):
        super().__init__(check_latent_shape("standard_normal", shape))
        # an empty buffer only so that the prior follows .to(device) / .to(dtype)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        flat = z.reshape(z.shape[0], -1)
        return -0.5 * (flat.pow(2).sum(dim=1) + flat.shape[1] * LOG_2PI)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        eps = torch.randn((n, *self.shape), device=self._anchor.device, dtype=self._anchor.dtype)
        return temperature * eps
