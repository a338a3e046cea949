"""Training: the loop, checkpoints, schedules, metrics, progress and run folders."""

from revkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from revkit.train.device import resolve_device
from revkit.train.distributed import Distributed
from revkit.train.interrupt import INTERRUPTED, TERMINATED
from revkit.train.trainer import (
    COMPLETED,
    TIME_LIMIT,
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
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "latest_checkpoint",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
