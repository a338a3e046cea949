"""Internal plugin: registers the built-in objectives."""

from __future__ import annotations

from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_objectives(register: Register) -> None:
    pass
