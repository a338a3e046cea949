"""One Adam optimizer per parameter group that the objective declares.

Weight decay is decoupled from the gradient (AdamW, Loshchilov & Hutter 2019): each step shrinks
the parameters by ``lr · weight_decay`` besides the Adam update; ``weight_decay = 0`` is plain Adam.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import AdamW

from revkit.errors import RevkitError
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.train.settings import TrainSettings

#: keys an objective may put in ``optimizer_overrides(group)``.
OVERRIDE_KEYS = ("lr", "weight_decay", "beta1", "beta2", "grad_clip")


def group_settings(objective: Objective, group: str, settings: TrainSettings) -> dict[str, float]:
    """``[train]``'s lr, betas, weight decay and grad clip, with the objective's overrides for ``group``.

    Raises:
        RevkitError: when the objective overrides a key that is not in :data:`OVERRIDE_KEYS`.
    """
    beta1, beta2 = (float(b) for b in settings.betas)
    out = {
        "lr": float(settings.lr),
        "weight_decay": float(settings.weight_decay),
        "beta1": beta1,
        "beta2": beta2,
        "grad_clip": float(settings.grad_clip),
    }
    overrides = dict(objective.optimizer_overrides(group))
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise RevkitError(
            f"objective {type(objective).__name__} overrides optimizer setting(s) {unknown} for group "
            f"{group!r}; allowed: {', '.join(OVERRIDE_KEYS)}"
        )
    out.update({k: float(v) for k, v in overrides.items()})
    return out


def make_optimizers(
    flow: Model, objective: Objective, settings: TrainSettings
) -> tuple[dict[str, AdamW], dict[str, dict[str, float]]]:
    """AdamW optimizers keyed by group name, in ``objective.update_order()``, and each group's settings.

    Raises:
        RevkitError: when the update order names a group without parameters, or names one twice.
    """
    order = objective.update_order()
    if len(set(order)) != len(order):
        raise RevkitError(f"objective {type(objective).__name__}: update_order() repeats a group: {order}")
    groups = objective.parameter_groups(flow)
    optimizers: dict[str, AdamW] = {}
    configs: dict[str, dict[str, float]] = {}
    for name in order:
        params: list[Any] = [p for p in groups.get(name, []) if isinstance(p, torch.Tensor) and p.requires_grad]
        if not params:
            raise RevkitError(
                f"objective {type(objective).__name__}: parameter group {name!r} has no trainable "
                f"parameters (groups: {sorted(groups)})"
            )
        cfg = group_settings(objective, name, settings)
        optimizers[name] = AdamW(
            params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), weight_decay=cfg["weight_decay"]
        )
        configs[name] = cfg
    return optimizers, configs
