"""The final evaluation of a run: ``metrics.json`` and the PNGs in the run folder.

Written files:

* ``metrics.json`` — ``test_<metric>`` for every metric of ``objective.evaluate`` (mean over the test
  split or ``eval.test_batches`` batches), ``main_metric`` (which of them summarises the run),
  ``test_samples``, ``max_reconstruction_error`` (``max |decode(encode(x)) − x|`` over one test
  batch), and the budget the caller passes (steps, seconds, device, parameters, why it stopped);
* ``samples.png`` — ``eval.samples`` samples at ``eval.temperature`` (a row per class for
  class-conditional models); for 2-D data a scatter of samples over test points (none when
  ``eval.samples = 0``);
* ``reconstructions.png`` — ``eval.reconstructions`` test images over their reconstructions
  (images only; none when ``eval.reconstructions = 0``);
* ``density.png`` — for 2-D data, the model density on a grid;
* ``training_curve.png`` — from the training records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from revkit.eval.curve import write_training_curve
from revkit.eval.likelihood import evaluate_split, to_device
from revkit.eval.plots2d import write_density
from revkit.eval.reconstruction import reconstruct, write_reconstructions
from revkit.eval.samples import is_2d, write_samples
from revkit.flow import Flow
from revkit.objectives.base import Objective
from revkit.train.settings import EvalSettings

METRICS_JSON = "metrics.json"
#: test points drawn for the 2-D plots.
POINTS_2D = 2000


def _first_batch(loader: Iterable[Any], device: torch.device) -> tuple[Tensor, Tensor]:
    batch = next(iter(loader))
    x, y = to_device(batch, device)[:2]
    return x, y


def _points(loader: Iterable[Any], limit: int) -> Tensor:
    out: list[Tensor] = []
    count = 0
    for batch in loader:
        out.append(batch[0].detach().float().cpu())
        count += batch[0].shape[0]
        if count >= limit:
            break
    return torch.cat(out)[:limit]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def evaluate_run(
    flow: Flow,
    objective: Objective,
    test_loader: Iterable[Any],
    settings: EvalSettings,
    run_dir: Path,
    device: torch.device,
    budget: dict[str, Any],
    records: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Evaluate, write the files listed in the module docstring, and return ``metrics.json``'s content."""
    run_dir = Path(run_dir)
    means, count = evaluate_split(flow, objective, test_loader, device, int(settings.test_batches))
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in means.items()}
    metrics["main_metric"] = f"test_{objective.main_metric}"
    metrics["test_samples"] = count

    x, y = _first_batch(test_loader, device)
    x_hat, error = reconstruct(flow, x, y)
    metrics["max_reconstruction_error"] = error
    n, temperature, k = int(settings.samples), float(settings.temperature), int(settings.reconstructions)
    if is_2d(flow):
        points = _points(test_loader, POINTS_2D)
        if n > 0:
            write_samples(flow, run_dir / "samples.png", n, temperature, points)
        write_density(flow, run_dir / "density.png", points)
    else:
        if n > 0:
            write_samples(flow, run_dir / "samples.png", n, temperature)
        if k > 0:
            write_reconstructions(x[:k], x_hat[:k], run_dir / "reconstructions.png")
    write_training_curve(records, run_dir / "training_curve.png")
    metrics.update(budget)
    write_json(run_dir / METRICS_JSON, metrics)
    return metrics
