"""``revkit sample``: samples from a finished (or running) run folder's latest checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from revkit.errors import RevkitError
from revkit.eval.samples import check_sample_memory, write_samples
from revkit.runs.load import load_run
from revkit.runtime.seeding import seed_everything


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
    run = load_run(run_dir, device)
    check_sample_memory(run.model, n, "-n")  # before the output folder is created
    seed_everything(seed)
    path = out if out is not None else run.folder.picture(f"samples-step{run.step:06d}-T{temperature:g}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            return write_samples(run.model, path, n, temperature, where="-n")
    except OSError as exc:
        raise RevkitError(f"{path}: cannot write the samples ({exc.strerror or exc})") from exc
