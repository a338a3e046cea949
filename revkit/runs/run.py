"""Running a spec: run folder, build, train (or resume), final evaluation, ``metrics.json``.

This is what ``revkit run`` calls; it sits above the builder, the data loaders, the trainer and
the evaluation, which never import each other: it hands the trainer the run folder
(:class:`~revkit.runs.folder.RunFolder`, for the metrics log and the checkpoints) and the evaluation
during training as a function, and the final evaluation the folder to draw its pictures into. Under ``torchrun`` (or ``revkit run --nproc N``) every process calls it: rank 0
chooses and writes the run folder, loads the checkpoint to resume and broadcasts it, and alone runs
the final evaluation; the others train their share of each batch and return without metrics.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from revkit.build import build
from revkit.data.loaders import make_loaders
from revkit.errors import CheckpointError
from revkit.eval.likelihood import evaluate_split
from revkit.eval.report import check_before_training, evaluate_run, evaluation_pictures, objective_histograms, output_files
from revkit.loggers import LoggerGroup
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.plugins import get_registries
from revkit.runs.folder import RunFolder, choose_run_folder
from revkit.runs.page import write_run_page
from revkit.runtime.seeding import seed_everything
from revkit.spec import Spec
from revkit.summary import parameter_count
from revkit.train.distributed import Distributed, check_batch_size
from revkit.train.interrupt import INTERRUPTED, TERMINATED
from revkit.train.metrics import read_metrics
from revkit.train.trainer import TIME_LIMIT, Evaluate, Trainer, TrainResult

#: spec sections that decide the model a checkpoint belongs to.
MODEL_SECTIONS = ("model", "prior", "objective")


@dataclass
class RunOutcome:
    """The run folder, how training ended, and the final metrics (None when stopped by a signal,
    and on every process but rank 0)."""

    run_dir: Path
    result: TrainResult
    metrics: dict[str, Any] | None


def _without(table: Any, key: str) -> Any:
    """``table`` without ``key``, also inside its lists of tables (``[[model.layers]]``)."""
    if isinstance(table, dict):
        return {k: _without(v, key) for k, v in table.items() if k != key}
    if isinstance(table, list):
        return [_without(v, key) for v in table]
    return table


def check_same_model(stored_spec: str, spec: Spec, source: Path) -> None:
    """Refuse to resume a checkpoint whose spec describes another model.

    Raises:
        CheckpointError: naming ``source`` and the first section that differs.
    """
    try:
        stored = tomllib.loads(stored_spec)
    except tomllib.TOMLDecodeError as exc:
        raise CheckpointError(f"{source}: the spec stored in the checkpoint is not valid TOML ({exc})") from exc
    current = spec.to_dict()
    for section in MODEL_SECTIONS:
        # memory-saving execution changes how gradients are computed, not the model
        if _without(stored.get(section), "memory_saving") != _without(current.get(section), "memory_saving"):
            raise CheckpointError(
                f"{source}: was trained with a different [{section}] than this spec gives; resume with "
                f"the run's own spec.toml, or start a new run"
            )


def _quiet(text: str) -> None:
    """Status lines of ranks other than 0 go nowhere."""


def resumable_state(folder: RunFolder, spec: Spec) -> tuple[Path, dict[str, Any]]:
    """The latest checkpoint of ``folder`` and its contents, checked against ``spec``.

    Raises:
        CheckpointError: no checkpoint, an unreadable one, or one of another model.
    """
    path, state = folder.load_latest()
    check_same_model(str(state["spec"]), spec, path)
    return path, state


def evaluation_during_training(model: Model, objective: Objective, loader: Any, batches: int,
                               then: Callable[[torch.device], None] | None = None) -> Evaluate:
    """The trainer's evaluation during training: the objective's test metrics (means over ``batches``
    test batches; 0: the whole split); ``then(device)`` runs after each (the loggers' pictures)."""

    def evaluate(device: torch.device) -> dict[str, float]:
        means = evaluate_split(model, objective, loader, device, batches, what="evaluating during training")[0]
        if then is not None:
            then(device)
        return means

    return evaluate


def open_loggers(spec: Spec, folder: RunFolder, dist: Distributed, say: Callable[[str], None]) -> LoggerGroup:
    """The spec's experiment loggers, started on rank 0 (an empty group elsewhere and when it names none).

    Raises:
        LoggerError: naming a logger that cannot start (on every rank).
    """
    specs = list(spec.output.loggers)
    if not specs:
        return LoggerGroup()
    opened: dict[str, LoggerGroup] = {}

    def start() -> None:
        opened["group"] = LoggerGroup.open(specs, get_registries(), folder.path, spec.to_dict(), spec.to_toml(),
                                           warn=say)

    dist.on_main(start)
    return opened.get("group", LoggerGroup())


def report_files(folder: RunFolder, metrics: dict[str, Any]) -> list[Path]:
    """The run folder's files a logger keeps as artifacts: pictures, ``metrics.json``, ``report.html``,
    ``spec.toml``."""
    files = [folder.path / name for name in metrics.get("pictures", [])]
    files += [folder.metrics_file, folder.report_file, folder.spec_file]
    return [f for f in files if f.is_file()]


def run_spec(
    spec: Spec,
    spec_path: Path,
    out: str | Path | None = None,
    resume: bool = False,
    progress_stream: TextIO | None = None,
    say: Callable[[str], None] | None = None,
    dist: Distributed | None = None,
) -> RunOutcome:
    """Train the spec's model in its run folder and evaluate it there.

    Args:
        spec: the validated spec (overrides applied).
        spec_path: the file it came from (its stem names the run folder).
        out: the run folder (``--out``); default from ``[output]``.
        resume: continue the run in that folder from its latest checkpoint.
        progress_stream: where progress goes (stderr by default).
        say: where status lines go (stderr by default; nowhere on ranks other than 0).
        dist: the process group; default: the one the environment describes (``torchrun``), else
            a single process.
    """
    started = time.monotonic()
    dist = dist or Distributed.from_env(spec.train.device)
    try:
        return _run(spec, spec_path, out, resume, progress_stream, say, dist, started)
    finally:
        dist.close()


def _run(spec: Spec, spec_path: Path, out: str | Path | None, resume: bool, progress_stream: TextIO | None,
         say: Callable[[str], None] | None, dist: Distributed, started: float) -> RunOutcome:
    if not dist.is_main:
        say = _quiet
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    folder = dist.on_main(choose_run_folder, spec, spec_path, out, resume)
    run_dir = folder.path
    seed_everything(spec.train.seed)
    built = build(spec)
    train_loader, test_loader, _ = make_loaders(spec.data, built.source, seed=spec.train.seed)
    check_batch_size(spec.data.batch_size, dist.world)
    if spec.output.loggers:  # a logger whose package is missing: refused before the folder is made
        dist.on_main(LoggerGroup.check, list(spec.output.loggers), get_registries())
    check_before_training(spec.eval, built.model)  # the evaluation's pictures fit in memory: known now, not after training
    # after building: a spec or data error leaves no empty folder; before training: a folder that cannot
    # hold the run's files is found now, not at the first save
    dist.on_main(folder.prepare, resume, output_files(spec.eval, built.model))
    loggers = open_loggers(spec, folder, dist, say)  # before training: a store that cannot be written stops here
    try:
        return _train_and_evaluate(spec, built, train_loader, test_loader, folder, resume, progress_stream, say,
                                   dist, started, loggers)
    finally:
        loggers.close()


def _train_and_evaluate(spec: Spec, built: Any, train_loader: Any, test_loader: Any, folder: RunFolder, resume: bool,
                        progress_stream: TextIO | None, say: Callable[[str], None], dist: Distributed,
                        started: float, loggers: LoggerGroup) -> RunOutcome:
    run_dir = folder.path
    trainer: Trainer | None = None

    def log_pictures(device: torch.device) -> None:
        """The pictures of an evaluation during training, for the loggers."""
        if not loggers or trainer is None:
            return
        try:
            with tempfile.TemporaryDirectory(prefix="revkit-pictures-") as tmp:
                loggers.images(trainer.step, evaluation_pictures(built.model, spec.eval, test_loader, device,
                                                                 Path(tmp)))
        except Exception as exc:  # pictures for a logger never stop training
            say(f"warning: pictures at step {trainer.step} for the loggers failed ({type(exc).__name__}: {exc})")

    evaluate = evaluation_during_training(built.model, built.objective, test_loader, spec.eval.test_batches,
                                          then=log_pictures)
    trainer = Trainer(built.model, built.objective, train_loader, spec.train, evaluate=evaluate,
                      files=folder if dist.is_main else None, spec_text=spec.to_toml(),
                      progress_stream=progress_stream, dist=dist, on_record=loggers.record if loggers else None)
    if resume:
        path, state = dist.on_main(resumable_state, folder, spec)
        trainer.load_state_dict(state, source=path)
        say(f"resuming {run_dir} from step {trainer.step} ({path.name})")
        if "live" in state and trainer.average is None:
            say("the checkpoint's model is the weight average (train.ema_decay); this spec asks for none, so the "
                "run goes on from the live weights the average was taken over")
    else:
        say(f"run folder: {run_dir}")
    if dist.is_main:
        folder.write_spec(spec)
    processes = f" × {dist.world} processes" if dist.enabled else ""
    say(f"training on {trainer.device}{processes} for {spec.train.steps} steps "
        f"({parameter_count(built.model):,} parameters)")
    result = trainer.fit()
    if result.stopped in (INTERRUPTED, TERMINATED):
        signal_name = "SIGINT" if result.stopped == INTERRUPTED else "SIGTERM"
        say(f"{result.stopped} at step {result.step} ({signal_name}); checkpoint saved: {result.checkpoint}")
        return RunOutcome(run_dir, result, None)
    if not dist.is_main:
        return RunOutcome(run_dir, result, None)
    if result.stopped == TIME_LIMIT:
        say(f"stopped on the time limit ({spec.train.time_limit_minutes:g} min) at step {result.step} "
            f"of {spec.train.steps}")
    budget = {
        "steps": result.step,
        "steps_planned": int(spec.train.steps),
        "stopped": result.stopped,
        "train_seconds": round(result.seconds, 3),  # the training loop, summed over resumes
        "wall_clock_s": round(time.monotonic() - started, 3),  # this invocation: setup and training
        "device": str(trainer.device),
        "processes": dist.world,
        "parameters": parameter_count(built.model) + parameter_count(built.objective),
    }
    if spec.train.on_nonfinite == "skip":
        budget["skipped_updates"] = trainer.skipped
    records = read_metrics(folder.metrics_log) if folder.metrics_log.exists() else []
    metrics = evaluate_run(built.model, built.objective, test_loader, spec.eval, run_dir, trainer.device,
                           budget, records, source=built.source, log=say)
    folder.write_metrics(metrics)
    loggers.images(result.step, {p.stem: p for p in (run_dir / name for name in metrics["pictures"]) if p.is_file()})
    loggers.histograms(result.step, objective_histograms(built.model, metrics))
    try:
        write_run_page(run_dir)
    except Exception as exc:  # the page is a view of the folder: never the reason a run is lost
        say(f"warning: {folder.report_file} could not be written ({type(exc).__name__}: {exc}); "
            f"`revkit report {run_dir}` retries")
    loggers.finish(metrics, report_files(folder, metrics))
    if loggers.failed:
        metrics["loggers_failed"] = dict(loggers.failed)
        folder.write_metrics(metrics)
    main = metrics.get(metrics["main_metric"])
    if isinstance(main, float):
        say(f"{metrics['main_metric']}: {main:.4f}")
    return RunOutcome(run_dir, result, metrics)
