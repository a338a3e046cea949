"""The TensorBoard logger (``output.loggers = ["tensorboard"]``; needs ``pip install 'revkit[tensorboard]'``).

One event folder per run, ``<run folder>/tensorboard/``; watch one run or all of them with
``tensorboard --logdir runs/``. Tags:

* ``train/<name>`` — every scalar of ``metrics.jsonl`` (``loss``, the objective's metrics, ``lr``,
  ``images_per_s``, a critic's ``critic_loss``, …) at its step; ``test/<name>`` — evaluations during training;
* ``pictures/<name>`` — ``samples``, ``reconstructions``, ``interpolations`` (and the other pictures of the final
  evaluation) at each evaluation;
* ``histograms/<name>`` — what the objective reports: ``prior_stds/class_<k>``, ``fixed_point_iterations``;
* ``spec`` (text) — the spec as run; the HParams view — the spec's scalars with the final metrics
  (``final/<metric>``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from revkit.loggers.base import Logger
from revkit.loggers.group import flat_params, scalar_values

#: the event folder inside the run folder.
EVENT_DIR = "tensorboard"


def _tag(name: str) -> str:
    return f"test/{name[5:]}" if name.startswith("test_") else f"train/{name}"


class TensorBoardLogger(Logger):
    """Writes TensorBoard event files with ``torch.utils.tensorboard.SummaryWriter``."""

    distribution = "revkit[tensorboard]"

    def __init__(self, run_dir: Path, **params: Any) -> None:
        super().__init__(run_dir, **params)
        self.log_dir = self.run_dir / EVENT_DIR
        self.writer: Any = None
        self.step = 0

    @classmethod
    def unavailable(cls) -> str:
        if importlib.util.find_spec("tensorboard") is None:
            return "the package 'tensorboard' is not installed (pip install 'revkit[tensorboard]')"
        return ""

    def start(self, spec: Mapping[str, Any], spec_text: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.spec = dict(spec)
        # markdown: a code block keeps the TOML as written
        self.writer.add_text("spec", "\n".join("    " + line for line in spec_text.splitlines()), 0)
        self.writer.flush()

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(_tag(name), value, step)
        self.step = max(self.step, step)

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        from PIL import Image

        for name, path in images.items():
            with Image.open(path) as picture:
                array = np.asarray(picture.convert("RGB"))
            self.writer.add_image(f"pictures/{name}", array, step, dataformats="HWC")
        self.writer.flush()

    def log_histogram(self, step: int, name: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size:
            self.writer.add_histogram(f"histograms/{name}", values, step)

    def finish(self, metrics: Mapping[str, Any], files: Sequence[Path]) -> None:
        params = {k: v for k, v in flat_params(self.spec).items() if isinstance(v, (int, float, str, bool))}
        final = {f"final/{k}": v for k, v in scalar_values(metrics).items()}
        step = int(metrics.get("steps", self.step) or self.step)
        # run_name=".": the HParams summary goes into this run's own event folder, not a new subfolder
        self.writer.add_hparams(params, final, run_name=".", global_step=step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
