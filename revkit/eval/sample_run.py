"""Samples from a finished (or running) run folder: its ``spec.toml`` and latest checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from revkit.build import build
from revkit.errors import CheckpointError, RevkitError
from revkit.eval.samples import check_sample_memory, write_samples
from revkit.flow import Flow
from revkit.spec import load_spec
from revkit.train.checkpoint import CHECKPOINT_DIR, latest_checkpoint, load_checkpoint
from revkit.train.device import resolve_device
from revkit.train.rundir import SPEC_FILE
from revkit.train.seeding import seed_everything


def load_run(run_dir: Path, device: str = "auto") -> tuple[Flow, int]:
    """The flow of ``run_dir`` with its latest checkpoint's weights, in eval mode, and that step.

    Builds the model from ``run_dir/spec.toml`` without reading data.

    Raises:
        RevkitError: when the folder, its spec or its checkpoint is missing or does not fit.
    """
    run_dir = Path(run_dir)
    spec_path = run_dir / SPEC_FILE
    if not spec_path.is_file():
        raise RevkitError(f"{run_dir} is not a run folder: it has no {SPEC_FILE}")
    flow = build(load_spec(spec_path)).flow
    path = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    state = load_checkpoint(path)
    try:
        flow.load_state_dict(state["flow"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{path}: does not fit the model of {spec_path} ({detail})") from exc
    try:
        where = resolve_device(device)
    except RevkitError as exc:  # the message names the spec field; here it is the --device option
        raise RevkitError(str(exc).replace("train.device", "--device", 1)) from None
    return flow.to(where).eval(), int(state["step"])


def check_out(path: Path) -> None:
    """Refuse an output path that is a folder or lies under a file, before anything is drawn."""
    if path.is_dir():
        raise RevkitError(f"--out {path}: is a folder; name the PNG file to write, e.g. {path / 'samples.png'}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise RevkitError(f"--out {path}: {parent} is a file, not a folder")


def sample_run(run_dir: Path, n: int = 64, temperature: float = 1.0, out: Path | None = None,
               device: str = "auto", seed: int = 0) -> Path:
    """Write ``n`` samples of the run's model at ``temperature`` as a PNG; returns its path
    (default ``run_dir/samples-step<N>-T<T>.png``)."""
    if out is not None:
        check_out(Path(out))
    flow, step = load_run(run_dir, device)
    check_sample_memory(flow, n, "-n")  # before the output folder is created
    seed_everything(seed)
    path = out if out is not None else Path(run_dir) / f"samples-step{step:06d}-T{temperature:g}.png"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            return write_samples(flow, path, n, temperature, where="-n")
    except OSError as exc:
        raise RevkitError(f"{path}: cannot write the samples ({exc.strerror or exc})") from exc
