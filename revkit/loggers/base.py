"""The logger contract: what a run hands an experiment logger, and when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel


class Logger:
    """Base class of experiment loggers (built in: ``tensorboard``; plugins: ``mlflow`` in ``revkit-mlflow``).

    The run layer calls, in this order (only on rank 0 of a distributed run):

    1. ``Logger.unavailable()`` before the run folder is made: a non-empty reason (its package missing)
       stops the run with a :class:`~revkit.errors.LoggerError` naming the logger;
    2. ``Logger(run_dir, **params)`` and :meth:`start` before the first step (an exception here, such as an
       unwritable store, stops the run with a :class:`~revkit.errors.LoggerError` naming the logger);
    3. :meth:`log_scalars` at every logged step (the records of ``metrics.jsonl``, ``test_*`` keys at each
       evaluation during training) and :meth:`log_images` / :meth:`log_histogram` at each evaluation;
    4. :meth:`finish` after the final evaluation, then :meth:`close` (also when training stopped early).

    An exception raised in step 3 or 4 is reported as a warning and that logger is dropped: a logger never
    loses a run.

    Attributes:
        Params: the pydantic model of the logger's keys in ``[[output.loggers]]`` (None: it takes none).
        distribution: the distribution that provides the logger (named in error messages).
    """

    Params: ClassVar[type[BaseModel] | None] = None
    distribution: ClassVar[str] = "revkit"

    def __init__(self, run_dir: Path, **params: Any) -> None:
        self.run_dir = Path(run_dir)
        self.params = params

    @classmethod
    def unavailable(cls) -> str:
        """Why this logger cannot run in this environment ("" when it can): e.g. its package is missing."""
        return ""

    def start(self, spec: Mapping[str, Any], spec_text: str) -> None:
        """Open the store: ``spec`` is the spec as a TOML document (a dict), ``spec_text`` its TOML text."""

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Scalars logged at ``step`` (losses, bits/dim, learning rates, images/s, ``test_*``)."""

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        """Pictures of an evaluation at ``step`` by name (``samples``, ``reconstructions``, …) as PNG files,
        valid only during the call (copy what you keep)."""

    def log_histogram(self, step: int, name: str, values: np.ndarray) -> None:
        """Values whose distribution the objective reports (``prior_stds/class_3``, ``fixed_point_iterations``)."""

    def finish(self, metrics: Mapping[str, Any], files: Sequence[Path]) -> None:
        """The final metrics (``metrics.json``) and the run folder's files worth keeping (pictures,
        ``metrics.json``, ``report.html``, ``spec.toml``)."""

    def close(self) -> None:
        """Flush and release the store."""
