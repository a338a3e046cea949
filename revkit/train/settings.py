"""What the trainer reads from a spec's ``[train]`` table.

The trainer depends on this protocol rather than on the spec's pydantic model, so it can be driven
from code (or tests) with any object that has the attributes; the spec's ``train`` section satisfies
it. (Evaluation takes the spec's ``EvalSpec`` itself.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class TrainSettings(Protocol):
    """The ``[train]`` table (see ``docs/internals.md`` for the meaning and defaults)."""

    seed: int
    device: str
    steps: int
    lr: float
    weight_decay: float
    betas: Sequence[float]
    schedule: str
    warmup_steps: int
    step_size: int | None
    gamma: float
    grad_clip: float
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int  # optional: 3 when absent
    on_nonfinite: str  # optional: "stop" | "skip"; "stop" when absent
    eval_every: int
    time_limit_minutes: float
    compile: bool  # optional: False when absent; torch.compile the flow's network
    precision: str  # optional: "float32" when absent; "bfloat16" autocasts the training forward pass
    ema_decay: float  # optional: 0 (off) when absent; the decay of the weights' moving average
