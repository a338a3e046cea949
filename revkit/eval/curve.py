"""The training curve: logged losses (and evaluation metrics) against the step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

#: logged keys that are bookkeeping, not curves.
NOT_CURVES = {"step", "time", "images_per_s"}


def curve_series(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """name → (steps, values) for every numeric key of the records, except bookkeeping and ``lr``."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        for k, v in r.items():
            if k in NOT_CURVES or k == "lr" or k.endswith("_lr") or not isinstance(v, (int, float)):
                continue
            steps, values = series.setdefault(k, ([], []))
            steps.append(step)
            values.append(float(v))
    return series


def write_training_curve(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """A PNG with the losses in the top panel and the other metrics (train and test) below."""
    series = curve_series(records)
    losses = {k: v for k, v in series.items() if k.endswith("loss")}
    others = {k: v for k, v in series.items() if k not in losses}
    panels = [p for p in (losses, others) if p] or [{}]
    fig = Figure(figsize=(7, 3 * len(panels)), dpi=100)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        for name, (steps, values) in sorted(panel.items()):
            style = "o-" if name.startswith("test_") else "-"
            ax.plot(steps, values, style, label=name, markersize=3)
        if panel:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "nothing logged yet", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(Path(path), format="png")
    return Path(path)
