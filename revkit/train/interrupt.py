"""Ctrl-C during training: the first one asks the loop to stop after the current step.

Inside :func:`stop_on_sigint` the first SIGINT sets :attr:`StopRequest.reason` to
``"interrupted"`` and puts Python's default handler back, so a second Ctrl-C raises
``KeyboardInterrupt`` at once (the trainer then abandons the step). Outside the main thread,
where handlers cannot be installed, nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class StopRequest:
    """Why the training loop should stop at the next step boundary (``None``: keep going)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


@contextmanager
def stop_on_sigint(stop: StopRequest, notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """Route the first SIGINT to ``stop.request("interrupted")`` while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.request("interrupted")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if notify is not None:
            notify("interrupt: stopping after this step and saving a checkpoint (Ctrl-C again to abort now)")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
