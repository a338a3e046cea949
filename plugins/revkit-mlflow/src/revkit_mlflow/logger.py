"""The MLflow logger: one MLflow run per revkit run, written through ``mlflow.tracking.MlflowClient``.

Params are the spec's keys flattened with dots; metrics are every logged scalar at its step and the final
metrics; artifacts are the pictures of each evaluation and, at the end, the run folder's pictures,
``metrics.json``, ``report.html`` and ``spec.toml``. The default store is a SQLite database under the run root
(the folder that holds the run folders, ``output.dir``), so ``mlflow ui --backend-store-uri
sqlite:///<root>/mlflow.db`` shows every run.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from revkit.loggers import Logger, flat_params
from revkit.loggers.group import scalar_values

#: the tracking database under the run root, and the artifact folder beside it.
DATABASE, ARTIFACTS = "mlflow.db", "mlartifacts"
#: MLflow's limits: entries per log_batch call, characters of a param value.
BATCH, PARAM_CHARS = 100, 6000


class MLflowParams(BaseModel):
    """The keys of ``[[output.loggers]]`` with ``kind = "mlflow"``."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str | None = Field(
        None, min_length=1,
        description="an MLflow tracking URI (a server, a database, a folder); left out: "
                    "sqlite:///<run root>/mlflow.db with artifacts in <run root>/mlartifacts",
    )
    experiment: str = Field("revkit", min_length=1, description="the MLflow experiment the run goes to")


class MLflowLogger(Logger):
    """Logs a revkit run to MLflow (see the module docstring)."""

    Params = MLflowParams
    distribution = "revkit-mlflow"

    def __init__(self, run_dir: Path, tracking_uri: str | None = None, experiment: str = "revkit") -> None:
        super().__init__(run_dir, tracking_uri=tracking_uri, experiment=experiment)
        root = self.run_dir.resolve().parent
        self.local = tracking_uri is None
        self.tracking_uri = tracking_uri or f"sqlite:///{root / DATABASE}"
        self.artifact_location = (root / ARTIFACTS).as_uri() if self.local else None
        self.experiment = experiment
        self.client: Any = None
        self.run_id: str | None = None
        self.finished = False

    @classmethod
    def unavailable(cls) -> str:
        if importlib.util.find_spec("mlflow") is None:
            return "the package 'mlflow' is not installed (pip install revkit-mlflow)"
        return ""

    def start(self, spec: Mapping[str, Any], spec_text: str) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else \
            self.client.create_experiment(self.experiment, artifact_location=self.artifact_location)
        run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                     tags={"revkit.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        params = [Param(key, str(value)[:PARAM_CHARS]) for key, value in flat_params(spec).items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + BATCH])
        self.client.log_text(self.run_id, spec_text, "spec.toml")

    def _metrics(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value in values.items()]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + BATCH])

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        self._metrics(step, values)

    def log_images(self, step: int, images: Mapping[str, Path]) -> None:
        for path in images.values():
            self.client.log_artifact(self.run_id, str(path), artifact_path=f"pictures/step-{step:06d}")

    def finish(self, metrics: Mapping[str, Any], files: Sequence[Path]) -> None:
        step = int(metrics.get("steps", 0) or 0)
        self._metrics(step, {f"final.{k}": v for k, v in scalar_values(metrics).items()})
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.finished = True

    def close(self) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, "FINISHED" if self.finished else "KILLED")
            self.run_id = None
