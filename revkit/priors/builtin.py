"""Internal plugin: registers the built-in priors."""

from __future__ import annotations

from revkit.plugins.hookspecs import Register, hookimpl
from revkit.priors.active_gaussian import ActiveGaussian
from revkit.priors.class_gaussian import ClassGaussian
from revkit.priors.diagonal_gaussian import DiagonalGaussian
from revkit.priors.gaussian_mixture import GaussianMixture
from revkit.priors.standard_normal import StandardNormal


@hookimpl
def register_priors(register: Register) -> None:
    register("standard_normal", StandardNormal)
    register("diagonal_gaussian", DiagonalGaussian)
    register("class_gaussian", ClassGaussian)
    register("gaussian_mixture", GaussianMixture)
    register("active_gaussian", ActiveGaussian)
