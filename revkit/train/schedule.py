r"""Learning-rate schedules: a multiplicative factor on ``train.lr`` as a function of the step.

With ``t`` the number of optimizer steps taken so far (0 for the first step), ``T = train.steps``
and ``W = train.warmup_steps``, the learning rate of step ``t + 1`` is ``lr · w(t) · s(t)`` with

* warm-up ``w(t) = min(1, (t + 1) / W)`` (``1`` when ``W = 0``),
* ``schedule = "none"``:   ``s(t) = 1``,
* ``schedule = "cosine"``: ``s(t) = ½ (1 + cos(π · p))`` with ``p = clamp((t − W) / (T − W), 0, 1)``,
  which decays to 0 at ``t = T``,
* ``schedule = "step"``:   ``s(t) = gamma ** ⌊t / step_size⌋``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from revkit.errors import RevkitError
from revkit.train.settings import TrainSettings

SCHEDULES = ("none", "cosine", "step")


def lr_factor(settings: TrainSettings) -> Callable[[int], float]:
    """The factor ``w(t) · s(t)`` described in the module docstring.

    Raises:
        RevkitError: for an unknown ``train.schedule`` or a non-positive ``train.step_size``.
    """
    kind = settings.schedule
    if kind not in SCHEDULES:
        raise RevkitError(f"train.schedule: {kind!r} is not a schedule; allowed: {', '.join(SCHEDULES)}")
    total, warmup = int(settings.steps), int(settings.warmup_steps)
    step_size, gamma = settings.step_size, float(settings.gamma)
    if kind == "step" and (step_size is None or int(step_size) < 1):
        raise RevkitError(f"train.step_size must be ≥ 1 for schedule = 'step', got {step_size}")
    step_size = int(step_size) if step_size is not None else 1

    def factor(t: int) -> float:
        warm = min(1.0, (t + 1) / warmup) if warmup > 0 else 1.0
        if kind == "cosine":
            progress = min(1.0, max(0.0, (t - warmup) / max(1, total - warmup)))
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "step":
            return warm * gamma ** (t // step_size)
        return warm

    return factor


def make_scheduler(optimizer: Optimizer, settings: TrainSettings) -> LambdaLR:
    """A scheduler to step once after each optimizer step.

    The factor is a plain function, so the scheduler's ``state_dict`` holds only the step count and
    base rates: a resumed run takes the schedule from its (possibly extended) spec.
    """
    return LambdaLR(optimizer, lr_lambda=lr_factor(settings))
