"""Progress of a long phase (evaluation over the test split, training the scoring classifier, feature
extraction): a tqdm bar with its rate and the time left in a terminal; elsewhere (logs, pipes) one line
when the phase ends, with how much was done, how long it took and the rate.

    for batch in phase(loader, "evaluating the test split", unit="batch"):
        ...

    with Phase("training the MNIST classifier", total=steps, unit="step") as bar:
        for _ in range(steps):
            ...
            bar.update()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class Phase:
    """One long phase: a bar in a terminal, one summary line elsewhere (``quiet``: nothing at all).

    Args:
        what: the phase, as the start of a sentence (``"evaluating the test split"``).
        total: how many units the phase has (None when unknown: no time left is estimated).
        unit: the unit counted (``"batch"``, ``"step"``, ``"image"``).
        stream: where to write (stderr by default).
        quiet: write nothing (a phase inside another one's bar).
    """

    def __init__(self, what: str, total: int | None = None, unit: str = "it", stream: TextIO | None = None,
                 quiet: bool = False) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.done = 0
        self.started = time.monotonic()
        self._bar: tqdm | None = None
        if not quiet and _is_terminal(self.stream):
            self._bar = tqdm(total=total, desc=what, unit=unit, file=self.stream, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """End the phase: the bar goes, one line stays."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.quiet:
            return
        seconds = time.monotonic() - self.started
        rate = self.done / seconds if seconds > 0 else 0.0
        plural = "" if self.done == 1 else ("es" if self.unit.endswith(("s", "ch")) else "s")
        print(f"{self.what}: {self.done} {self.unit}{plural} in {seconds:.1f} s ({rate:.3g} {self.unit}/s)",
              file=self.stream, flush=True)
        self.quiet = True  # closing twice writes one line

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
        elif self._bar is not None:
            self._bar.close()
            self._bar = None


def phase(items: Iterable[T], what: str, total: int | None = None, unit: str = "it", stream: TextIO | None = None,
          quiet: bool = False) -> Iterator[T]:
    """Iterate over ``items`` as one :class:`Phase` (``total`` defaults to ``len(items)`` when it has one)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Phase(what, total, unit, stream, quiet) as bar:
        for item in items:
            yield item
            bar.update()
