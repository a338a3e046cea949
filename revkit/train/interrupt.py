"""SIGINT (Ctrl-C) and SIGTERM during training: stop after the current step, checkpoint, exit.

Inside :func:`stop_on_signals` the first SIGINT sets :attr:`StopRequest.reason` to
``"interrupted"`` and the first SIGTERM to ``"terminated"``; each then puts the signal's default
handler back, so a second Ctrl-C raises ``KeyboardInterrupt`` at once (the trainer then abandons
the step) and a second SIGTERM ends the process. The command line exits with ``128 + signal``:
130 after SIGINT, 143 after SIGTERM. Outside the main thread, where handlers cannot be installed,
nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

#: the stop reasons a signal gives, and the signal behind each.
INTERRUPTED, TERMINATED = "interrupted", "terminated"
SIGNALS: dict[str, signal.Signals] = {INTERRUPTED: signal.SIGINT, TERMINATED: signal.SIGTERM}


def exit_code(reason: str) -> int:
    """``128 + signal number`` for a stop caused by a signal (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(SIGNALS[reason])


class StopRequest:
    """Why the training loop should stop at the next step boundary (``None``: keep going)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


@contextmanager
def stop_on_signals(stop: StopRequest, notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """Route the first SIGINT to ``stop.request("interrupted")`` and the first SIGTERM to
    ``stop.request("terminated")`` while the block runs; restore the previous handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {reason: signal.getsignal(sig) for reason, sig in SIGNALS.items()}
    defaults = {INTERRUPTED: signal.default_int_handler, TERMINATED: signal.SIG_DFL}

    def handler(signum: int, frame: FrameType | None) -> None:
        reason = INTERRUPTED if signum == signal.SIGINT else TERMINATED
        stop.request(reason)
        signal.signal(signum, defaults[reason])
        if notify is not None:
            again = "Ctrl-C again" if reason == INTERRUPTED else "a second SIGTERM"
            notify(f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                   f"({again} to abort now)")

    for sig in SIGNALS.values():
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for reason, sig in SIGNALS.items():
            signal.signal(sig, previous[reason])
