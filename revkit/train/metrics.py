"""The metrics log (``metrics.jsonl`` in a run folder): one JSON object per logged step, appended and flushed as training goes.

Each line is ``{"step": int, "loss": float, <metric>: float, …, "lr": float, "images_per_s": float,
"time": seconds since the run began}``; evaluation during training adds lines with ``test_*`` keys.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from revkit.runtime.files import atomic_write


class WindowMeans:
    """Running means of named scalars since the last :meth:`pop`. A NaN value is a metric undefined on
    that step (a classifier's accuracy on a batch without labelled images): it is left out of its
    mean, and a metric undefined on every step of the window is NaN (written as null)."""

    def __init__(self) -> None:
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self._sum[k] += 0.0
            if not math.isnan(float(v)):
                self._sum[k] += float(v)
                self._count[k] += 1

    def pop(self) -> dict[str, float]:
        out = {k: self._sum[k] / self._count[k] if self._count[k] else math.nan for k in self._sum}
        self._sum.clear()
        self._count.clear()
        return out


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends records to the JSON-lines file ``path`` (None: keeps them in memory only)."""

    def __init__(self, path: Path | None):
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        record = {k: _clean(v) for k, v in record.items()}
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop records beyond ``step`` (lines an interrupted run wrote after its last checkpoint)."""
        if self.path is None or not self.path.exists():
            self.records = [r for r in self.records if r.get("step", 0) <= step]
            return
        kept = [r for r in read_metrics(self.path) if r["step"] <= step]
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))  # a kill now loses no line
        self.records = kept


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file: each line that is a JSON object with an integer
    ``step``. Other lines (a torn last line from a crash, bytes that are not UTF-8, a value that is
    not a record) are skipped, so a damaged file never stops a resume or an evaluation."""
    records = []
    for raw in Path(path).read_bytes().splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, int) and not isinstance(step, bool):
            records.append(record)
    return records
