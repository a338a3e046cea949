r"""One learned diagonal Gaussian per class (the class-conditional prior of the seed paper)."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import Shape
from revkit.priors.base import Prior, PriorParams
from revkit.priors.gaussian import check_latent_shape, diag_normal_log_prob


class ClassGaussianParams(PriorParams):
    classes: int | None = Field(
        None, ge=1, description="number of classes; left out, the builder fills it from the data"
    )


class ClassGaussian(Prior):
    r"""A diagonal Gaussian per class :math:`c`, with learned means and log-stds.

    .. math::
        \log p(z \mid y=c) = \log \mathcal N(z;\ \mu_c,\ \operatorname{diag}\sigma_c^2), \qquad
        \log p(z) = \operatorname{logsumexp}_c \log p(z \mid c) - \log C

    The second line (``y=None``) is the marginal under uniform class weights. ``means`` and
    ``log_stds`` have shape ``[classes, *shape]`` and start at 0 (every class :math:`N(0, I)`).
    ``rsample(n, y)`` is reparameterized: :math:`z = \mu_y + T\,\sigma_y \odot ε`; without ``y`` the
    labels are drawn uniformly.

    The density and sampling read the parameters only through :meth:`component_means` and
    :meth:`component_log_stds`, so another parameterisation of the std can be added there.

    Args:
        shape: latent shape.
        classes: number of classes ``C ≥ 1`` (the builder fills it from the data).
    """

    Params = ClassGaussianParams
    conditional = True

    def __init__(self, shape: Shape, classes: int | None = None):
        super().__init__(check_latent_shape("class_gaussian", shape))
        if classes is None or int(classes) < 1:
            raise RevkitError(
                f"class_gaussian: classes must be an integer ≥ 1, got {classes!r} (in a spec, leave "
                "prior.classes out to take it from the data, which must then be labelled)"
            )
        self._classes = int(classes)
        self.means = nn.Parameter(torch.zeros(self._classes, *self.shape))
        self.log_stds = nn.Parameter(torch.zeros(self._classes, *self.shape))

    @property
    def classes(self) -> int:
        return self._classes

    def component_means(self) -> Tensor:
        """Means per class, ``[classes, *shape]``."""
        return self.means

    def component_log_stds(self) -> Tensor:
        """Log standard deviations per class, ``[classes, *shape]``."""
        return self.log_stds

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        b, c = z.shape[0], self._classes
        flat = z.reshape(b, -1)
        means = self.component_means().reshape(c, -1)
        log_stds = self.component_log_stds().reshape(c, -1)
        if y is not None:
            return diag_normal_log_prob(flat, means[y], log_stds[y])
        per_class = diag_normal_log_prob(flat.unsqueeze(1), means, log_stds)  # [B, C]
        return torch.logsumexp(per_class, dim=1) - math.log(c)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        assert y is not None  # Prior.rsample draws labels for a conditional prior
        means, log_stds = self.component_means()[y], self.component_log_stds()[y]
        eps = torch.randn_like(means)
        return means + temperature * log_stds.exp() * eps

    def extra_repr(self) -> str:
        return f"shape={self.shape}, classes={self._classes}"
