"""Shared pieces of the benchmarks: timing, memory, tables, the machine, synthetic batches.

Every benchmark prints medians with a spread (the interquartile range over repeated runs) and
computes its ratios from figures measured in the same invocation. Run them on a quiet machine:
another busy process on the same cores changes the numbers more than most optimisations do.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    """Seconds per call over repeated calls: median and interquartile range."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> tuple[float, float]:
        if len(self.samples) < 4:
            return min(self.samples), max(self.samples)
        q = statistics.quantiles(self.samples, n=4)
        return q[0], q[2]

    def ms(self) -> str:
        """``median [q1–q3]`` in milliseconds."""
        lo, hi = self.iqr
        return f"{self.median * 1e3:.1f} [{lo * 1e3:.1f}–{hi * 1e3:.1f}]"


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1,
               device: torch.device | str = "cpu") -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times, each timed on its own."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return Timing(samples)


# -- memory ------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux)."""
    return _status_kb("VmRSS") / 1024


def reset_peak_rss() -> None:
    """Reset this process's peak resident set size (``VmHWM``) to its current size (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    """Peak resident set size since the last :func:`reset_peak_rss`, in MiB (Linux)."""
    return _status_kb("VmHWM") / 1024


#: environment for child processes that measure memory: glibc returns freed blocks above 64 KiB
#: to the system at once, so the resident size follows the live tensors instead of the heap's
#: high-water mark.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


def run_child(script: Path, args: Sequence[str], threads: int, malloc: bool = True) -> dict[str, object]:
    """Run ``script ARGS`` in a fresh interpreter (with :data:`MALLOC_ENV` when ``malloc``) and
    return the JSON it prints last."""
    env = {**os.environ, **(MALLOC_ENV if malloc else {}), "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- tables ------------------------------------------------------------------------------------
def fmt(value: object) -> str:
    """A table cell: floats to 4 significant digits, a missing value as —."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """A plain-text (aligned) or Markdown table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*cells[0]), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in cells[1:]]
    return "\n".join(lines)


def machine() -> str:
    """One line describing the machine and the software versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = f"{names[0]} ({len(names)} logical cores)"
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{time.strftime('%Y-%m-%d')}; {cpu}{gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; Python {platform.python_version()}")


def dump(path: str | None, payload: dict[str, object]) -> None:
    """Write ``payload`` as JSON to ``path`` (when given) for later comparison."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
