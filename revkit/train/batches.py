"""An endless, resumable stream of training batches drawn epoch after epoch from a loader.

The shuffle order of epoch ``e`` depends only on ``(seed, e)``: before each epoch the stream seeds
the loader's generator (or, for a loader without one, the global torch generator while the epoch's
first batch is drawn). Its position ``(epoch, index)`` goes into checkpoints, and a resumed stream
replays the batches of the current epoch up to ``index`` so it continues with the very batch the
interrupted run would have seen next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from revkit.errors import DataError

Batch = Any


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch (a fixed mix of the run seed and the epoch number)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1)


class BatchStream:
    """``next_batch()`` forever; ``peek()`` shows the next batch without consuming it.

    Args:
        loader: a re-iterable loader (a ``torch.utils.data.DataLoader``).
        seed: the run seed (``train.seed``).
    """

    def __init__(self, loader: Iterable[Batch], seed: int):
        self.loader = loader
        self.seed = int(seed)
        self.epoch = 0
        self.index = 0  # batches of the current epoch already consumed
        self._it: Iterator[Batch] | None = None
        self._pending: Batch | None = None

    # -- position ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Move to ``state``'s position, replaying the current epoch's first ``index`` batches."""
        self.epoch, self.index = int(state["epoch"]), 0
        self._it, self._pending = None, None
        for _ in range(int(state["index"])):
            self.next_batch()

    # -- batches ----------------------------------------------------------------------------
    def peek(self) -> Batch:
        if self._pending is None:
            self._pending = self._draw()
        return self._pending

    def next_batch(self) -> Batch:
        batch = self.peek()
        self._pending = None
        self.index += 1
        return batch

    def _draw(self) -> Batch:
        if self._it is not None:
            try:
                return next(self._it)
            except StopIteration:
                self.epoch, self.index = self.epoch + 1, 0
        first = self._start_epoch()
        if first is None:
            raise DataError("the training split yielded no batches (is it empty, or smaller than one "
                            "batch with drop_last?)")
        return first

    def _start_epoch(self) -> Batch | None:
        seed = epoch_seed(self.seed, self.epoch)
        generator = getattr(self.loader, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(seed)
            self._it = iter(self.loader)
            return next(self._it, None)
        # No private generator: the sampler draws its seed from the global generator on the first
        # batch, so fix it for that draw only and leave the global stream as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._it = iter(self.loader)
            return next(self._it, None)
