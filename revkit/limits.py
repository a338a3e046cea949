"""Bounds shared by spec fields and command-line options, and memory estimates made before allocating.

One definition per kind of value, so that ``revkit sample --temperature`` accepts exactly what
``eval.temperature`` accepts, ``--seed`` what ``train.seed`` accepts and ``-n`` what a sample count in a
spec accepts. A :class:`Bound` gives the pydantic ``Field`` of a spec and the ``type=`` of an argparse
option, with the same message: what was wrong and what is allowed.

Sizes that cannot be bounded tightly in a schema (a generated data set, a sample grid) are estimated
with :func:`check_memory` against the memory this machine has before anything is allocated.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from typing import Any

from revkit.errors import RevkitError

#: the largest seed: NumPy's legacy generator takes seeds below 2**32.
MAX_SEED = 2**32 - 1
#: the largest sampling temperature (the prior's std is multiplied by it).
MAX_TEMPERATURE = 100.0
#: the most samples one picture or evaluation draws (`revkit sample -n`, eval.samples).
MAX_SAMPLES = 100_000
#: the most points a generated data set (toy2d) holds per split.
MAX_GENERATED_POINTS = 10_000_000
#: the largest batch (training or evaluation).
MAX_BATCH = 1_000_000
#: the share of the machine's available memory one allocation may take.
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Bound:
    """A number's type and closed range: one definition for a spec field and a CLI option.

    Args:
        kind: ``int`` or ``float`` (floats must be finite; integers are accepted for floats).
        ge, le: the inclusive bounds (None: unbounded on that side).
    """

    kind: type
    ge: float | None = None
    le: float | None = None

    def field(self, default: Any, description: str) -> Any:
        """The pydantic ``Field`` of a spec for this bound."""
        from pydantic import Field

        return Field(default, ge=self.ge, le=self.le, description=description)

    def allowed(self) -> str:
        """What is allowed, for a message: ``an integer ≥ 1 and ≤ 100,000``."""
        what = "an integer" if self.kind is int else "a finite number"
        parts = [f"≥ {self.ge:,}" if self.ge is not None else "", f"≤ {self.le:,}" if self.le is not None else ""]
        return " and ".join([what + " " + parts[0] if parts[0] else what] + [p for p in parts[1:] if p])

    def check(self, value: float) -> str | None:
        """None when ``value`` is allowed, else what is wrong with it."""
        if self.kind is float and not math.isfinite(value):
            return f"got {value}, which is not finite"
        if (self.ge is not None and value < self.ge) or (self.le is not None and value > self.le):
            return f"got {value:,}" if self.kind is int else f"got {value:g}"
        return None

    def parse(self, text: str) -> Any:
        """The value of a command-line option, or ``argparse.ArgumentTypeError`` saying what is allowed."""
        try:
            value: Any = int(text.strip(), 10) if self.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.allowed().split(' ≥')[0]}; "
                                             f"allowed: {self.allowed()}") from None
        problem = self.check(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}; allowed: {self.allowed()}")
        return value

    def option(self) -> Any:
        """An argparse ``type=`` callable (named after the kind, for argparse's messages)."""
        def parse(text: str) -> Any:
            return self.parse(text)
        parse.__name__ = self.kind.__name__
        return parse


SEED = Bound(int, 0, MAX_SEED)
TEMPERATURE = Bound(float, 0.0, MAX_TEMPERATURE)
SAMPLE_COUNT = Bound(int, 1, MAX_SAMPLES)
SAMPLES_OR_NONE = Bound(int, 0, MAX_SAMPLES)
PROCESSES = Bound(int, 1, 1024)


def available_memory() -> int:
    """Bytes of memory available to this process now (``MemAvailable``, else the physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2**40


def human_bytes(n: float) -> str:
    """``1.5 GiB``, ``320 MiB``, ``12 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(nbytes: float, where: str, what: str) -> None:
    """Refuse an allocation of about ``nbytes`` before it is made, when it exceeds
    :data:`MEMORY_SHARE` of the available memory.

    Raises:
        RevkitError: ``<where>: <what> needs about X; at most Y (half the memory available) is allowed``.
    """
    budget = MEMORY_SHARE * available_memory()
    if nbytes > budget:
        raise RevkitError(f"{where}: {what} needs about {human_bytes(nbytes)} of memory; at most "
                          f"{human_bytes(budget)} ({MEMORY_SHARE:.0%} of the {human_bytes(budget / MEMORY_SHARE)} "
                          f"available) is allowed, so choose a smaller value")
