"""Training that survives faults: SIGKILL at random points and resume (same parameters as an
uninterrupted run), SIGTERM (checkpoint, exit 143), non-finite losses and gradients (stop naming the
layer and keeping the last good checkpoint, or skip and count), keep-last-K checkpoints, leftovers
of a save that was killed."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from revkit.cli import main
from revkit.data.base import DataInfo
from revkit.flow import Flow
from revkit.runs.folder import RunFolder
from revkit.invertible import Invertible
from revkit.objectives import MaxLikelihood
from revkit.priors import StandardNormal
from revkit.spec import load_spec
from revkit.train import Trainer, TrainingDiverged
from revkit.runs.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from revkit.train.metrics import read_metrics
from revkit.runs.run import run_spec

KILLS = 5  # SIGKILLs the resume test survives (docs/robustness.md quotes it)

# 8-bit images, so maximum likelihood adds fresh uniform dequantization noise every step: a resume must
# restore the random state as well as the data order to reproduce the uninterrupted run.
SPEC = """
[model]
[[model.layers]]
block = "flatten"
[[model.layers]]
block = "affine_coupling"
repeat = 2
hidden = 8

[data]
kind = "image_folder"
root = "{images}"
size = 4
batch_size = 16
test_batch_size = 64

[train]
device = "cpu"
seed = 4
steps = {steps}
lr = 3e-3
schedule = "cosine"
warmup_steps = 3
log_every = 1
checkpoint_every = 1
keep_checkpoints = 2

[eval]
samples = 4
reconstructions = 2
pictures = []
"""


def write_spec(folder: Path, steps: int) -> Path:
    """A spec training on 80 random 4×4 RGB PNGs written into ``folder/images``."""
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(80):
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(images / f"{i:03d}.png")
    path = folder / "tiny.toml"
    path.write_text(SPEC.replace("{steps}", str(steps)).replace("{images}", str(images)))
    return path


def _cli_child(argv: list[str]) -> None:
    code = 1
    try:
        code = main(argv)
    finally:
        os._exit(code)


def start_cli(*argv: str) -> Any:
    """``revkit`` in a forked child process (a real process to kill, without a fresh interpreter)."""
    process = multiprocessing.get_context("fork").Process(target=_cli_child, args=(list(argv),))
    process.start()
    return process


def latest_step(run: Path) -> int:
    try:
        return int(latest_checkpoint(run / "checkpoints").stem.split("-")[1])
    except Exception:  # noqa: BLE001 - no pointer yet
        return -1


def flow_state(run: Path, step: int) -> dict[str, Tensor]:
    return load_checkpoint(run / "checkpoints" / f"step-{step:06d}.pt")["flow"]


# -- kills and signals -----------------------------------------------------------------------------


def test_a_run_killed_with_sigkill_again_and_again_resumes_to_the_uninterrupted_parameters(tmp_path: Path) -> None:
    steps = 60
    spec = write_spec(tmp_path, steps)
    reference = run_spec(load_spec(spec), spec, out=tmp_path / "straight", progress_stream=io.StringIO(),
                         say=lambda _: None)
    assert reference.result.step == steps

    run, rng = tmp_path / "killed", random.Random(8)
    killed_at: list[int] = []
    for attempt in range(KILLS):
        resume = ["--resume"] if attempt else []
        process = start_cli("run", str(spec), "--out", str(run), *resume)
        before = latest_step(run)
        deadline = time.monotonic() + 60
        while latest_step(run) <= before and time.monotonic() < deadline:  # it made progress …
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))  # … then dies at a random point, maybe mid-save
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL
        killed_at.append(latest_step(run))
    assert killed_at == sorted(killed_at) and killed_at[-1] < steps  # every kill landed during training

    final = start_cli("run", str(spec), "--out", str(run), "--resume")
    final.join(timeout=120)
    assert final.exitcode == 0
    for name, value in flow_state(reference.run_dir, steps).items():
        assert torch.equal(value, flow_state(run, steps)[name]), name
    # the metric log has each step once, despite the lines written after each last checkpoint
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == list(range(1, steps + 1))
    assert len(list_checkpoints(run / "checkpoints")) == 2  # train.keep_checkpoints
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_exits_143(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, 100_000)
    run = tmp_path / "run"
    process = start_cli("run", str(spec), "--out", str(run), "--set", "train.checkpoint_every=0")
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGTERM)
    process.join(timeout=60)
    assert process.exitcode == 143
    stopped = read_metrics(run / "metrics.jsonl")[-1]["step"]
    assert latest_step(run) == stopped > 0  # the last finished step is saved (checkpoint_every = 0)
    assert not (run / "metrics.json").exists()  # no evaluation after a signal


def test_a_second_ctrl_c_abandons_the_step_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    trainer = trainer_with(Scale(2), run_dir=tmp_path, steps=10, checkpoint_every=2)

    def interrupted_twice_in_step_4(*_: Any) -> None:
        if trainer.step == 3:  # step 4's optimizer has just updated the parameters
            trainer.stop.request("interrupted")  # the first Ctrl-C …
            raise KeyboardInterrupt  # … and the second, before the step is complete

    trainer.optimizers["model"].register_step_post_hook(interrupted_twice_in_step_4)
    result = trainer.fit()
    assert result.stopped == "interrupted" and result.step == 3
    # the half-done step 4 is not saved as "step 3": the last checkpoint stays the last consistent one
    assert latest_step(tmp_path) == 2 and result.checkpoint == tmp_path / "checkpoints" / "step-000002.pt"
    assert not (tmp_path / "checkpoints" / "step-000003.pt").exists()


# -- non-finite values ------------------------------------------------------------------------------


class Scale(Invertible):
    """y = x · exp(s); the outputs of forward calls number ``break_at`` and the ``repeat - 1`` after it
    are multiplied by ``poison`` (call 1 is the trainer's data-dependent initialisation)."""

    def __init__(self, dims: int, break_at: int = 10**9, poison: float = float("inf"), repeat: int = 2):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dims))
        self.calls, self.break_at, self.poison, self.repeat = 0, break_at, poison, repeat

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.calls += 1
        y = x * self.log_scale.exp()
        if self.break_at <= self.calls < self.break_at + self.repeat:  # a step and its diagnostic re-run
            y = y * self.poison
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y * (-self.log_scale).exp(), (-self.log_scale.sum()).expand(y.shape[0])


class NanGradient(torch.autograd.Function):
    """Identity forward, NaN gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad * float("nan")


class NanGradientAt(Scale):
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.calls += 1
        scale = self.log_scale.exp()
        if self.calls == self.break_at:
            scale = NanGradient.apply(scale)
        return x * scale, self.log_scale.sum().expand(x.shape[0])


def settings(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "seed": 0, "device": "cpu", "steps": 6, "lr": 0.05, "weight_decay": 0.0, "betas": (0.9, 0.999),
        "schedule": "none", "warmup_steps": 0, "step_size": None, "gamma": 0.5, "grad_clip": 0.0,
        "log_every": 1, "checkpoint_every": 1, "eval_every": 0, "time_limit_minutes": 0.0,
    }
    return SimpleNamespace(**{**base, **kw})


def trainer_with(*layers: Invertible, run_dir: Path | None = None, **kw: Any) -> Trainer:
    flow = Flow(list(layers), (2,), prior=StandardNormal((2,)))
    objective = MaxLikelihood()
    objective.setup(flow, DataInfo(shape=(2,), classes=0, levels=None, name="points"))
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 2, generator=g), torch.zeros(64, dtype=torch.long))
    return Trainer(flow, objective, DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator()),
                   settings(**kw), files=None if run_dir is None else RunFolder(run_dir),
                   progress_stream=io.StringIO())


def test_a_non_finite_output_stops_naming_the_layer_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    trainer = trainer_with(Scale(2), Scale(2, break_at=5), Scale(2), run_dir=tmp_path)
    with pytest.raises(TrainingDiverged) as caught:
        trainer.fit()
    message = str(caught.value)
    assert "step 4: the 'model' loss is inf" in message  # (forward call 1 is the data-dependent init)
    assert "the output of flow net.layers.1 (Scale) went non-finite first" in message
    assert f"last good checkpoint {tmp_path / 'checkpoints' / 'step-000003.pt'} is kept" in message
    assert latest_step(tmp_path) == 3 and not (tmp_path / "checkpoints" / "step-000004.pt").exists()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # nothing non-finite was applied


def test_a_non_finite_gradient_stops_naming_the_parameter() -> None:
    trainer = trainer_with(Scale(2), NanGradientAt(2, break_at=3))
    before: dict[str, Tensor] = {}
    trainer.optimizers["model"].register_step_post_hook(
        lambda *_: before.update({k: v.clone() for k, v in trainer.model.state_dict().items()}))
    with pytest.raises(TrainingDiverged, match=r"step 2: the 'model' gradient norm is nan; first non-finite "
                                               r"gradients: flow\.net\.layers\.1\.log_scale"):
        trainer.fit()
    assert trainer.step == 1 and before  # step 1 was applied …
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())  # … step 2 left no trace


def test_with_on_nonfinite_skip_the_bad_update_is_left_out_and_counted(tmp_path: Path) -> None:
    trainer = trainer_with(Scale(2, break_at=3, poison=float("nan"), repeat=1), run_dir=tmp_path, on_nonfinite="skip")
    after: list[Tensor] = []
    trainer.optimizers["model"].register_step_post_hook(lambda *_: after.append(trainer.model.net[0].log_scale.clone()))
    result = trainer.fit()
    assert result.step == 6 and len(after) == 5  # six steps, five optimizer updates
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["skipped_updates"] for r in records] == [0, 1, 1, 1, 1, 1]  # step 2 (call 1 is the init)
    assert load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))["skipped_updates"] == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_the_cli_reports_divergence_in_one_line_with_exit_code_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    original = MaxLikelihood.losses
    calls = {"n": 0}

    def nan_on_call_3(self: MaxLikelihood, model: Flow, batch: Any, update: str = "model") -> Any:
        calls["n"] += 1
        out = original(self, model, batch, update)
        if calls["n"] == 3:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(MaxLikelihood, "losses", nan_on_call_3)
    spec = write_spec(tmp_path, 10)
    code = main(["run", str(spec), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[-1].startswith("error: training diverged at step 3") and "Traceback" not in "".join(err)
    assert latest_step(tmp_path / "run") == 2


# -- checkpoint files ---------------------------------------------------------------------------------


def test_only_the_newest_keep_checkpoints_remain_and_latest_names_the_newest(tmp_path: Path) -> None:
    trainer_with(Scale(2), run_dir=tmp_path, keep_checkpoints=4, steps=7).fit()
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == [f"step-{s:06d}.pt" for s in (4, 5, 6, 7)]
    assert latest_step(tmp_path) == 7


def test_a_temporary_file_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".step-000002.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    state = {"step": 3, "flow": {}, "objective": {}, "optimizers": {}, "schedulers": {}, "rng": {}, "spec": ""}
    save_checkpoint(folder, state)
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-000003.pt"]
