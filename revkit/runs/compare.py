r"""``revkit compare RUN_DIR…``: one table of any finished runs — flows, VAEs, any model kind.

One row per run folder, read from its ``spec.toml`` (as TOML, so a run whose plugin is no longer
installed still reads) and ``metrics.json``:

* **run** — the folder's name; **model** — the model kind and its blocks in compact form
  (``flow: subsample → 2×revblock → …``; for a kind with its own table, the block lists in it);
  **objective** — ``objective.kind``;
* one column per metric that any of the runs has: the test metrics (``test_*``) first, then the
  scores (Fréchet distances, sample accuracy, reconstruction error, …); a run without a metric shows
  ``—``. Bookkeeping entries (pictures, budgets, devices) are left out, except
* **steps** and **train s** — optimizer steps taken and seconds of training.

The run's ``main_metric`` is marked with ``*`` in its row. Plain text by default; ``--markdown``
prints a Markdown table. A folder without ``metrics.json`` (a run that has not finished) is an error
naming the folder.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revkit.errors import RevkitError
from revkit.runs.folder import RunFolder

#: metrics.json entries that describe the run's budget or files, not its quality.
BOOKKEEPING = frozenset({
    "main_metric", "test_samples", "steps", "steps_planned", "stopped", "train_seconds", "wall_clock_s",
    "device", "processes", "parameters", "skipped_updates", "score_samples", "pictures", "pictures_skipped",
    "scores_unavailable",
})
MISSING = "—"


@dataclass(frozen=True)
class Row:
    """One run of the table: its name, model, objective and numeric metrics."""

    run: str
    model: str
    objective: str
    main_metric: str
    metrics: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    train_seconds: float = 0.0


def _compact(layers: Iterable[Any]) -> str:
    """``[[…layers]]`` tables → ``subsample → 2×revblock → …`` (consecutive equal blocks merged)."""
    runs: list[list[Any]] = []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        name, count = str(layer.get("block", "?")), int(layer.get("repeat", 1))
        if runs and runs[-1][0] == name:
            runs[-1][1] += count
        else:
            runs.append([name, count])
    return " → ".join(name if n == 1 else f"{n}×{name}" for name, n in runs) or "no blocks"


def describe_model(model: dict[str, Any]) -> str:
    """The model column: the kind and its blocks, read from the spec's ``[model]`` table."""
    kind = str(model.get("kind", "flow"))
    parts = []
    if model.get("layers"):
        parts.append(_compact(model["layers"]))
    table = model.get(kind)
    if isinstance(table, dict):  # a kind's own table: its lists of block tables
        for key, value in table.items():
            if isinstance(value, list) and all(isinstance(v, dict) and "block" in v for v in value):
                parts.append(f"{key} {_compact(value)}" if value else f"no {key}")
    return f"{kind}: {'; '.join(parts)}" if parts else kind


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_row(run_dir: str | Path) -> Row:
    """The table row of one run folder."""
    folder = RunFolder(Path(run_dir))
    try:
        spec = tomllib.loads(folder.spec_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RevkitError(f"{folder.path}: no {folder.spec_file.name} (the spec as run); is it a run folder?") from None
    except UnicodeDecodeError as exc:
        raise RevkitError(f"{folder.spec_file}: cannot be read: byte {exc.start} is not UTF-8 (the spec as run)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RevkitError(f"{folder.spec_file}: cannot be read ({exc})") from exc
    metrics = folder.read_metrics()
    if metrics is None:
        raise RevkitError(f"{folder.path}: no {folder.metrics_file.name} (the final evaluation); is it a finished run?")
    numbers = {k: v for k, raw in metrics.items() if k not in BOOKKEEPING and (v := _number(raw)) is not None}
    model = spec.get("model") if isinstance(spec.get("model"), dict) else {}
    objective = spec.get("objective") if isinstance(spec.get("objective"), dict) else {}
    return Row(run=folder.path.name, model=describe_model(model), objective=str(objective.get("kind", "max_likelihood")),
               main_metric=str(metrics.get("main_metric", "")), metrics=numbers,
               steps=int(_number(metrics.get("steps")) or 0), train_seconds=_number(metrics.get("train_seconds")) or 0.0)


def metric_columns(rows: Sequence[Row]) -> list[str]:
    """Every metric any row has: test metrics first, then the others, each in order of first appearance."""
    seen: list[str] = []
    for row in rows:
        seen.extend(k for k in row.metrics if k not in seen)
    return [k for k in seen if k.startswith("test_")] + [k for k in seen if not k.startswith("test_")]


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3g}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def table(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of the table."""
    columns = metric_columns(rows)
    header = ["run", "model", "objective", *columns, "steps", "train s"]
    body = []
    for row in rows:
        cells = [row.run, row.model, row.objective]
        for name in columns:
            value = row.metrics.get(name)
            mark = "*" if name == row.main_metric else ""
            cells.append(MISSING if value is None else _fmt(value) + mark)
        cells += [str(row.steps), f"{row.train_seconds:.0f}"]
        body.append(cells)
    return header, body


def render_text(rows: Sequence[Row]) -> str:
    """An aligned plain-text table (numbers right-aligned)."""
    header, body = table(rows)
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    left = {0, 1, 2}

    def fmt(line: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in body)]) + "\n* the run's main metric\n"


def _markdown_line(cells: Iterable[str]) -> str:
    r"""One table line; a ``|`` inside a cell is written ``\|`` so that it does not end the cell."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_markdown(rows: Sequence[Row]) -> str:
    """A Markdown table (numeric columns right-aligned)."""
    header, body = table(rows)
    align = ["---"] * 3 + ["---:"] * (len(header) - 3)
    lines = [_markdown_line(header), "| " + " | ".join(align) + " |", *(_markdown_line(r) for r in body)]
    return "\n".join(lines) + "\n\n\\* the run's main metric\n"


def compare(run_dirs: Sequence[str | Path], markdown: bool = False) -> str:
    """The table of the given run folders, in the order given."""
    if not run_dirs:
        raise RevkitError("compare needs at least one run folder")
    rows = [read_row(d) for d in run_dirs]
    return render_markdown(rows) if markdown else render_text(rows)
