"""Experiment loggers: the hook, the spec's ``output.loggers``, the TensorBoard logger read back with
TensorBoard's own reader, and a logger that fails never losing a run."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from revkit.errors import LoggerError, SpecError
from revkit.eval.curve import panels, curve_series
from revkit.loggers import Logger
from revkit.loggers.tensorboard import TensorBoardLogger
from revkit.plugins import hookimpl, load_registries
from revkit.runs import run_spec
from revkit.spec import load_spec_dict

TOY: dict[str, Any] = {
    "model": {"layers": [{"block": "affine_coupling", "hidden": 8, "repeat": 2}]},
    "data": {"kind": "toy2d", "name": "moons", "n_train": 256, "n_test": 64, "batch_size": 32},
    "train": {"steps": 6, "log_every": 2, "eval_every": 3, "checkpoint_every": 0, "device": "cpu"},
    "eval": {"samples": 16},
}


def toy(loggers: list[Any]) -> dict[str, Any]:
    return {**TOY, "output": {"loggers": loggers}}


def run(spec: dict[str, Any], out: Path, **kwargs: Any) -> Any:
    return run_spec(load_spec_dict(spec), Path("toy.toml"), out=out, progress_stream=io.StringIO(),
                    say=kwargs.pop("say", lambda _: None), **kwargs)


# -- TensorBoard, read back with TensorBoard's own reader -----------------------------------------
def test_tensorboard_logger_writes_scalars_pictures_spec_and_hparams(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    outcome = run(toy(["tensorboard"]), tmp_path / "toy")
    events = EventAccumulator(str(tmp_path / "toy" / "tensorboard"),
                              size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
    assert {"train/nll_per_dim", "train/lr", "train/images_per_s"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("test/nll_per_dim")] == [3, 6]  # eval_every = 3
    assert [e.value for e in events.Scalars("final/test_nll_per_dim")] == \
        [pytest.approx(outcome.metrics["test_nll_per_dim"])]
    samples = events.Images("pictures/samples")
    assert sorted({e.step for e in samples}) == [3, 6] and all(e.width > 100 for e in samples)  # each evaluation
    assert "pictures/density" in tags["images"]
    text = events.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert 'block = "affine_coupling"' in text
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_histograms_are_the_prior_stds_per_class_and_the_fixed_point_iterations() -> None:
    import torch

    from revkit.eval.report import objective_histograms

    class Prior:
        def component_stds(self) -> torch.Tensor:
            return torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]])

        conditional, classes, shape = True, 2, (3,)

    class Model:
        prior = Prior()

    found = objective_histograms(Model(), {"inverse": {"iterations_histogram": {"3": 2, "5": 1}}})  # type: ignore[arg-type]
    assert sorted(found) == ["fixed_point_iterations", "prior_stds/class_0", "prior_stds/class_1"]
    assert list(found["fixed_point_iterations"]) == [3.0, 3.0, 5.0]
    assert list(found["prior_stds/class_0"]) == [1.0, 0.0, 2.0]


# -- the spec -------------------------------------------------------------------------------------
def test_the_spec_names_loggers_by_name_or_table_and_refuses_unknown_ones() -> None:
    spec = load_spec_dict(toy(["tensorboard"]))
    assert [lg.kind for lg in spec.output.loggers] == ["tensorboard"]
    assert load_spec_dict(toy([{"kind": "tensorboard"}])).output == spec.output
    with pytest.raises(SpecError, match=r"output\.loggers\[0\]\.kind: unknown logger 'tensorbord' \(did you mean "
                                        r"'tensorboard'\?\)"):
        load_spec_dict(toy(["tensorbord"]))
    with pytest.raises(SpecError, match="listed more than once"):
        load_spec_dict(toy(["tensorboard", "tensorboard"]))
    with pytest.raises(SpecError, match=r"output\.loggers\[0\]\.every: unknown key"):
        load_spec_dict(toy([{"kind": "tensorboard", "every": 3}]))


def test_a_spec_naming_mlflow_without_its_plugin_names_the_distribution() -> None:
    without = load_registries(entry_points=False)
    with pytest.raises(SpecError, match=r"logger 'mlflow' is not installed: it is provided by the plugin "
                                        r"distribution 'revkit-mlflow' \(pip install revkit-mlflow\)"):
        load_spec_dict(toy(["mlflow"]), registries=without)


# -- a logger never loses a run -------------------------------------------------------------------
class Recorder(Logger):
    """Records every call; ``fail`` names a method that raises."""

    calls: list[tuple[str, Any]] = []
    fail = ""

    def _call(self, name: str, value: Any) -> None:
        type(self).calls.append((name, value))
        if name == self.fail:
            raise OSError(f"{name} broke")

    def start(self, spec: Any, spec_text: str) -> None:
        self._call("start", spec["train"]["steps"])

    def log_scalars(self, step: int, values: Any) -> None:
        self._call("log_scalars", step)

    def log_images(self, step: int, images: Any) -> None:
        self._call("log_images", (step, sorted(images)))

    def finish(self, metrics: Any, files: Any) -> None:
        self._call("finish", sorted(Path(f).name for f in files))


class RecorderPlugin:
    @hookimpl
    def register_loggers(self, register: Any) -> None:
        register("recorder", Recorder)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    regs = load_registries(extra_plugins=[("recorder-plugin", RecorderPlugin())], entry_points=False)
    monkeypatch.setattr("revkit.runs.run.get_registries", lambda: regs)
    monkeypatch.setattr("revkit.spec.load.get_registries", lambda: regs)
    monkeypatch.setattr(Recorder, "calls", [])
    return Recorder


def test_a_plugin_logger_registered_through_the_hook_gets_every_call(recorder: type[Recorder], tmp_path: Path) -> None:
    run(toy(["recorder"]), tmp_path / "run")
    names = [name for name, _ in recorder.calls]
    assert names[0] == "start" and recorder.calls[0][1] == 6 and names[-1] == "finish"
    assert [v for n, v in recorder.calls if n == "log_scalars"] == [2, 3, 4, 6, 6]  # training and evaluations
    assert [v for n, v in recorder.calls if n == "log_images"] == [(3, ["samples"]), (6, ["samples"]),
                                                                  (6, ["density", "samples", "training_curve"])]
    assert recorder.calls[-1][1] == ["density.png", "metrics.json", "report.html", "samples.png", "spec.toml",
                                     "training_curve.png"]


def test_a_logger_that_fails_while_training_is_dropped_with_a_warning(recorder: type[Recorder],
                                                                     tmp_path: Path) -> None:
    said: list[str] = []
    recorder.fail = "log_scalars"
    try:
        outcome = run(toy(["recorder"]), tmp_path / "run", say=said.append)
    finally:
        recorder.fail = ""
    assert outcome.metrics["steps"] == 6 and (tmp_path / "run" / "metrics.json").is_file()
    assert outcome.metrics["loggers_failed"] == {"recorder": "log_scalars: OSError: log_scalars broke"}
    assert any("logger 'recorder' failed" in line for line in said)
    assert [n for n, _ in recorder.calls].count("log_scalars") == 1


def test_a_logger_that_cannot_start_stops_the_run_before_training(recorder: type[Recorder], tmp_path: Path) -> None:
    recorder.fail = "start"
    try:
        with pytest.raises(LoggerError, match=r"logger 'recorder' cannot start: OSError: start broke"):
            run(toy(["recorder"]), tmp_path / "run")
    finally:
        recorder.fail = ""
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_missing_package_is_refused_before_the_run_folder_is_made(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(TensorBoardLogger, "unavailable",
                        classmethod(lambda cls: "the package 'tensorboard' is not installed (pip install "
                                                "'revkit[tensorboard]')"))
    with pytest.raises(LoggerError, match=r"logger 'tensorboard' cannot run: .*pip install 'revkit\[tensorboard\]'"):
        run(toy(["tensorboard"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unwritable_event_folder_is_a_run_error_naming_the_logger(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tensorboard").write_text("a file where the event folder goes")
    from revkit.loggers import LoggerGroup
    from revkit.plugins import get_registries

    spec = load_spec_dict(toy(["tensorboard"]))
    with pytest.raises(LoggerError, match="logger 'tensorboard' cannot start: FileExistsError"):
        LoggerGroup.open(spec.output.loggers, get_registries(), tmp_path / "run", spec.to_dict(), spec.to_toml())


# -- training curves ------------------------------------------------------------------------------
def test_quantities_of_different_scales_get_panels_of_their_own() -> None:
    records = [{"step": s, "loss": 3.0 / s, "ot_cost": 1.0 / s, "smoothness": 0.02, "active_dims": 400 - s,
                "lr": 1e-3, "time": s} for s in range(1, 5)] + [{"step": 4, "test_ot_cost": 0.3}]
    assert panels({"": curve_series(records)}) == ["loss", "active_dims", "ot_cost", "smoothness"]
