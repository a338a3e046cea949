"""The run layer: a run folder's layout, running a spec, loading a finished run in one line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

import revkit
from revkit.errors import CheckpointError, RevkitError
from revkit.runs import RunFolder, load_run, run_spec
from revkit.spec import load_spec_dict

TOY = {
    "model": {"layers": [{"block": "affine_coupling", "hidden": 8, "repeat": 2}]},
    "data": {"kind": "toy2d", "name": "moons", "n_train": 256, "n_test": 64, "batch_size": 32},
    "train": {"steps": 6, "log_every": 3, "checkpoint_every": 3, "device": "cpu"},
    "eval": {"samples": 16},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "toy"
    spec = load_spec_dict(TOY)
    outcome = run_spec(spec, Path("toy.toml"), out=folder, progress_stream=io.StringIO(), say=lambda _: None)
    assert outcome.run_dir == folder and outcome.metrics is not None
    return folder


def test_the_folder_object_names_every_file_of_a_run(finished: Path) -> None:
    run = RunFolder(finished)
    assert run.spec_file.is_file() and run.metrics_log.is_file() and run.metrics_file.is_file()
    assert run.latest_checkpoint() == run.checkpoint_dir / "step-000006.pt"
    assert run.picture("samples").is_file() and run.picture("density.png").is_file()
    assert run.read_metrics()["steps"] == 6  # type: ignore[index]
    assert RunFolder(finished / "nowhere").read_metrics() is None


def test_load_run_gives_the_trained_model_spec_metrics_and_data(finished: Path) -> None:
    run = revkit.load_run(finished, device="cpu")
    assert isinstance(run.model, revkit.Model) and isinstance(run.model, revkit.Flow)
    assert not run.model.training and run.step == 6
    assert run.spec.train.steps == 6 and run.metrics is not None and run.metrics["steps"] == 6
    state = torch.load(run.checkpoint, weights_only=True)["flow"]
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, state[name]), name
    x = next(iter(run.loaders()[1]))[0]
    assert torch.allclose(run.model.decode(run.model.encode(x)), x, atol=1e-4)
    with torch.no_grad():
        expected = float(-run.model.log_prob(x).mean() / 2)
    assert run.metrics["test_nll_per_dim"] == pytest.approx(expected, rel=0.05)  # over the whole test split
    assert run.model.sample(5).shape == (5, 2)


def test_load_run_refuses_what_is_not_a_finished_run(finished: Path, tmp_path: Path) -> None:
    with pytest.raises(RevkitError, match="no such run folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(RevkitError, match="has no spec.toml"):
        load_run(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "spec.toml").write_text((finished / "spec.toml").read_text())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(copy)
    with pytest.raises(RevkitError, match="--device"):
        load_run(finished, device="tpu")


def test_a_fresh_run_refuses_a_folder_that_is_not_empty(finished: Path) -> None:
    with pytest.raises(RevkitError, match="already exists and is not empty"):
        RunFolder(finished).prepare(resume=False)
    assert RunFolder(finished).prepare(resume=True).path == finished


def test_resuming_an_averaged_run_without_the_average_says_it_takes_the_live_weights(tmp_path: Path) -> None:
    folder = tmp_path / "averaged"
    averaged = load_spec_dict({**TOY, "train": {**TOY["train"], "ema_decay": 0.5}})
    run_spec(averaged, Path("toy.toml"), out=folder, progress_stream=io.StringIO(), say=lambda _: None)
    lines: list[str] = []
    run_spec(load_spec_dict(TOY), Path("toy.toml"), out=folder, resume=True, progress_stream=io.StringIO(),
             say=lines.append)
    assert any("this spec asks for none, so the run goes on from the live weights" in line for line in lines)
    again: list[str] = []
    run_spec(averaged, Path("toy.toml"), out=folder, resume=True, progress_stream=io.StringIO(), say=again.append)
    assert not any("live weights" in line for line in again)
