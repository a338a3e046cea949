"""Internal plugin: registers the built-in priors."""

from __future__ import annotations

from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_priors(register: Register) -> None:
    pass
