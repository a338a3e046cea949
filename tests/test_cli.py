"""The ``revkit`` command line: user errors are one line and exit code 2; a toy2d run end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from revkit.cli import main

TOY = """
[model]
[[model.layers]]
block = "affine_coupling"
repeat = 4
hidden = 16

[data]
kind = "toy2d"
batch_size = 64
test_batch_size = 256
n_train = 512
n_test = 256

[train]
device = "cpu"
steps = 30
lr = 3e-3
log_every = 10
checkpoint_every = 10

[eval]
samples = 100

[output]
dir = "{runs}"
"""


def write_spec(folder: Path, text: str = TOY, name: str = "toy.toml") -> Path:
    path = folder / name
    path.write_text(text.replace("{runs}", str(folder / "runs")))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def single_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


# -- user errors -----------------------------------------------------------------------------


def test_a_missing_spec_file_is_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "nope.toml" in single_error_line(err) and "spec file" in err


def test_a_toml_syntax_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, TOY.replace('hidden = 16', 'hidden = = 16'))
    code, _, err = run_cli(capsys, "validate", str(spec))
    assert code == 2
    assert "line 6" in single_error_line(err) and "toy.toml" in err


def test_an_unknown_block_names_the_layer_and_the_choices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, TOY.replace('"affine_coupling"', '"afine_coupling"'))
    code, _, err = run_cli(capsys, "run", str(spec))
    assert code == 2
    line = single_error_line(err)
    assert "model.layers[0]" in line and "afine_coupling" in line and "affine_coupling" in line


def test_a_bad_field_names_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    code, _, err = run_cli(capsys, "run", str(spec), "--set", "train.lr=-1")
    assert code == 2 and "train.lr" in single_error_line(err)
    code, _, err = run_cli(capsys, "validate", str(spec), "--set", "train.stepz=3")
    assert code == 2 and "stepz" in single_error_line(err)


def test_an_existing_run_folder_is_refused_without_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "run", str(spec), "--out", str(taken))
    assert code == 2
    assert "already exists" in single_error_line(err) and "--resume" in err
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]


def test_cuda_on_a_machine_without_it_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = write_spec(tmp_path)
    code, _, err = run_cli(capsys, "run", str(spec), "--set", "train.device=cuda", "--out", str(tmp_path / "r"))
    assert code == 2 and "CUDA is not available" in single_error_line(err)


def test_python_dash_m_revkit_exits_2_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "revkit", "validate", str(tmp_path / "missing.toml")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert single_error_line(proc.stderr).startswith("error: ")


# -- information commands --------------------------------------------------------------------


def test_plugins_json_lists_the_builtins_and_what_they_registered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "plugins", "--json")
    assert code == 0
    doc = json.loads(out)
    by_name = {p["name"]: p for p in doc["plugins"]}
    assert "affine_coupling" in by_name["revkit.blocks.builtin"]["registered"]["blocks"]
    assert "toy2d" in by_name["revkit.data.builtin"]["registered"]["datasets"]
    assert all(p["version"] for p in doc["plugins"]) and isinstance(doc["failures"], list)
    code, out, _ = run_cli(capsys, "plugins")
    assert code == 0 and "revkit.blocks.builtin" in out


def test_schema_prints_a_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert {"model", "data", "train"} <= set(schema["properties"])


def test_validate_and_inspect_build_the_model_without_training(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    code, out, _ = run_cli(capsys, "validate", str(spec))
    assert code == 0
    assert out.startswith("ok: 1,352 parameters, latent shape 2")
    code, out, _ = run_cli(capsys, "inspect", str(spec))
    assert code == 0
    assert "4×AffineCoupling(16)" in out and "total parameters: 1,352" in out
    assert not (tmp_path / "runs").exists()


# -- a run end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """One toy2d run of 30 steps: (spec file, run folder, stdout lines)."""
    folder = tmp_path_factory.mktemp("cli")
    spec = write_spec(folder)
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["run", str(spec)])
    assert code == 0, err.getvalue()
    lines = out.getvalue().strip().splitlines()
    return spec, Path(lines[-1]), lines


def test_a_toy2d_run_writes_every_output_and_prints_the_folder_last(toy_run: tuple[Path, Path, list[str]]) -> None:
    spec, run_dir, lines = toy_run
    assert run_dir.parent == spec.parent / "runs" and run_dir.name.startswith("toy-")
    assert run_dir.is_dir() and lines[-1] == str(run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["stopped"] == "completed" and metrics["device"] == "cpu"
    assert metrics["parameters"] == 1352 and metrics["wall_clock_s"] > 0
    assert metrics["main_metric"] == "test_nll_per_dim" and metrics["test_samples"] == 256
    assert metrics["test_nll_per_dim"] < records[0]["loss"]  # it learned something
    assert metrics["max_reconstruction_error"] < 1e-4
    for name in ("samples.png", "density.png", "training_curve.png"):
        assert Image.open(run_dir / name).format == "PNG"
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-000030.pt"
    assert "steps = 30" in (run_dir / "spec.toml").read_text()


def test_sample_writes_a_png_from_the_latest_checkpoint(toy_run: tuple[Path, Path, list[str]], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _, run_dir, _ = toy_run
    target = tmp_path / "grid.png"
    code, out, _ = run_cli(capsys, "sample", str(run_dir), "-n", "50", "--temperature", "0.5", "--out", str(target))
    assert code == 0 and out.strip() == str(target)
    assert Image.open(target).format == "PNG"


def test_resume_continues_the_step_count(toy_run: tuple[Path, Path, list[str]], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir, _ = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    code, out, err = run_cli(capsys, "run", str(spec), "--out", str(copy), "--resume", "--set", "train.steps=50")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(copy)
    assert "from step 30" in err
    steps = [json.loads(line)["step"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40, 50]
    assert json.loads((copy / "metrics.json").read_text())["steps"] == 50
    assert (copy / "checkpoints" / "latest").read_text().strip() == "step-000050.pt"


def test_resume_with_another_model_is_refused(toy_run: tuple[Path, Path, list[str]], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec, run_dir, _ = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    code, _, err = run_cli(capsys, "run", str(spec), "--out", str(copy), "--resume",
                           "--set", "model.layers[0].hidden=8")
    assert code == 2
    line = single_error_line(err)
    assert "step-000030.pt" in line and "different [model]" in line


def test_the_time_limit_stops_the_run_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path)
    code, out, err = run_cli(capsys, "run", str(spec), "--out", str(tmp_path / "r"),
                             "--set", "train.time_limit_minutes=0.000001", "--set", "train.steps=100000")
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["stopped"] == "time_limit" and metrics["steps"] < 100000
    assert "time limit" in err and out.strip().splitlines()[-1] == str(tmp_path / "r")


def test_ctrl_c_during_run_checkpoints_and_exits_130(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from revkit.train.trainer import Trainer

    original = Trainer.train_step

    def step_then_ctrl_c(self: Trainer, batch: object) -> dict[str, float]:
        values = original(self, batch)
        if self.step == 6:  # during step 7
            os.kill(os.getpid(), signal.SIGINT)
        return values

    monkeypatch.setattr(Trainer, "train_step", step_then_ctrl_c)
    spec = write_spec(tmp_path)
    code, out, err = run_cli(capsys, "run", str(spec), "--out", str(tmp_path / "r"))
    assert code == 130
    assert (tmp_path / "r" / "checkpoints" / "latest").read_text().strip() == "step-000007.pt"
    assert not (tmp_path / "r" / "metrics.json").exists()  # no evaluation after an interrupt
    assert "interrupted at step 7" in err and out.strip().splitlines()[-1] == str(tmp_path / "r")


def test_resume_finds_a_folder_in_place_of_an_output_before_training(
        toy_run: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the fuzzer: density.png as a folder ended a resumed run after training (files changed, exit 2)."""
    spec, run_dir, _ = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "density.png").unlink()
    (copy / "density.png").mkdir()
    code, _, err = run_cli(capsys, "run", str(spec), "--out", str(copy), "--resume", "--set", "train.steps=50")
    assert code == 2
    line = single_error_line(err)
    assert str(copy / "density.png") in line and "is a folder" in line and "training has not started" in line
    assert (copy / "checkpoints" / "latest").read_text().strip() == "step-000030.pt"  # no step was taken


def test_an_unwritable_run_folder_is_found_before_training_and_left_as_it_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The writability probe fails (a read-only disk; chmod does not stop root): one error line naming the
    folder, no training, and the folder the run created is removed again."""
    import tempfile

    spec = write_spec(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = run_cli(capsys, "run", str(spec), "--out", str(tmp_path / "new" / "run"))
    assert code == 2
    line = single_error_line(err)
    assert str(tmp_path / "new" / "run") in line and "Read-only file system" in line
    assert "training has not started" in line
    assert not (tmp_path / "new").exists()


def _tiny_mnist(root: Path, n: int = 16) -> None:
    """A 16-image MNIST in IDX format under ``root/MNIST/raw`` (train and test alike)."""
    import struct

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = struct.pack(">IIII", 0x803, n, 28, 28) + bytes((7 * i) % 256 for i in range(n * 28 * 28))
    labels = struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
    for split in ("train", "t10k"):
        (raw / f"{split}-images-idx3-ubyte").write_bytes(images)
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(labels)


MNIST_SMALL = """
[model]
input_shape = [1, 28, 28]
[[model.layers]]
block = "squeeze"
[[model.layers]]
block = "affine_coupling"
hidden = 8
[data]
kind = "mnist"
download = false
root = "{root}"
batch_size = 8
test_batch_size = 8
[train]
device = "cpu"
steps = 1
[eval]
samples = 16
reconstructions = 2
test_batches = 1
"""


def test_a_sample_grid_beyond_memory_is_refused_before_drawing_naming_the_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18 (limits before allocation): `sample -n` and `eval.samples` are estimated against the
    machine's memory before anything is drawn; `run` finds it before training, not after it."""
    import revkit.limits

    _tiny_mnist(tmp_path / "data")
    spec = tmp_path / "mnist.toml"
    spec.write_text(MNIST_SMALL.replace("{root}", str(tmp_path / "data")), encoding="utf-8")
    code, _, err = run_cli(capsys, "run", str(spec), "--out", str(tmp_path / "r"))
    assert code == 0, err
    before = sorted(p.name for p in (tmp_path / "r").iterdir())

    monkeypatch.setattr(revkit.limits, "available_memory", lambda: 10 * 2**20)  # a 10 MiB machine
    code, _, err = run_cli(capsys, "sample", str(tmp_path / "r"), "-n", "100000", "--device", "cpu")
    assert code == 2
    line = single_error_line(err)
    assert line.startswith("error: -n: a picture of 100,000 samples of shape 1×28×28 needs about ")
    assert "GiB of memory; at most 5.0 MiB" in line and "choose a smaller value" in line
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == before

    code, _, err = run_cli(capsys, "run", str(spec), "--out", str(tmp_path / "r2"), "--set", "eval.samples=100000")
    assert code == 2
    line = single_error_line(err)
    assert line.startswith("error: eval.samples: a picture of 100,000 samples") and "of memory" in line
    assert not (tmp_path / "r2").exists()  # refused before the run folder and before training


def test_generated_data_beyond_memory_is_refused_before_allocation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: a toy data set within the schema's bound but beyond this machine's memory is refused,
    with what it needs and what is allowed, before the points are drawn and before a run folder exists."""
    import revkit.limits

    spec = write_spec(tmp_path)
    monkeypatch.setattr(revkit.limits, "available_memory", lambda: 10 * 2**20)  # a 10 MiB machine
    code, _, err = run_cli(capsys, "run", str(spec), "--set", "data.n_train=1000000", "--out", str(tmp_path / "r"))
    assert code == 2
    line = single_error_line(err)
    assert "data.n_train" in line and "needs about" in line and "at most 5.0 MiB" in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "runs").exists()
