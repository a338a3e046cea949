"""The revkit hook specifications: one register-callback hook per kind of component.

A plugin module implements any of these with ``@revkit.plugins.hookimpl`` and calls
``register("name", Component)`` for each component it provides; it never builds return lists.
Built-in components are registered through the very same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "revkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, Any], None]


@hookspec
def register_blocks(register: Register) -> None:
    """Register invertible blocks: ``register("affine_coupling", AffineCoupling)``.

    A block class subclasses :class:`revkit.Invertible`, takes ``input_shape`` first and its
    parameters as keywords, and declares them as the pydantic model ``Params``.
    """


@hookspec
def register_priors(register: Register) -> None:
    """Register priors: ``register("standard_normal", StandardNormal)`` (subclasses of :class:`revkit.Prior`)."""


@hookspec
def register_objectives(register: Register) -> None:
    """Register objectives: ``register("max_likelihood", MaxLikelihood)`` (subclasses of :class:`revkit.Objective`)."""


@hookspec
def register_models(register: Register) -> None:
    """Register model kinds: ``register("flow", FlowKind)`` (see :class:`revkit.model.ModelKind`).

    ``model.kind`` in a spec names one; the kind's ``Params`` validate its table ``[model.<kind>]``
    and its ``build`` turns the spec into a :class:`revkit.model.Model`.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register data sets: ``register("mnist", Mnist)`` (subclasses of :class:`revkit.data.DataSource`)."""


@hookspec
def register_discriminators(register: Register) -> None:
    """Register data-space discriminators for adversarial objectives: ``register("conv", ConvDiscriminator)``
    (subclasses of :class:`revkit.discriminators.Discriminator`, built as ``Discriminator(input_shape,
    classes=K, **params)``; a spec names one in ``[objective.discriminator]`` with ``kind = "conv"``)."""


@hookspec
def register_block_hints(register: Register) -> None:
    """Register hints for blocks that *other* distributions provide.

    ``register("rq_spline_coupling", "revkit-splines")`` lets ``revkit validate`` tell a user which
    distribution to install when a spec names a block that is not installed.
    """


@hookspec
def register_loggers(register: Register) -> None:
    """Register experiment loggers: ``register("tensorboard", TensorBoardLogger)`` (subclasses of
    :class:`revkit.loggers.Logger`). ``[[output.loggers]]`` (or ``output.loggers = ["name", …]``) in a spec
    names the loggers a run uses; ``metrics.jsonl`` is always written."""


@hookspec
def register_logger_hints(register: Register) -> None:
    """Register hints for loggers that *other* distributions provide.

    ``register("mlflow", "revkit-mlflow")`` lets a spec that names ``mlflow`` without the plugin installed
    fail with a message that says which distribution to install.
    """
