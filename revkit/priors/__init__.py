"""Densities on the flow's latent: :class:`Prior` and the built-in priors."""

from revkit.priors.active_gaussian import ActiveGaussian
from revkit.priors.base import Prior, PriorParams
from revkit.priors.class_gaussian import ClassGaussian
from revkit.priors.diagonal_gaussian import DiagonalGaussian
from revkit.priors.gaussian_mixture import GaussianMixture
from revkit.priors.standard_normal import StandardNormal

__all__ = [
    "ActiveGaussian",
    "ClassGaussian",
    "DiagonalGaussian",
    "GaussianMixture",
    "Prior",
    "PriorParams",
    "StandardNormal",
]
