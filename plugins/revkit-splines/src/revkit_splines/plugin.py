"""The plugin module named by the entry point ``[project.entry-points.revkit] splines = …``.

revkit's plugin manager registers this module and calls its hooks; each hook calls
``register(name, component)`` once per component.
"""

from __future__ import annotations

from revkit.plugins import hookimpl
from revkit.plugins.hookspecs import Register

from revkit_splines.coupling import BLOCK_NAME, RQSplineCoupling


@hookimpl
def register_blocks(register: Register) -> None:
    register(BLOCK_NAME, RQSplineCoupling)
