"""Internal plugin: registers the built-in data sources."""

from __future__ import annotations

from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_datasets(register: Register) -> None:
    pass
