"""Internal plugin: the model kind ``"aligned_flows"`` and its objective ``"alignflow"``."""

from __future__ import annotations

from revkit.alignflow.build import AlignedFlowsKind
from revkit.alignflow.objective import AlignFlowObjective
from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_models(register: Register) -> None:
    register("aligned_flows", AlignedFlowsKind)


@hookimpl
def register_objectives(register: Register) -> None:
    register("alignflow", AlignFlowObjective)
