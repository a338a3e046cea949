"""Registers the built-in logger (``tensorboard``) and says where the others live."""

from __future__ import annotations

from revkit.loggers.tensorboard import TensorBoardLogger
from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_loggers(register: Register) -> None:
    register("tensorboard", TensorBoardLogger)


@hookimpl
def register_logger_hints(register: Register) -> None:
    register("mlflow", "revkit-mlflow")
