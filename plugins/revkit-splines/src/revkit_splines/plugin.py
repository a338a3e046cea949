"""The plugin module named by the entry point ``[project.entry-points.revkit] splines = …``.

revkit's plugin manager registers this module and calls its hooks; each hook calls
``register(name, component)`` once per component.
"""

from __future__ import annotations

from revkit.blocks import Register, hookimpl

from revkit_splines import autoregressive, coupling


@hookimpl
def register_blocks(register: Register) -> None:
    register(coupling.BLOCK_NAME, coupling.RQSplineCoupling)
    register(autoregressive.BLOCK_NAME, autoregressive.RQSplineAutoregressive)
