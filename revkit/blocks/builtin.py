"""Internal plugin: registers the built-in blocks through the same hook third parties use."""

from __future__ import annotations

from revkit.blocks.split import Split
from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_blocks(register: Register) -> None:
    register("split", Split)
