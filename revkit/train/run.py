"""A whole run from a validated spec: run folder, build, train (or resume), final evaluation.

This is what ``revkit run`` calls; it sits above the builder, the data loaders, the trainer and
the evaluation. Under ``torchrun`` (or ``revkit run --nproc N``) every process calls it: rank 0
chooses and writes the run folder, loads the checkpoint to resume and broadcasts it, and alone runs
the final evaluation; the others train their share of each batch and return without metrics.
"""

from __future__ import annotations

import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from revkit.build import build
from revkit.data.loaders import make_loaders
from revkit.errors import CheckpointError, RevkitError
from revkit.eval.report import check_before_training, evaluate_run, output_files
from revkit.paths import check_writable_files, check_writable_folder
from revkit.spec import Spec
from revkit.summary import parameter_count
from revkit.train.checkpoint import CHECKPOINT_DIR, latest_checkpoint, load_checkpoint
from revkit.train.distributed import Distributed, check_batch_size
from revkit.train.interrupt import INTERRUPTED, TERMINATED
from revkit.train.metrics import METRICS_FILE, read_metrics
from revkit.train.rundir import SPEC_FILE, choose_run_dir, prepare_run_dir, write_spec
from revkit.train.seeding import seed_everything
from revkit.train.trainer import TIME_LIMIT, Trainer, TrainResult

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


def resumable_state(run_dir: Path, spec: Spec) -> tuple[Path, dict[str, Any]]:
    """The latest checkpoint of ``run_dir`` and its contents, checked against ``spec``.

    Raises:
        CheckpointError: no checkpoint, an unreadable one, or one of another model.
    """
    path = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    state = load_checkpoint(path)
    check_same_model(str(state["spec"]), spec, path)
    return path, state


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


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (None: ``folder`` exists)."""
    missing = None
    for path in [folder, *folder.parents]:
        if path.exists() or path.is_symlink():
            break
        missing = path
    return missing


def _remove_empty_folders(folder: Path, outermost: Path) -> None:
    """Remove ``folder`` and its parents up to ``outermost``, each only while it is empty."""
    for path in [folder, *folder.parents]:
        try:
            path.rmdir()
        except OSError:
            return
        if path == outermost:
            return


def _run(spec: Spec, spec_path: Path, out: str | Path | None, resume: bool, progress_stream: TextIO | None,
         say: Callable[[str], None] | None, dist: Distributed, started: float) -> RunOutcome:
    if not dist.is_main:
        say = _quiet
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    run_dir = dist.on_main(choose_run_dir, spec, spec_path, out, resume)
    seed_everything(spec.train.seed)
    built = build(spec)
    train_loader, test_loader, _ = make_loaders(spec.data, built.source, seed=spec.train.seed)
    check_batch_size(spec.data.batch_size, dist.world)
    check_before_training(spec.eval, built.flow)  # the evaluation's pictures fit in memory: known now, not after training
    created = _first_missing(Path(run_dir))  # what prepare_run_dir creates, removed again on a later error
    dist.on_main(prepare_run_dir, run_dir, resume)  # after building: a spec or data error leaves no empty folder
    # before training: a folder that cannot hold checkpoints is found now, not at the first save
    try:
        dist.on_main(check_writable_files, run_dir, [SPEC_FILE, METRICS_FILE, *output_files(spec.eval, built.flow)],
                     "the run")
        dist.on_main(check_writable_folder, run_dir / CHECKPOINT_DIR if resume else run_dir, "the run folder")
    except RevkitError:
        if dist.is_main and created is not None:
            _remove_empty_folders(Path(run_dir), created)
        raise
    trainer = Trainer(built.flow, built.objective, train_loader, spec.train, test_loader=test_loader,
                      run_dir=run_dir if dist.is_main else None, spec_text=spec.to_toml(),
                      eval_batches=spec.eval.test_batches, progress_stream=progress_stream, dist=dist)
    if resume:
        path, state = dist.on_main(resumable_state, run_dir, spec)
        trainer.load_state_dict(state, source=path)
        say(f"resuming {run_dir} from step {trainer.step} ({path.name})")
    else:
        say(f"run folder: {run_dir}")
    if dist.is_main:
        write_spec(run_dir, spec)
    processes = f" × {dist.world} processes" if dist.enabled else ""
    say(f"training on {trainer.device}{processes} for {spec.train.steps} steps "
        f"({parameter_count(built.flow):,} parameters)")
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
        "parameters": parameter_count(built.flow) + parameter_count(built.objective),
    }
    if spec.train.on_nonfinite == "skip":
        budget["skipped_updates"] = trainer.skipped
    metrics_file = run_dir / METRICS_FILE
    records = read_metrics(metrics_file) if metrics_file.exists() else []
    metrics = evaluate_run(built.flow, built.objective, test_loader, spec.eval, run_dir, trainer.device,
                           budget, records, source=built.source, log=say)
    main = metrics.get(metrics["main_metric"])
    if isinstance(main, float):
        say(f"{metrics['main_metric']}: {main:.4f}")
    return RunOutcome(run_dir, result, metrics)
