"""Progress on stderr: a tqdm bar in a terminal, a plain line every ``log_every`` steps elsewhere."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class Progress:
    """Shows training progress.

    Args:
        total: the last step of the run (``train.steps``).
        initial: the step training starts from (non-zero when resuming).
        log_every: how often a plain line is printed when ``stream`` is not a terminal.
        stream: where to write (stderr by default).
        bar: force the tqdm bar on or off (default: on when ``stream`` is a terminal).
    """

    def __init__(self, total: int, initial: int = 0, log_every: int = 50, stream: TextIO | None = None,
                 bar: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = int(total)
        self.log_every = max(1, int(log_every))
        use_bar = bar if bar is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = (
            tqdm(total=self.total, initial=int(initial), file=self.stream, dynamic_ncols=True, unit="step")
            if use_bar else None
        )

    def update(self, step: int, loss: float, images_per_s: float) -> None:
        """Called after every step with the latest loss and throughput."""
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix(loss=_fmt(loss), img_s=f"{images_per_s:.1f}", refresh=False)

    def log(self, step: int, values: dict[str, float]) -> None:
        """Called every ``log_every`` steps with the window's means (plain-line mode prints them)."""
        if self._bar is not None:
            return
        parts = [f"step {step}/{self.total}"]
        parts += [f"{k} {_fmt(v)}" for k, v in values.items() if k not in ("step", "time")]
        print("  ".join(parts), file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
