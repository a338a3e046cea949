"""The loggers of one run, called together: opening them (errors that name the logger) and shielding the
run from a logger that fails later (a warning, and the run goes on without it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from revkit.errors import LoggerError
from revkit.loggers.base import Logger
from revkit.plugins.registry import Registries

Warn = Callable[[str], None]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def flat_params(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A spec document as ``{"train.lr": 0.001, "model.layers": "[…]", …}``: tables flattened with dots,
    arrays as their text (the form trackers take hyperparameters in)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = str(list(value))
        else:
            out[name] = value
    return out


def scalar_values(record: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics record, without its ``step``."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


class LoggerGroup:
    """The loggers a run uses, by name.

    Args:
        loggers: ``(name, logger)`` pairs, already started.
        warn: receives one line when a logger fails and is dropped.
    """

    def __init__(self, loggers: Sequence[tuple[str, Logger]] = (), warn: Warn | None = None) -> None:
        self.loggers = list(loggers)
        self.warn: Warn = warn or (lambda text: None)
        self.failed: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.loggers)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.loggers]

    # -- opening -----------------------------------------------------------------------------
    @staticmethod
    def check(specs: Iterable[Any], registries: Registries) -> None:
        """Refuse loggers that cannot run here (before the run folder is made).

        Raises:
            LoggerError: naming the logger and what to install.
        """
        for spec in specs:
            cls = registries.loggers[spec.name]
            reason = cls.unavailable()
            if reason:
                raise LoggerError(f"output.loggers: logger '{spec.name}' cannot run: {reason}")

    @classmethod
    def open(cls, specs: Iterable[Any], registries: Registries, run_dir: Path, spec_doc: Mapping[str, Any],
             spec_text: str, warn: Warn | None = None) -> LoggerGroup:
        """Construct and start the loggers ``specs`` (the spec's ``output.loggers``) for ``run_dir``.

        Raises:
            LoggerError: naming the first logger that cannot start (the ones started are closed).
        """
        specs = list(specs)
        cls.check(specs, registries)
        group = cls([], warn)
        for spec in specs:
            try:
                logger = registries.loggers[spec.name](Path(run_dir), **spec.kwargs())
                logger.start(spec_doc, spec_text)
            except Exception as exc:
                group.close()
                raise LoggerError(f"output.loggers: logger '{spec.name}' cannot start: {_describe(exc)}") from exc
            group.loggers.append((spec.name, logger))
        return group

    # -- calling them ------------------------------------------------------------------------
    def _each(self, what: str, call: Callable[[Logger], None]) -> None:
        for name, logger in list(self.loggers):
            try:
                call(logger)
            except Exception as exc:  # a logger never takes the run down
                self.failed[name] = f"{what}: {_describe(exc)}"
                self.loggers.remove((name, logger))
                self.warn(f"warning: logger '{name}' failed ({what}: {_describe(exc)}); the run goes on without "
                          "it (metrics.jsonl and the run folder have everything)")
                try:
                    logger.close()
                except Exception:  # noqa: S110 - it already failed; its close may too
                    pass

    def record(self, record: Mapping[str, Any]) -> None:
        """A record of the metrics log (the trainer's record callback)."""
        step = record.get("step")
        values = scalar_values(record)
        if isinstance(step, int) and values:
            self._each("log_scalars", lambda logger: logger.log_scalars(step, values))

    def images(self, step: int, images: Mapping[str, Path]) -> None:
        if images:
            self._each("log_images", lambda logger: logger.log_images(step, images))

    def histograms(self, step: int, histograms: Mapping[str, np.ndarray]) -> None:
        for name, values in histograms.items():
            self._each("log_histogram", lambda logger, n=name, v=values: logger.log_histogram(step, n, v))

    def finish(self, metrics: Mapping[str, Any], files: Sequence[Path]) -> None:
        self._each("finish", lambda logger: logger.finish(metrics, files))

    def close(self) -> None:
        """Close every logger (errors in closing are reported, not raised)."""
        self._each("close", lambda logger: logger.close())
        self.loggers.clear()
