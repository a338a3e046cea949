"""Experiment loggers: where a run's scalars, pictures and final metrics go besides the run folder.

A logger is a :class:`Logger` registered through the hook ``register_loggers(register)``; a spec names the
ones a run uses in ``[output]`` (``loggers = ["tensorboard"]``, or ``[[output.loggers]]`` tables with the
logger's own keys). The run layer opens them before training (:class:`LoggerGroup`: a logger that cannot start
is a :class:`~revkit.errors.LoggerError` naming it, before any step is taken), hands the trainer their
``scalars`` as its record callback, and after the final evaluation passes the pictures, the histograms and
the metrics. ``metrics.jsonl`` is not a logger: the trainer always writes it.

This package sits beside :mod:`revkit.train` and :mod:`revkit.eval` and imports neither.
"""

from revkit.loggers.base import Logger
from revkit.loggers.group import LoggerGroup, flat_params

__all__ = ["Logger", "LoggerGroup", "flat_params"]
