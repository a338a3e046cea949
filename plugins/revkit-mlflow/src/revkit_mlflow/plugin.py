"""The plugin module named by the entry point ``[project.entry-points.revkit] mlflow = …``.

The logger is imported inside the hook, so loading the plugin costs nothing until a registry is built
(and ``mlflow`` itself is imported only when a run starts the logger).
"""

from __future__ import annotations

from revkit.plugins import hookimpl
from revkit.plugins.hookspecs import Register


@hookimpl
def register_loggers(register: Register) -> None:
    from revkit_mlflow.logger import MLflowLogger

    register("mlflow", MLflowLogger)
