"""The run folder: where it goes, refusing to overwrite, and the spec written into it.

``revkit run`` writes into ``--out DIR`` when given, else ``output.dir/output.name``, where an
empty name means ``<spec stem>-<YYYYmmdd-HHMMSS>``. A fresh run refuses an existing non-empty
folder; ``--resume`` requires one (and, with neither ``--out`` nor ``output.name``, picks the newest
``<spec stem>-<timestamp>`` folder under ``output.dir``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from revkit.errors import RevkitError
from revkit.spec import Spec
from revkit.train.checkpoint import CHECKPOINT_DIR

SPEC_FILE = "spec.toml"
_STAMP = r"\d{8}-\d{6}"


def default_run_name(spec_path: Path, now: dt.datetime | None = None) -> str:
    """``<spec stem>-<YYYYmmdd-HHMMSS>``, e.g. ``mnist_ot-20240131-235959``."""
    now = now or dt.datetime.now()
    return f"{Path(spec_path).stem}-{now:%Y%m%d-%H%M%S}"


def newest_run(base: Path, stem: str) -> Path | None:
    """The newest ``<stem>-<timestamp>`` folder in ``base`` (by the timestamp in its name)."""
    pattern = re.compile(rf"^{re.escape(stem)}-({_STAMP})$")
    found = [(m.group(1), p) for p in base.iterdir() if p.is_dir() and (m := pattern.match(p.name))] \
        if base.is_dir() else []
    return max(found)[1] if found else None


def choose_run_dir(spec: Spec, spec_path: Path, out: str | Path | None = None, resume: bool = False) -> Path:
    """Where the run goes (see the module docstring).

    Raises:
        RevkitError: for ``--resume`` without a folder to resume.
    """
    if out is not None:
        return Path(out).expanduser()
    base = Path(spec.output.dir).expanduser()
    if spec.output.name:
        return base / spec.output.name
    if resume:
        found = newest_run(base, Path(spec_path).stem)
        if found is None:
            raise RevkitError(
                f"--resume: no earlier run of {Path(spec_path).name} in {base}/ (looked for "
                f"{Path(spec_path).stem}-YYYYmmdd-HHMMSS); pass --out DIR to name the run folder"
            )
        return found
    return base / default_run_name(spec_path)


def prepare_run_dir(run_dir: Path, resume: bool) -> Path:
    """Create the folder of a fresh run, or check the folder of a resumed one.

    Raises:
        RevkitError: a fresh run whose folder exists and is not empty; a resumed run whose folder
            or checkpoints are missing.
    """
    run_dir = Path(run_dir)
    if resume:
        if not run_dir.is_dir():
            what = "is a file, not a folder" if run_dir.exists() else "does not exist"
            raise RevkitError(f"--resume: run folder {run_dir} {what}")
        if not (run_dir / CHECKPOINT_DIR).is_dir():
            raise RevkitError(f"--resume: {run_dir} has no {CHECKPOINT_DIR}/ folder, so there is nothing to resume")
        return run_dir
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RevkitError(
            f"run folder {run_dir} already exists and is not empty; pass --resume to continue that run, "
            "or choose another folder with --out DIR or output.name"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, a read-only disk
        raise RevkitError(f"run folder {run_dir} cannot be created ({exc.strerror or exc}); choose another "
                          "folder with --out DIR or output.dir") from exc
    return run_dir


def write_spec(run_dir: Path, spec: Spec) -> Path:
    """Write the spec as run (overrides applied) to ``run_dir/spec.toml``."""
    path = Path(run_dir) / SPEC_FILE
    path.write_text(spec.to_toml(), encoding="utf-8")
    return path
