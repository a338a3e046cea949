"""Loading a finished (or running) run: ``revkit.load_run(path)`` for a notebook, ``revkit sample`` for
the command line.

::

    run = revkit.load_run("runs/mnist_glow-20261203-093000")
    run.model.sample(16)              # the trained model, in eval mode
    run.metrics["test_bits_per_dim"]  # metrics.json (None before the final evaluation)
    train, test, _ = run.loaders()    # the run's data, through the same loaders training used
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revkit.build import build
from revkit.data.base import DataSource
from revkit.data.loaders import make_loaders
from revkit.errors import CheckpointError, RevkitError
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.runs.folder import RunFolder
from revkit.runtime.device import resolve_device
from revkit.spec import Spec, load_spec


@dataclass
class Run:
    """A run folder, loaded: the model with its latest checkpoint's weights (in eval mode, on
    ``device``), the spec as run, the final metrics and the data source.

    Attributes:
        folder: the run folder (its layout: :class:`~revkit.runs.folder.RunFolder`).
        spec: the validated spec the run was trained with (``spec.toml``).
        model: the trained model.
        objective: the objective, with its trained state (a critic, learned weights).
        source: the run's data source (nothing is read until the loaders are iterated).
        step: the optimizer step of the checkpoint.
        checkpoint: the checkpoint file the weights came from.
        metrics: ``metrics.json``, or None when the run has not finished its evaluation.
    """

    folder: RunFolder
    spec: Spec
    model: Model
    objective: Objective
    source: DataSource
    step: int
    checkpoint: Path
    metrics: dict[str, Any] | None

    def loaders(self) -> tuple[Any, Any, Any]:
        """``(train, test, info)`` loaders of the run's data, as training made them (``[data]``'s
        batch sizes, ``train.seed``)."""
        return make_loaders(self.spec.data, self.source, seed=self.spec.train.seed)


def load_run(path: str | Path, device: str = "auto") -> Run:
    """Load the run folder ``path``: build its model from ``spec.toml`` (no data is read) and load its
    latest checkpoint's weights.

    Args:
        path: the run folder that ``revkit run`` printed.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        RevkitError: when the folder, its spec or its checkpoint is missing or does not fit.
    """
    folder = RunFolder(Path(path))
    if not folder.path.is_dir():
        raise RevkitError(f"{folder.path}: no such run folder")
    if not folder.spec_file.is_file():
        raise RevkitError(f"{folder.path} is not a run folder: it has no {folder.spec_file.name}")
    try:
        where = resolve_device(device)
    except RevkitError as exc:  # the message names the spec field; here it is the device argument
        raise RevkitError(str(exc).replace("train.device", "--device", 1)) from None
    spec = load_spec(folder.spec_file)
    built = build(spec)
    checkpoint, state = folder.load_latest()
    try:
        built.model.load_state_dict(state["flow"])
        built.objective.load_state_dict(state["objective"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{checkpoint}: does not fit the model of {folder.spec_file} ({detail})") from exc
    model = built.model.to(where).eval()
    return Run(folder=folder, spec=spec, model=model, objective=built.objective.to(where).eval(),
               source=built.source, step=int(state["step"]), checkpoint=checkpoint, metrics=folder.read_metrics())
