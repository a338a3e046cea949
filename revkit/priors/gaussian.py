r"""Shared arithmetic of the Gaussian priors: diagonal normal log densities on flat latents.

All priors flatten a latent ``z`` of shape ``[batch, *shape]`` to ``[batch, D]`` with
``D = prod(shape)`` and evaluate

.. math:: \log \mathcal N(z; \mu, \operatorname{diag}\sigma^2)
          = -\sum_{d=1}^{D} \Big(\tfrac{(z_d-\mu_d)^2}{2\sigma_d^2} + \log\sigma_d + \tfrac12\log 2\pi\Big).
"""

from __future__ import annotations

import math

from torch import Tensor

from revkit.errors import RevkitError
from revkit.invertible import Shape

LOG_2PI = math.log(2.0 * math.pi)


def diag_normal_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    r"""Log density of a diagonal normal, summed over the last dimension.

    Args:
        z: points ``[..., D]``.
        mean, log_std: ``[..., D]``, broadcast against ``z`` (e.g. ``z`` as ``[B, 1, D]`` and
            the parameters of ``K`` components as ``[K, D]`` give ``[B, K]``).

    Returns:
        :math:`\log \mathcal N(z; \mu, \operatorname{diag} e^{2\,\text{log\_std}})` of shape
        ``broadcast(...)[:-1]``.
    """
    scaled = (z - mean) * (-log_std).exp()
    return -(0.5 * scaled.pow(2) + log_std + 0.5 * LOG_2PI).sum(dim=-1)


def check_latent_shape(prior: str, shape: Shape) -> tuple[int, ...]:
    """Validate a latent shape (non-empty, positive sizes) and return it as a tuple of ints."""
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise RevkitError(f"{prior}: the latent shape must be a non-empty tuple of positive sizes, "
                          f"got {shape}")
    return shape
