r"""Data-parallel training over ``torch.distributed``: one process per device, gradients averaged.

A run is distributed when the environment names more than one process (``WORLD_SIZE > 1``, as
``torchrun`` and ``revkit run --nproc N`` set it, with ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``). Then:

* the process group uses **gloo** on CPU and **nccl** on CUDA (each process on ``cuda:LOCAL_RANK``);
* every rank draws the same global batches (``data.batch_size``, same seed, same order as a
  single-process run) and keeps its contiguous share of each: rank :math:`r` of :math:`W` loads only
  rows :math:`[rB/W, (r+1)B/W)` (:class:`ShardedBatchSampler`), so ``data.batch_size`` must be a
  multiple of :math:`W`;
* the model and the objective are updated through one ``DistributedDataParallel`` module
  (:class:`StepModule`), which averages gradients over the ranks. For a loss that is a mean over
  the batch the averaged gradient is the gradient of the global batch's loss, so :math:`W`
  processes take the same steps as one process on the same global batches (up to float rounding).
  Objectives that couple the samples of a batch — minibatch optimal transport matches each rank's
  own share to prior samples — follow the same update rule on smaller minibatches instead;
* data-dependent initialisation runs on the **global** first batch, gathered from every rank
  (:meth:`Distributed.gather`), so actnorm statistics and the class prior's per-class means and stds
  are those of the single-process run; ``DistributedDataParallel`` then broadcasts rank 0's
  parameters and buffers, so every rank starts from identical weights;
* logged losses and metrics are averaged over the ranks; rank 0 alone writes the run folder
  (checkpoints, ``metrics.jsonl``, pictures);
* decisions that every rank must take together (stop on a signal, skip a non-finite step) are
  reduced over the ranks, so no rank waits forever in a collective the others left.

Without those variables, :class:`Distributed` is a single process and every method is a no-op.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import BatchSampler, DataLoader, Sampler

from revkit.errors import RevkitError
from revkit.penalties import clear_penalties, with_penalties

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RevkitError):
    """A problem setting up the process group (environment, backend, batch size)."""


class ReplicatedError(RevkitError):
    """An error every rank raises alike (rank 0's verdict, broadcast); only rank 0 reports it."""

    replicated = True


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from exc


def env_rank() -> int:
    """``RANK`` from the environment (0 when unset)."""
    return int(os.environ.get("RANK", "0") or 0)


def check_batch_size(batch_size: int, world: int) -> None:
    """Refuse a global batch that does not split evenly over ``world`` processes.

    Raises:
        ReplicatedError: (every rank finds it alike, so rank 0 alone reports it).
    """
    if batch_size % world:
        raise ReplicatedError(f"data.batch_size = {batch_size} must be a multiple of the number of "
                              f"processes ({world}): each process takes an equal share of every batch")


class ShardedBatchSampler(Sampler[list[int]]):
    """Rank ``rank``'s contiguous share of each global batch of ``batches``.

    Every rank iterates the same global batch sampler (same generator seed, so the same order), and
    yields rows ``[rank·b, (rank+1)·b)`` of each global batch of size ``b·world``; concatenating the
    ranks' batches in rank order gives the global batch back.
    """

    def __init__(self, batches: BatchSampler, rank: int, world: int):
        check_batch_size(batches.batch_size, world)
        self.batches, self.rank, self.world = batches, int(rank), int(world)
        self.share = batches.batch_size // world

    def __iter__(self) -> Iterator[list[int]]:
        lo, hi = self.rank * self.share, (self.rank + 1) * self.share
        for batch in self.batches:
            yield list(batch)[lo:hi]

    def __len__(self) -> int:
        return len(self.batches)


class StepModule(nn.Module):
    """The flow and the objective as one module whose ``forward`` is one update's losses, so
    ``DistributedDataParallel`` sees every parameter of every group and averages their gradients.
    The ``"model"`` update's loss includes the penalties the flow's blocks recorded in that pass
    (:mod:`revkit.penalties`)."""

    def __init__(self, flow: nn.Module, objective: nn.Module):
        super().__init__()
        self.flow, self.objective = flow, objective

    def forward(self, batch: Any, update: str) -> Any:
        if update != "model":  # only the update that trains the flow pays its blocks' penalties
            return self.objective.losses(self.flow, batch, update=update)
        clear_penalties(self.flow)
        return with_penalties(self.objective.losses(self.flow, batch, update=update), self.flow)


class Distributed:
    """The process group of this run (or a single process).

    Args:
        world: number of processes; 1 for a plain run.
        rank: this process's global rank.
        local_rank: its rank on this machine (selects the CUDA device).
    """

    def __init__(self, world: int = 1, rank: int = 0, local_rank: int = 0):
        self.world, self.rank, self.local_rank = int(world), int(rank), int(local_rank)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- setting up -----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, device: str = "auto") -> Distributed:
        """Join the process group the environment describes (gloo on CPU, nccl on CUDA).

        Raises:
            DistributedError: for missing rendezvous variables or a backend this machine lacks.
        """
        world = env_world_size()
        if world <= 1:
            return cls()
        missing = [v for v in ENV_VARS if v not in os.environ]
        if missing:
            raise DistributedError(f"WORLD_SIZE={world} but {', '.join(missing)} unset; start distributed runs "
                                   "with torchrun or 'revkit run SPEC --nproc N'")
        rank, local_rank = env_rank(), int(os.environ["LOCAL_RANK"])
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            if local_rank >= torch.cuda.device_count():
                raise DistributedError(f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} "
                                       "CUDA device(s); start at most one process per GPU")
            torch.cuda.set_device(local_rank)
        backend = "nccl" if cuda else "gloo"
        if not dist.is_available() or not dist.is_backend_available(backend):
            raise DistributedError(f"torch {torch.__version__} was built without the {backend} backend")
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=dt.timedelta(minutes=30))
        return cls(world, rank, local_rank)

    def device(self, name: str) -> str:
        """The device this rank trains on: ``cuda:LOCAL_RANK`` for CUDA, else ``name``."""
        if self.enabled and name != "cpu" and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return name

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    # -- data -----------------------------------------------------------------------------------
    def shard_loader(self, loader: DataLoader) -> DataLoader:
        """A loader that yields this rank's share of each of ``loader``'s global batches.

        ``loader`` must batch with a ``BatchSampler`` (as ``make_loaders`` does). Its generator (the
        one :class:`~revkit.train.batches.BatchStream` seeds per epoch) drives the shuffle on every rank.
        """
        if not self.enabled:
            return loader
        batches = loader.batch_sampler
        if not isinstance(batches, BatchSampler):
            raise DistributedError("the training loader has no BatchSampler to shard across processes")
        return DataLoader(loader.dataset, batch_sampler=ShardedBatchSampler(batches, self.rank, self.world),
                          num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                          pin_memory=loader.pin_memory, generator=loader.generator,
                          persistent_workers=loader.persistent_workers)

    def gather(self, tensor: Tensor) -> Tensor:
        """The ranks' ``tensor`` (equal shapes) concatenated along dim 0 in rank order."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    # -- the model ------------------------------------------------------------------------------
    def wrap(self, flow: nn.Module, objective: nn.Module, device: torch.device) -> nn.Module:
        """``StepModule(flow, objective)``, in ``DistributedDataParallel`` when distributed.

        An objective with several parameter groups leaves parameters unused in some updates (the
        critic's update leaves the flow alone, phase 1 leaves the critic alone), hence
        ``find_unused_parameters`` for those; a single-group objective must use every parameter in
        each update. Constructing it broadcasts rank 0's parameters and buffers to every rank."""
        step = StepModule(flow, objective)
        if not self.enabled:
            return step
        ids = [device.index] if device.type == "cuda" else None
        groups = objective.update_order() if hasattr(objective, "update_order") else ["model"]
        return nn.parallel.DistributedDataParallel(step, device_ids=ids, find_unused_parameters=len(groups) > 1)

    # -- agreeing -------------------------------------------------------------------------------
    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """Each value averaged over the ranks (every rank must pass the same keys)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def mean_tensor(self, value: Tensor) -> Tensor:
        """A detached scalar averaged over the ranks (non-finite on any rank ⇒ non-finite here)."""
        value = value.detach().to(torch.float64).reshape(1).clone()
        if self.enabled:
            dist.all_reduce(value)
            value /= self.world
        return value[0]

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when ``flag`` is true on any rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def on_main(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` run on rank 0 and its result broadcast; a :class:`RevkitError` there is
        raised on every rank (as :class:`ReplicatedError` elsewhere), so no rank is left waiting."""
        if not self.enabled:
            return fn(*args)
        result: tuple[str, Any] = ("ok", None)
        error: RevkitError | None = None
        if self.is_main:
            try:
                result = ("ok", fn(*args))
            except RevkitError as exc:
                error, result = exc, ("error", str(exc))
        kind, value = self.broadcast(result)
        if error is not None:
            raise error
        if kind == "error":
            raise ReplicatedError(value)
        return value

