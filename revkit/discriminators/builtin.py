"""Internal plugin: registers the built-in discriminators."""

from __future__ import annotations

from revkit.discriminators.conv import ConvDiscriminator, MLPDiscriminator
from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_discriminators(register: Register) -> None:
    register("conv", ConvDiscriminator)
    register("mlp", MLPDiscriminator)
