r"""The training loop: optimizers per parameter group, schedules, clipping, logging, checkpoints.

One *step* runs the updates the objective names for it, in order; for each group ``g`` of
``objective.updates_at(step)`` (by default ``objective.update_order()``; objectives with phases or
several critic updates per step return other lists):

1. zero ``g``'s gradients,
2. ``out = objective.losses(model, batch, update=g)`` (through ``DistributedDataParallel`` when
   several processes train, see :mod:`revkit.train.distributed`),
3. if the loss (averaged over the processes) is NaN or infinite: stop or skip (below); else
   ``out.loss.backward()``,
4. if ``g``'s global gradient norm is not finite: stop or skip; else clip ``g``'s gradients to
   global norm ``grad_clip`` (when > 0),
5. step ``g``'s Adam optimizer, then ``model.prior.after_step()`` (constraints such as std ≥ 0),

and then every group's learning-rate schedule advances by one.

A non-finite loss or gradient never reaches the parameters. With ``train.on_nonfinite = "stop"``
(the default) the trainer re-runs the update with forward hooks to name the first module whose
output went non-finite (:mod:`revkit.train.divergence`) and raises :class:`TrainingDiverged`; no
checkpoint is written, so the last good one stays ``latest``. With ``"skip"`` the update is left
out, the step still counts, and ``skipped_updates`` (in ``metrics.jsonl``, the checkpoint and
``metrics.json``) counts the updates skipped so far. Before the first step of a fresh run
the trainer runs one forward pass over a training batch in train mode (data-dependent
initialisation such as actnorm's, through :meth:`~revkit.model.Model.latent`) and calls
``model.prior.init_from_data(z, y)`` with its encodings; after the last step (training completed or
its time limit reached) a prior with ``fit_samples > 0`` is fitted to the encodings of that many
training examples (``model.prior.fit_to_data``) before the final checkpoint. The model is any :class:`~revkit.model.Model`;
the checkpoint keeps its weights under the key ``flow`` (the format predates model kinds).

Logged names: the first group's loss is ``loss`` and its metrics keep their names; a later group
``g`` logs ``g_loss`` and ``g_<metric>``; likewise ``lr`` and ``g_lr``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import torch

from revkit.errors import CheckpointError, RevkitError
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.runtime.device import resolve_device, to_device
from revkit.runtime.seeding import rng_state, seed_everything, set_rng_state
from revkit.train.averaging import WeightAverage
from revkit.train.batches import BatchStream
from revkit.train.compiled import compile_model
from revkit.train.distributed import Distributed
from revkit.train.divergence import first_nonfinite_output, nonfinite_gradients
from revkit.train.interrupt import INTERRUPTED, TERMINATED, StopRequest, stop_on_signals
from revkit.train.metrics import MetricsLog, WindowMeans
from revkit.train.optimizers import make_optimizers
from revkit.train.precision import forward_precision
from revkit.train.progress import Progress
from revkit.train.schedule import make_scheduler
from revkit.train.settings import TrainSettings

#: why a call to :meth:`Trainer.fit` returned (also ``INTERRUPTED`` and ``TERMINATED``: a signal).
COMPLETED, TIME_LIMIT = "completed", "time_limit"
#: checkpoints kept when ``train.keep_checkpoints`` is absent from the settings.
KEEP_LAST = 3
__all__ = ["COMPLETED", "INTERRUPTED", "TERMINATED", "TIME_LIMIT", "Evaluate", "OnRecord", "RunFiles", "TrainResult",
           "Trainer", "TrainingDiverged"]


class RunFiles(Protocol):
    """Where the trainer writes (the run layer's :class:`~revkit.runs.RunFolder` is one): the metrics
    log it appends a line to per logged step, and the checkpoint store."""

    @property
    def metrics_log(self) -> Path: ...

    def save_checkpoint(self, state: dict[str, Any], keep: int) -> Path: ...


#: evaluation during training (``train.eval_every``): the model's test metrics on ``device``.
Evaluate = Callable[[torch.device], dict[str, float]]
#: receives every record the trainer logs, right after it is written (the run layer's experiment loggers).
OnRecord = Callable[[dict[str, Any]], None]


class TrainingDiverged(RevkitError):
    """A loss or gradient became NaN or infinite (every process raises it alike; the command line
    exits with code 3)."""

    replicated = True
    exit_code = 3


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s random draws after initialisation (rank 0 keeps ``seed``)."""
    return int(seed) if rank == 0 else (int(seed) * 1_000_003 + 104_729 * int(rank)) % (2**63 - 1)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did.

    Attributes:
        step: optimizer steps taken in total (including those before a resume).
        stopped: ``"completed"``, ``"time_limit"``, ``"interrupted"`` (SIGINT) or ``"terminated"`` (SIGTERM).
        seconds: wall-clock training time in total (including time before a resume).
        last: the last logged record.
        checkpoint: the checkpoint written last, if any.
    """

    step: int
    stopped: str
    seconds: float
    last: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None


class Trainer:
    """Trains ``model`` (with its prior) under ``objective``.

    Args:
        model: the model (:class:`~revkit.model.Model`); moved to the device.
        objective: the losses and parameter groups; moved to the device.
        train_loader: re-iterable ``(x, y)`` batches (a ``DataLoader``).
        settings: the ``[train]`` table.
        evaluate: evaluation during training (``eval_every``): returns test metrics, logged as
            ``test_<name>``; None: no evaluation during training.
        files: where the metrics log and the checkpoints go (None: nothing is written; pass None
            on every process but rank 0).
        spec_text: the spec as run, stored in every checkpoint.
        progress_stream: where progress goes (stderr by default; nowhere on ranks other than 0).
        dist: the process group (default: a single process); the trainer shards ``train_loader``.
        on_record: called with every record written to the metrics log (training steps and evaluations;
            rank 0 only), e.g. the run's experiment loggers.
    """

    def __init__(
        self,
        model: Model,
        objective: Objective,
        train_loader: Iterable[Any],
        settings: TrainSettings,
        *,
        evaluate: Evaluate | None = None,
        files: RunFiles | None = None,
        spec_text: str = "",
        progress_stream: TextIO | None = None,
        dist: Distributed | None = None,
        on_record: OnRecord | None = None,
    ):
        self.settings = settings
        self.dist = dist or Distributed()
        self.device = resolve_device(self.dist.device(settings.device))
        self.model = model.to(self.device)
        if getattr(settings, "compile", False):
            compile_model(self.model)
        self.objective = objective.to(self.device)
        self.evaluate = evaluate
        self.files = files
        self.spec_text = spec_text
        self.progress_stream = progress_stream if self.dist.is_main else open(os.devnull, "w")  # noqa: SIM115
        self.order = list(objective.update_order())
        self.optimizers, self.group_settings = make_optimizers(self.model, self.objective, settings)
        self.schedulers = {g: make_scheduler(opt, settings) for g, opt in self.optimizers.items()}
        self.precision = str(getattr(settings, "precision", "float32"))
        forward_precision(self.precision, self.device)  # an unknown precision fails here, not at the first step
        decay = float(getattr(settings, "ema_decay", 0.0) or 0.0)
        #: the weights' moving average (``train.ema_decay > 0``), else None.
        self.average = WeightAverage({"flow": self.model, "objective": self.objective}, decay) if decay > 0 else None
        #: the live (not averaged) weights, kept once the average was put into the model at the end of training.
        self._live: dict[str, Any] | None = None
        self.stream = BatchStream(self.dist.shard_loader(train_loader), settings.seed)  # type: ignore[arg-type]
        self.keep = int(getattr(settings, "keep_checkpoints", KEEP_LAST))
        self.on_nonfinite = str(getattr(settings, "on_nonfinite", "stop"))
        self.skipped = 0  # updates skipped for a non-finite loss or gradient, over the whole run
        self._step_module: torch.nn.Module | None = None
        self.metrics = MetricsLog(None if files is None else files.metrics_log)
        self.on_record = on_record if self.dist.is_main else None
        self.step = 0
        self.elapsed = 0.0  # training seconds before this process (from a checkpoint)
        self.initialized = False
        self.stop = StopRequest()
        self.last_checkpoint: Path | None = None
        self.saved_step = -1

    # -- names ------------------------------------------------------------------------------
    def _prefix(self, group: str) -> str:
        return "" if group == self.order[0] else f"{group}_"

    # -- one step ---------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self) -> None:
        """Data-dependent initialisation: a forward pass in train mode on the first training batch
        (actnorm and the like), then ``model.prior.init_from_data`` on encodings of at least
        ``prior.init_samples`` training examples (the first batch's when it asks for fewer)."""
        batch = to_device(self.stream.peek(), self.device)
        # every rank initialises on the global batch; entries after (x, y) (a second domain's images and
        # labels) go to the model too, so that every network it holds is initialised
        x, y, *extra = (self.dist.gather(t) if isinstance(t, torch.Tensor) else t for t in batch)
        self.model.train()
        z = self.model.latent(x, y, *extra)
        prior = self.model.prior
        if prior is not None:
            z, y = self._encodings(int(getattr(prior, "init_samples", 0)), z, y)
            prior.init_from_data(z, y)
        self.initialized = True

    @torch.no_grad()
    def _encodings(self, wanted: int, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodings of ``wanted`` training examples (at least the first batch's), in eval mode,
        drawn in a seeded order that leaves the training stream's order unchanged."""
        if wanted <= z.shape[0]:
            return z, y
        codes, labels, count = [], [], 0
        self.model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.settings.seed)
            for batch in self.stream.loader:
                bx, by = to_device(batch, self.device)[:2]
                bx, by = self.dist.gather(bx), self.dist.gather(by)
                codes.append(self.model.latent(bx, by))
                labels.append(by)
                count += bx.shape[0]
                if count >= wanted:
                    break
        self.model.train()
        return torch.cat(codes)[:wanted], torch.cat(labels)[:wanted]

    @property
    def step_module(self) -> torch.nn.Module:
        """The model and objective as one module (in ``DistributedDataParallel`` across processes),
        built on first use: after initialisation or a restore, whose weights it then shares."""
        if self._step_module is None:
            self._step_module = self.dist.wrap(self.model, self.objective, self.device)
        return self._step_module

    def train_step(self, batch: Any) -> dict[str, float]:
        """Run every update of one step on ``batch`` (this process's share of the global batch);
        returns the losses and metrics by logged name, averaged over the processes."""
        self.model.train()
        self.objective.train()
        # per-sample noise (dequantization) keyed on the global step and sample index, not the rank
        self.objective.begin_step(int(self.settings.seed), self.step, self.dist.rank * len(batch[0]))
        values: dict[str, float] = {}
        for group in self.objective.updates_at(self.step):
            optimizer = self.optimizers[group]
            params = [p for pg in optimizer.param_groups for p in pg["params"]]
            optimizer.zero_grad(set_to_none=True)
            with forward_precision(self.precision, self.device):
                out = self.step_module(batch, group)
            loss = self.dist.mean_tensor(out.loss)
            if not bool(torch.isfinite(loss)):
                self._nonfinite(group, batch, f"the {group!r} loss is {float(loss)}")
                continue
            out.loss.backward()
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            if not bool(torch.isfinite(norm)):
                self._nonfinite(group, batch, f"the {group!r} gradient norm is {float(norm)}")
                optimizer.zero_grad(set_to_none=True)
                continue
            clip = self.group_settings[group]["grad_clip"]
            if clip > 0:
                torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
            optimizer.step()
            if self.model.prior is not None:
                self.model.prior.after_step()
            prefix = self._prefix(group)
            values[f"{prefix}loss"] = float(loss)
            values.update({f"{prefix}{k}": float(v) for k, v in out.metrics.items()})
        with warnings.catch_warnings():
            # a group that sat this step out (a phase without the critic) still follows the schedule
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for scheduler in self.schedulers.values():
                scheduler.step()
        if self.average is not None:
            self.average.update()
        return self.dist.mean(values, self.device)

    def _nonfinite(self, group: str, batch: Any, what: str) -> None:
        """Skip the update (``on_nonfinite = "skip"``) or raise :class:`TrainingDiverged` naming where
        the values first went non-finite (every process takes the same decision: the loss and the
        gradients it tests are averaged over the processes)."""
        if self.on_nonfinite == "skip":
            self.skipped += 1
            return
        if "gradient" in what:  # the forward pass was finite: name the parameters instead
            mine = {id(p) for pg in self.optimizers[group].param_groups for p in pg["params"]}
            named = [*self.model.named_parameters(prefix="flow"), *self.objective.named_parameters(prefix="objective")]
            bad = nonfinite_gradients((n, p) for n, p in named if id(p) in mine)
            where = f"first non-finite gradients: {', '.join(bad)}" if bad else _largest_gradient(
                [(n, p) for n, p in named if id(p) in mine and p.grad is not None])
        else:
            where = first_nonfinite_output(self.model, self.objective, batch, group)
        if self.dist.enabled:
            found = self.dist.all_objects(where)
            where = next((f"{w} (rank {r})" for r, w in enumerate(found) if "went non-finite" in w),
                         f"{found[0]} (rank 0)")
        kept = f"the last good checkpoint {self.last_checkpoint} is kept" if self.last_checkpoint else \
            "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged at step {self.step + 1}: {what}; {where}; {kept}; try a lower train.lr "
            f"(now {self.group_settings[group]['lr']:g}), train.grad_clip > 0, train.warmup_steps, or "
            "train.on_nonfinite = 'skip'")

    def current_lrs(self) -> dict[str, float]:
        return {f"{self._prefix(g)}lr": opt.param_groups[0]["lr"] for g, opt in self.optimizers.items()}

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until ``settings.steps`` (or the time limit, or Ctrl-C), then save a checkpoint.

        A fresh run (step 0) re-seeds every generator from ``train.seed`` and runs the
        data-dependent initialisation; a run restored with :meth:`restore` continues where its
        checkpoint left off.
        """
        total = int(self.settings.steps)
        if self.step == 0 and not self.initialized:
            seed_everything(self.settings.seed)
            self.initialize()
            if self.dist.rank > 0:  # each process its own random draws (noise, prior samples)
                seed_everything(rank_seed(self.settings.seed, self.dist.rank))
        started = time.monotonic()
        limit = float(self.settings.time_limit_minutes) * 60.0
        log_every = max(1, int(self.settings.log_every))
        progress = Progress(total, self.step, log_every, self.progress_stream)
        window, window_images, window_start = WindowMeans(), 0, time.monotonic()
        rate, last_tick = 0.0, time.monotonic()
        stopped, abandoned = COMPLETED, False
        try:
            with stop_on_signals(self.stop, progress.message):
                while self.step < total:
                    reason = self.stop.reason
                    if reason is None and limit > 0 and time.monotonic() - started >= limit:
                        reason = TIME_LIMIT
                    if self.dist.any(reason is not None, self.device):  # every process stops together
                        reasons = [r for r in self.dist.all_objects(reason) if r is not None]
                        stopped = next((r for r in reasons if r != TIME_LIMIT), TIME_LIMIT)
                        if stopped == TIME_LIMIT:
                            progress.message(f"time limit of {self.settings.time_limit_minutes:g} min reached "
                                             f"at step {self.step}")
                        break
                    batch = to_device(self.stream.next_batch(), self.device)
                    values = self.train_step(batch)
                    self.step += 1
                    images = int(batch[0].shape[0]) * self.dist.world
                    window.add(values)
                    window_images += images
                    now = time.monotonic()
                    rate = images / max(now - last_tick, 1e-9) if rate == 0 else \
                        0.9 * rate + 0.1 * images / max(now - last_tick, 1e-9)
                    last_tick = now
                    progress.update(self.step, values.get("loss", next(iter(values.values()), float("nan"))), rate)
                    if self.step % log_every == 0 or self.step == total:
                        record = {"step": self.step, **window.pop(), **self.current_lrs(),
                                  "images_per_s": window_images / max(now - window_start, 1e-9),
                                  "time": self.elapsed + now - started}
                        if self.on_nonfinite == "skip":
                            record["skipped_updates"] = self.skipped
                        self.write_record(record)
                        progress.log(self.step, record)
                        window_images, window_start = 0, now
                    if self.settings.eval_every and self.step % int(self.settings.eval_every) == 0:
                        self.evaluate_during_training(started)
                    if self.settings.checkpoint_every and self.step % int(self.settings.checkpoint_every) == 0:
                        self.save(self.elapsed + time.monotonic() - started)
                if stopped in (COMPLETED, TIME_LIMIT) and self.use_average():
                    self.saved_step = -1  # the averaged weights belong in the last checkpoint
                if stopped in (COMPLETED, TIME_LIMIT) and self.fit_prior(progress.message):
                    self.saved_step = -1  # the fitted prior belongs in the last checkpoint
        except KeyboardInterrupt:
            # a second Ctrl-C: the step in flight is abandoned half done, so the parameters and
            # optimizer states may not belong to any step: keep the last checkpoint, write none
            stopped, abandoned = INTERRUPTED, True
        finally:
            progress.close()
        seconds = self.elapsed + time.monotonic() - started
        if self.saved_step != self.step and not abandoned:
            self.save(seconds)
        last = self.metrics.records[-1] if self.metrics.records else {}
        return TrainResult(self.step, stopped, seconds, dict(last), self.last_checkpoint)

    def use_average(self) -> bool:
        """At the end of training: put the weights' moving average into the model and objective (they are
        the trained model from now on: evaluation, the last checkpoint, ``revkit.load_run``), keeping the
        live weights for a later resume; returns whether there is an average to use."""
        if self.average is None or self._live is not None:
            return False
        self._live = copy.deepcopy({"flow": self.model.state_dict(), "objective": self.objective.state_dict()})
        self.average.copy_to()
        return True

    @torch.no_grad()
    def fit_prior(self, say: Callable[[str], None]) -> bool:
        """After the last step: ``model.prior.fit_to_data`` on encodings of ``prior.fit_samples`` training
        examples (seeded, the same on every process); returns whether the prior asked for it."""
        prior = self.model.prior
        wanted = int(getattr(prior, "fit_samples", 0) or 0) if prior is not None else 0
        if prior is None or wanted <= 0:
            return False
        say(f"fitting the prior to the encodings of {wanted:,} training examples")
        empty = torch.empty(0, device=self.device)
        z, y = self._encodings(wanted, empty, empty.long())
        prior.fit_to_data(z, y)
        return True

    def evaluate_during_training(self, started: float) -> None:
        if self.evaluate is None or not self.dist.is_main:
            return
        with self.average.applied() if self.average is not None else contextlib.nullcontext():
            means = self.evaluate(self.device)
        self.write_record({"step": self.step, **{f"test_{k}": v for k, v in means.items()},
                           "time": self.elapsed + time.monotonic() - started})

    def write_record(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the metrics log, then hand it to ``on_record``."""
        self.metrics.write(record)
        if self.on_record is not None:
            self.on_record(self.metrics.records[-1])

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self, seconds: float | None = None) -> dict[str, Any]:
        """Everything a resumed run needs, as plain data.

        With a weight average: ``average`` holds it; once training ended and the average was put into the
        model (so ``flow`` and ``objective`` hold it), ``live`` holds the weights training would go on from."""
        state = {
            "step": self.step,
            "flow": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizers": {g: opt.state_dict() for g, opt in self.optimizers.items()},
            "schedulers": {g: s.state_dict() for g, s in self.schedulers.items()},
            "rng": rng_state(),
            "data": self.stream.state_dict(),
            "elapsed": float(self.elapsed if seconds is None else seconds),
            "spec": self.spec_text,
            "skipped_updates": self.skipped,
        }
        if self.average is not None:
            state["average"] = self.average.state_dict()
        if self._live is not None:
            state["live"] = self._live
        return state

    def save(self, seconds: float | None = None) -> Path | None:
        """Write a checkpoint of the current step to the run's files (if there are any).

        Across processes every rank calls this at the same step: the ranks' random states are
        gathered into ``rng_ranks`` and rank 0 writes the file."""
        state = self.state_dict(seconds)
        if self.dist.enabled:
            state["rng_ranks"] = self.dist.all_objects(state["rng"])
        self.saved_step = self.step
        if self.files is None:
            return None
        self.last_checkpoint = self.files.save_checkpoint(state, keep=self.keep)
        return self.last_checkpoint

    def load_state_dict(self, state: dict[str, Any], source: Path | str = "checkpoint") -> None:
        """Restore from :meth:`state_dict`'s output.

        Raises:
            CheckpointError: naming ``source`` when the checkpoint belongs to a different model,
                objective or set of parameter groups.
        """
        live = state.get("live") or {}
        try:
            self.model.load_state_dict(live.get("flow", state["flow"]))
            self.objective.load_state_dict(live.get("objective", state["objective"]))
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise CheckpointError(f"{source}: was saved from a different model than this spec builds "
                                  f"({detail[:400]})") from exc
        if sorted(state["optimizers"]) != sorted(self.optimizers):
            raise CheckpointError(f"{source}: has optimizers for groups {sorted(state['optimizers'])}, but "
                                  f"this objective updates {sorted(self.optimizers)}")
        try:
            for group, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][group])
                self.schedulers[group].load_state_dict(state["schedulers"][group])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{source}: optimizer state does not fit this model ({exc})") from exc
        self._live = None
        if self.average is not None:
            if "average" not in state:
                raise CheckpointError(f"{source}: has no weight average, but train.ema_decay = {self.average.decay:g} "
                                      "asks for one (resume with the spec the run was started with)")
            try:
                self.average.load_state_dict(state["average"])
            except ValueError as exc:
                raise CheckpointError(f"{source}: {exc}") from exc
        self.step = self.saved_step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.skipped = int(state.get("skipped_updates", 0))
        self.initialized = True
        self.metrics.truncate_after(self.step)
        self.stream.load_state_dict(state["data"])  # replays batches: restore the generators after it
        ranks = state.get("rng_ranks") or []
        if self.dist.enabled and len(ranks) == self.dist.world:
            set_rng_state(ranks[self.dist.rank])
        else:
            set_rng_state(state["rng"])
            if self.dist.rank > 0:  # saved by another number of processes: fresh draws for this rank
                seed_everything(rank_seed(self.settings.seed + self.step, self.dist.rank))


def _largest_gradient(named: list[tuple[str, Any]]) -> str:
    """Where a gradient norm overflowed although every gradient entry is finite: the largest entry
    (the data or the learning rate is far out of scale)."""
    if not named:
        return "no parameter has a gradient"
    name, value = max(((n, float(p.grad.detach().abs().max())) for n, p in named if p.grad.numel()),
                      key=lambda item: item[1], default=("?", 0.0))
    return (f"every gradient entry is finite but their norm overflows (largest entry {value:.3g}, in {name}); "
            "is the data far out of scale?")
