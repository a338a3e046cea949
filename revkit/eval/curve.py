"""Training curves: logged losses and metrics (and evaluation metrics) against the step, drawn with matplotlib.

Each quantity gets a panel of its own, so that quantities of very different scales stay readable
(``active_dims`` ≈ 400 beside ``ot_cost`` ≈ 1 and ``smoothness`` ≈ 0.02); a quantity and its evaluation
during training (``bits_per_dim`` and ``test_bits_per_dim``) share a panel. :func:`write_curves` overlays
several runs, a colour per run, for comparison pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from matplotlib.figure import Figure

#: logged keys that are bookkeeping, not curves.
NOT_CURVES = {"step", "time", "images_per_s", "skipped_updates"}
#: panels per row of the figure.
COLUMNS = 3

Series = dict[str, tuple[list[int], list[float]]]


def curve_series(records: Sequence[dict[str, Any]]) -> Series:
    """name → (steps, values) for every numeric key of the records, except bookkeeping and ``lr``."""
    series: Series = {}
    for r in records:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        for k, v in r.items():
            if k in NOT_CURVES or k == "lr" or k.endswith("_lr") or not isinstance(v, (int, float)) \
                    or isinstance(v, bool):
                continue
            steps, values = series.setdefault(k, ([], []))
            steps.append(step)
            values.append(float(v))
    return series


def quantity(name: str) -> str:
    """The panel a logged name goes to: ``test_bits_per_dim`` → ``bits_per_dim``."""
    return name[5:] if name.startswith("test_") else name


def _order(name: str) -> tuple[int, str]:
    """Losses first, then the rest by name."""
    return (0 if name.endswith("loss") else 1, name)


def panels(runs: Mapping[str, Series]) -> list[str]:
    """The quantities drawn for ``runs``, one panel each, losses first."""
    return sorted({quantity(name) for series in runs.values() for name in series}, key=_order)


def write_curves(runs: Mapping[str, Sequence[dict[str, Any]]], path: Path | IO[bytes], dpi: int = 100) -> Path | None:
    """A PNG with a panel per quantity and a line per run (and a dotted line with markers for its
    ``test_`` evaluations); ``runs`` maps a label ("" for a single run) to the run's records. ``path`` may be
    a binary file object (then None is returned)."""
    series = {label: curve_series(records) for label, records in runs.items()}
    names = panels(series) or [""]
    columns = min(COLUMNS, len(names))
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(4.4 * columns, 2.9 * rows), dpi=dpi)
    colours = [f"C{i % 10}" for i in range(len(series))]
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, i + 1)
        drawn = False
        for colour, (label, found) in zip(colours, series.items(), strict=True):
            for key in (name, f"test_{name}"):
                if key not in found:
                    continue
                steps, values = found[key]
                test = key.startswith("test_")
                text = " ".join(part for part in (label, "test" if test else ("train" if f"test_{name}" in found
                                                                                 else "")) if part)
                ax.plot(steps, values, "o:" if test else "-", color=colour, markersize=3, label=text or None)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "nothing logged yet", ha="center", va="center", transform=ax.transAxes)
        elif ax.get_legend_handles_labels()[1]:
            ax.legend(loc="best", fontsize="x-small")
        ax.set_title(name, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize="small")
        if i >= len(names) - columns:
            ax.set_xlabel("step", fontsize="small")
    fig.tight_layout()
    if hasattr(path, "write"):
        fig.savefig(path, format="png")
        return None
    fig.savefig(Path(path), format="png")  # type: ignore[arg-type]
    return Path(path)  # type: ignore[arg-type]


def write_training_curve(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """``training_curve.png`` of one run: a panel per logged quantity (see the module docstring)."""
    write_curves({"": records}, path)
    return Path(path)
