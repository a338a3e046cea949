"""The MLflow plugin: installed from plugins/, registered through the hook, and what a run logged read back
with MLflow's own client."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from revkit.errors import SpecError  # noqa: E402
from revkit.plugins import get_registries  # noqa: E402
from revkit.runs import run_spec  # noqa: E402
from revkit.spec import load_spec_dict  # noqa: E402

from revkit_mlflow.logger import MLflowLogger  # noqa: E402

TOY: dict[str, Any] = {
    "model": {"layers": [{"block": "affine_coupling", "hidden": 8, "repeat": 2}]},
    "data": {"kind": "toy2d", "name": "moons", "n_train": 256, "n_test": 64, "batch_size": 32},
    "train": {"steps": 4, "log_every": 2, "eval_every": 4, "checkpoint_every": 0, "device": "cpu"},
    "eval": {"samples": 16},
}


def test_the_entry_point_registers_the_logger() -> None:
    regs = get_registries()
    assert regs.loggers.get("mlflow") is MLflowLogger and regs.loggers.source("mlflow") == "mlflow"
    assert "mlflow" in [p.name for p in regs.plugins if not p.builtin]


def test_params_metrics_and_artifacts_read_back_with_mlflows_client(tmp_path: Path) -> None:
    spec = load_spec_dict({**TOY, "output": {"loggers": ["mlflow"]}})
    outcome = run_spec(spec, Path("toy.toml"), out=tmp_path / "runs" / "toy", progress_stream=io.StringIO(),
                       say=lambda _: None)
    database = tmp_path / "runs" / "mlflow.db"  # under the run root by default
    assert database.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    experiment = client.get_experiment_by_name("revkit")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "toy" and run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == "4" and run.data.params["data.kind"] == "toy2d"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [2, 4]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_nll_per_dim")] == [4]
    assert run.data.metrics["final.test_nll_per_dim"] == pytest.approx(outcome.metrics["test_nll_per_dim"])
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "report.html", "spec.toml", "samples.png", "density.png", "pictures"} <= top
    steps = [a.path for a in client.list_artifacts(run.info.run_id, "pictures")]
    assert steps == ["pictures/step-000004"]
    local = Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "back")))
    assert '"test_nll_per_dim"' in local.read_text()


def test_any_tracking_uri_and_experiment(tmp_path: Path) -> None:
    logger = {"kind": "mlflow", "tracking_uri": "http://tracking.example:5000", "experiment": "toys"}
    [entry] = load_spec_dict({**TOY, "output": {"loggers": [logger]}}).output.loggers
    made = MLflowLogger(tmp_path / "toy", **entry.kwargs())
    assert made.tracking_uri == "http://tracking.example:5000" and made.experiment == "toys"
    assert made.artifact_location is None  # the server decides where artifacts go
    default = MLflowLogger(tmp_path / "toy")
    assert default.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    with pytest.raises(SpecError, match=r"output\.loggers\[0\]\.tracking_url: unknown key"):
        load_spec_dict({**TOY, "output": {"loggers": [{"kind": "mlflow", "tracking_url": "x"}]}})
