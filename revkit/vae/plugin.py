"""Internal plugin: the model kind ``"vae"`` and its objective ``"elbo"``."""

from __future__ import annotations

from revkit.plugins.hookspecs import Register, hookimpl
from revkit.vae.build import VAEKind
from revkit.vae.objective import Elbo


@hookimpl
def register_models(register: Register) -> None:
    register("vae", VAEKind)


@hookimpl
def register_objectives(register: Register) -> None:
    register("elbo", Elbo)
