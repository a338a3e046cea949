r"""Test-split metrics: the objective's per-sample metrics averaged over a split.

For maximum likelihood the per-sample metric is bits per dimension,

.. math:: \mathrm{bpd}(x) = -\frac{\log p(x)}{D \ln 2}

(with the dequantization correction the objective applies for discrete data), and the reported
number is its mean over every test sample — or over the first ``max_batches`` batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from revkit.errors import DataError
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.runtime.device import to_device
from revkit.runtime.progress import phase


@torch.no_grad()
def evaluate_split(
    flow: Model,
    objective: Objective,
    loader: Iterable[Any],
    device: torch.device,
    max_batches: int = 0,
    what: str = "evaluating the test split",
) -> tuple[dict[str, float], int]:
    """Mean of each metric of ``objective.evaluate`` over the samples of ``loader``.

    The flow and objective are put in eval mode for the pass and restored afterwards.

    Args:
        max_batches: stop after this many batches (0: the whole split).
        what: the phase's name in its progress bar (or its one line when stderr is not a terminal).

    Returns:
        metric name → mean over the samples seen, and how many samples there were.

    Raises:
        DataError: when the loader yields no batch.
    """
    modes = (flow.training, objective.training)
    flow.eval()
    objective.eval()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    try:
        total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        if max_batches:
            total = min(total, max_batches) if total is not None else max_batches
        for i, batch in enumerate(phase(loader, what, total=total, unit="batch")):
            if max_batches and i >= max_batches:
                break
            batch = to_device(batch, device)
            metrics = objective.evaluate(flow, batch)
            n = batch[0].shape[0]
            for name, values in metrics.items():
                values = values.detach().double().reshape(-1)
                if values.numel() != n:
                    values = values.mean().expand(n)
                sums[name] = sums.get(name, values.new_zeros(())) + values.sum()
            count += n
    finally:
        flow.train(modes[0])
        objective.train(modes[1])
    if count == 0:
        raise DataError("the test split yielded no batches to evaluate")
    return {name: float(total) / count for name, total in sums.items()}, count
