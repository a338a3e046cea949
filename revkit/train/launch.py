"""``revkit run SPEC --nproc N``: start N local training processes, as ``torchrun`` would.

Each process is ``python -m revkit run …`` with the rendezvous variables ``torch.distributed``
reads (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``,
``MASTER_PORT`` a free port), so a ``--nproc`` run and a ``torchrun --standalone --nproc_per_node N
-m revkit run SPEC`` run take the same code path. The children run in their own session; the
launcher forwards SIGINT and SIGTERM to each of them once, so they finish the step, rank 0 writes a
checkpoint, and the launcher exits with their code (130, 143). When a process fails on its own the
others, which would wait for it in a collective, get SIGTERM after a grace period and SIGKILL after
another.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from revkit.errors import RevkitError
from revkit.train.distributed import env_world_size

GRACE_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_failure(codes: list[int | None], order: list[int]) -> int:
    """The exit code to report: the first process that failed by itself, else 0."""
    for rank in order:
        code = codes[rank]
        if code:
            return 128 - code if code < 0 else code  # killed by signal s: Popen gives -s
    return 0


def launch(nproc: int, argv: list[str], grace_s: float = GRACE_S) -> int:
    """Run ``python -m revkit *argv`` in ``nproc`` processes forming one process group.

    Returns:
        0 when every process succeeded, else the code of the first one that failed.

    Raises:
        RevkitError: when called inside a distributed run already.
    """
    if env_world_size() > 1:
        raise RevkitError("--nproc inside a distributed run (WORLD_SIZE is set): use either torchrun or --nproc")
    base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc))
    procs = [
        subprocess.Popen([sys.executable, "-m", "revkit", *argv], start_new_session=True,
                         env=dict(base, RANK=str(r), LOCAL_RANK=str(r), GROUP_RANK="0"))
        for r in range(nproc)
    ]

    def forward(signum: int, frame: FrameType | None) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    order: list[int] = []  # ranks in the order they exited
    codes: list[int | None] = [None] * nproc
    failed_at: float | None = None
    try:
        while len(order) < nproc:
            for r, p in enumerate(procs):
                if codes[r] is None and p.poll() is not None:
                    codes[r] = p.returncode
                    order.append(r)
                    if p.returncode and failed_at is None:
                        failed_at = time.monotonic()
            if failed_at is not None and len(order) < nproc:
                waited = time.monotonic() - failed_at
                for r, p in enumerate(procs):
                    if codes[r] is None:
                        if waited > 2 * grace_s:
                            p.kill()
                        elif waited > grace_s:
                            p.terminate()
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _first_failure(codes, order)
