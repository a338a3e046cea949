"""A run folder: its layout, where it goes, refusing to overwrite, and what is written into it.

Every file of a run lives in one folder, and :class:`RunFolder` is the only code that knows the
names::

    spec.toml              the spec as run (overrides applied)
    checkpoints/           step-NNNNNN.pt files and the ``latest`` pointer (:mod:`revkit.runs.checkpoint`)
    metrics.jsonl          one line per logged step (written while training)
    metrics.json           the final evaluation
    *.png                  the pictures of the final evaluation
    report.html            one self-contained page of the run (:mod:`revkit.runs.page`)
    tensorboard/           event files, when the spec names the ``tensorboard`` logger

``revkit run`` writes into ``--out DIR`` when given, else ``output.dir/output.name``, where an
empty name means ``<spec stem>-<YYYYmmdd-HHMMSS>``. A fresh run refuses an existing non-empty
folder; ``--resume`` requires one (and, with neither ``--out`` nor ``output.name``, picks the newest
``<spec stem>-<timestamp>`` folder under ``output.dir``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revkit.errors import RevkitError
from revkit.paths import check_writable_files, check_writable_folder
from revkit.runs.checkpoint import KEEP_LAST, latest_checkpoint, load_checkpoint, save_checkpoint
from revkit.runtime.files import atomic_write
from revkit.spec import Spec

SPEC_FILE = "spec.toml"
CHECKPOINT_DIR = "checkpoints"
METRICS_LOG = "metrics.jsonl"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
_STAMP = r"\d{8}-\d{6}"


@dataclass(frozen=True)
class RunFolder:
    """The files of one run (see the module docstring). Creating the object touches no file."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- the layout --------------------------------------------------------------------------
    @property
    def spec_file(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def metrics_log(self) -> Path:
        return self.path / METRICS_LOG

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def report_file(self) -> Path:
        return self.path / REPORT_FILE

    def pictures(self) -> list[Path]:
        """The PNGs in the folder (the final evaluation's and ``revkit sample``'s), by name."""
        return sorted(p for p in self.path.glob("*.png") if p.is_file()) if self.path.is_dir() else []

    def picture(self, name: str) -> Path:
        """The path of picture ``name`` (``"samples"`` → ``samples.png``)."""
        return self.path / (name if name.endswith(".png") else f"{name}.png")

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], keep: int = KEEP_LAST) -> Path:
        """Write ``state`` as the checkpoint of its step (atomically), keeping the newest ``keep``."""
        return save_checkpoint(self.checkpoint_dir, state, keep=keep)

    def latest_checkpoint(self) -> Path:
        """The newest checkpoint file (its ``latest`` pointer, else the highest step).

        Raises:
            CheckpointError: when there is none.
        """
        return latest_checkpoint(self.checkpoint_dir)

    def load_latest(self) -> tuple[Path, dict[str, Any]]:
        """The newest checkpoint's path and contents (read safely: no pickled code runs)."""
        path = self.latest_checkpoint()
        return path, load_checkpoint(path)

    # -- the spec and the metrics ------------------------------------------------------------
    def write_spec(self, spec: Spec) -> Path:
        """Write the spec as run (overrides applied) to ``spec.toml``."""
        text = spec.to_toml().encode("utf-8")
        atomic_write(self.spec_file, lambda f: f.write(text))
        return self.spec_file

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write the final evaluation as indented JSON to ``metrics.json`` (atomically)."""
        text = (json.dumps(metrics, indent=2, sort_keys=False) + "\n").encode("utf-8")
        atomic_write(self.metrics_file, lambda f: f.write(text))
        return self.metrics_file

    def read_metrics(self) -> dict[str, Any] | None:
        """``metrics.json``, or None when the run has not finished its evaluation.

        Raises:
            RevkitError: naming the file when it is not a JSON object.
        """
        if not self.metrics_file.is_file():
            return None
        try:
            data = json.loads(self.metrics_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RevkitError(f"{self.metrics_file}: cannot be read as JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise RevkitError(f"{self.metrics_file}: expected a JSON object, got {type(data).__name__}")
        return data

    # -- where a run goes --------------------------------------------------------------------
    def prepare(self, resume: bool, pictures: Sequence[str] = ()) -> RunFolder:
        """Create the folder of a fresh run, or check the folder of a resumed one; then check, before
        training starts, that the run can write its files (:meth:`check_writable`), so a folder that
        cannot hold checkpoints is found now, not at the first save.

        Args:
            pictures: the names of the files the final evaluation will write into the folder.

        Raises:
            RevkitError: a fresh run whose folder exists and is not empty; a resumed run whose
                folder or checkpoints are missing; a file of the run that cannot be written (the
                folders a fresh run created are removed again).
        """
        created = _first_missing(self.path)  # what a fresh run creates, removed again on a later error
        self._create(resume)
        try:
            self.check_writable(resume, pictures)
        except RevkitError:
            if created is not None:
                _remove_empty_folders(self.path, created)
            raise
        return self

    def _create(self, resume: bool) -> None:
        path = self.path
        if resume:
            if not path.is_dir():
                what = "is a file, not a folder" if path.exists() else "does not exist"
                raise RevkitError(f"--resume: run folder {path} {what}")
            if not self.checkpoint_dir.is_dir():
                raise RevkitError(f"--resume: {path} has no {CHECKPOINT_DIR}/ folder, so there is nothing to resume")
            return
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RevkitError(
                f"run folder {path} already exists and is not empty; pass --resume to continue that run, "
                "or choose another folder with --out DIR or output.name"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, a read-only disk
            raise RevkitError(f"run folder {path} cannot be created ({exc.strerror or exc}); choose another "
                              "folder with --out DIR or output.dir") from exc

    def check_writable(self, resume: bool, pictures: Sequence[str] = ()) -> None:
        """Refuse, before training starts, a run whose files cannot be written: something that is not
        a writable file where the run writes a file (its own files and ``pictures``), or a folder
        (``checkpoints/`` when resuming) that cannot hold a new file.

        Raises:
            RevkitError: naming the path and why it cannot be written.
        """
        names = [SPEC_FILE, METRICS_LOG, METRICS_FILE, REPORT_FILE, *pictures]
        check_writable_files(self.path, list(dict.fromkeys(names)), "the run")
        check_writable_folder(self.checkpoint_dir if resume else self.path, "the run folder")


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


def choose_run_folder(spec: Spec, spec_path: Path, out: str | Path | None = None, resume: bool = False) -> RunFolder:
    """Where the run goes (see the module docstring).

    Raises:
        RevkitError: for ``--resume`` without a folder to resume.
    """
    if out is not None:
        return RunFolder(Path(out).expanduser())
    base = Path(spec.output.dir).expanduser()
    if spec.output.name:
        return RunFolder(base / spec.output.name)
    if resume:
        found = newest_run(base, Path(spec_path).stem)
        if found is None:
            raise RevkitError(
                f"--resume: no earlier run of {Path(spec_path).name} in {base}/ (looked for "
                f"{Path(spec_path).stem}-YYYYmmdd-HHMMSS); pass --out DIR to name the run folder"
            )
        return RunFolder(found)
    return RunFolder(base / default_run_name(spec_path))
