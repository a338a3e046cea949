"""Training: the loop, optimizers, schedules, the metrics log, progress, signals and data parallelism.

It knows nothing of run folders (the run layer, :mod:`revkit.runs`, hands it where to write) or of
evaluation (handed in as a function)."""

from revkit.train.distributed import Distributed
from revkit.train.interrupt import INTERRUPTED, TERMINATED
from revkit.train.trainer import (
    COMPLETED,
    TIME_LIMIT,
    RunFiles,
    Trainer,
    TrainingDiverged,
    TrainResult,
)

__all__ = [
    "COMPLETED",
    "INTERRUPTED",
    "TERMINATED",
    "TIME_LIMIT",
    "Distributed",
    "RunFiles",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
]
