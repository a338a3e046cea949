"""The trainer: devices, seeds, optimizers per group, schedules, clipping, init, logging, stopping,
and the final evaluation outputs.

These tests use small hand-written components (an elementwise affine block, a learned-mean
Gaussian prior, a negative-log-likelihood objective) so they pin down the trainer alone.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from revkit.errors import RevkitError
from revkit.eval.curve import write_training_curve
from revkit.eval.likelihood import evaluate_split
from revkit.eval.report import evaluate_run
from revkit.eval.samples import draw_samples
from revkit.flow import Flow
from revkit.runs.folder import RunFolder
from revkit.runs.run import evaluation_during_training
from revkit.invertible import Invertible
from revkit.objectives.base import Losses, Objective
from revkit.priors.base import Prior
from revkit.train import Trainer, TrainingDiverged
from revkit.train.batches import BatchStream
from revkit.runtime.device import resolve_device
from revkit.train.metrics import read_metrics
from revkit.train.progress import Progress
from revkit.train.schedule import lr_factor

# -- throw-away components ------------------------------------------------------------------


class ElementwiseAffine(Invertible):
    """y = x · exp(s) + b per element; log|det J| = Σ s."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.shift = nn.Parameter(torch.zeros(shape))
        self.seen_training: list[bool] = []

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.seen_training.append(self.training)
        y = x * self.log_scale.exp() + self.shift
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (y - self.shift) * (-self.log_scale).exp()
        return x, (-self.log_scale.sum()).expand(y.shape[0])


class LearnedMeanGaussian(Prior):
    """N(mean, I) with a learned mean; ``init_from_data`` sets the mean to the encodings' mean."""

    def __init__(self, shape: tuple[int, ...], init: bool = True):
        super().__init__(shape)
        self.mean = nn.Parameter(torch.zeros(shape))
        self.init = init
        self.init_calls: list[tuple[Tensor, Tensor | None]] = []

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        d = (z - self.mean).reshape(z.shape[0], -1)
        return -0.5 * (d.pow(2).sum(1) + d.shape[1] * math.log(2 * math.pi))

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        return self.mean + temperature * torch.randn(n, *self.shape)

    @torch.no_grad()
    def init_from_data(self, z: Tensor, y: Tensor | None = None) -> None:
        self.init_calls.append((z.clone(), None if y is None else y.clone()))
        if self.init:
            self.mean.copy_(z.mean(0))


class PerClassPrior(Prior):
    """N(10·k, I) for class k (fixed): a class-conditional prior for the sample grid."""

    conditional = True

    def __init__(self, shape: tuple[int, ...], classes: int):
        super().__init__(shape)
        self._classes = classes
        self.register_buffer("anchor", torch.zeros(()))

    @property
    def classes(self) -> int:
        return self._classes

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        assert y is not None
        d = (z - 10.0 * y.view(-1, *([1] * len(self.shape)))).reshape(z.shape[0], -1)
        return -0.5 * d.pow(2).sum(1)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        assert y is not None
        mean = 10.0 * y.float().view(-1, *([1] * len(self.shape))).expand(n, *self.shape)
        return mean + temperature * torch.randn(n, *self.shape)


class Nll(Objective):
    """Mean negative log-likelihood in nats per dimension."""

    main_metric = "nll"

    def losses(self, model: Flow, batch: Any, update: str = "model") -> Losses:
        x, _ = batch
        nll = -model.log_prob(x) / x[0].numel()
        return Losses(nll.mean(), {"nll": float(nll.mean().detach())})

    @torch.no_grad()
    def evaluate(self, model: Flow, batch: Any) -> dict[str, Tensor]:
        x, _ = batch
        return {"nll": -model.log_prob(x) / x[0].numel()}


class TwoPlayer(Objective):
    """A 'critic' group with its own parameter and learning rate, updated after the model."""

    def __init__(self, critic_lr: float = 0.5):
        super().__init__()
        self.critic = nn.Parameter(torch.zeros(()))
        self.critic_lr = critic_lr
        self.calls: list[str] = []

    def update_order(self) -> list[str]:
        return ["model", "critic"]

    def parameter_groups(self, model: Flow) -> dict[str, list[nn.Parameter]]:
        return {"model": list(model.parameters()), "critic": [self.critic]}

    def optimizer_overrides(self, group: str) -> dict[str, float]:
        return {"lr": self.critic_lr} if group == "critic" else {}

    def losses(self, model: Flow, batch: Any, update: str = "model") -> Losses:
        self.calls.append(update)
        x, _ = batch
        z = model.encode(x)
        if update == "model":
            return Losses((z.pow(2).mean() + self.critic.detach() * z.mean()), {"zmean": float(z.mean().detach())})
        return Losses((self.critic - 3.0) ** 2 + 0.0 * z.mean(), {"critic": float(self.critic.detach())})


def settings(**kw: Any) -> SimpleNamespace:
    base = dict(seed=0, device="cpu", steps=20, lr=0.05, weight_decay=0.0, betas=[0.9, 0.999],
                schedule="none", warmup_steps=0, step_size=1000, gamma=0.5, grad_clip=0.0,
                log_every=5, checkpoint_every=0, eval_every=0, time_limit_minutes=0.0)
    base.update(kw)
    return SimpleNamespace(**base)


def eval_settings(**kw: Any) -> SimpleNamespace:
    base = dict(samples=16, temperature=1.0, reconstructions=4, test_batches=0)
    base.update(kw)
    return SimpleNamespace(**base)


def gaussian_data(n: int = 256, shape: tuple[int, ...] = (2,), mean: float = 3.0, std: float = 0.5,
                  seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = mean + std * torch.randn(n, *shape, generator=g)
    return TensorDataset(x, torch.zeros(n, dtype=torch.long))


def make_flow(shape: tuple[int, ...] = (2,), prior: Prior | None = None) -> Flow:
    return Flow([ElementwiseAffine(shape)], shape, prior=prior or LearnedMeanGaussian(shape))


def trainer_for(flow: Flow, objective: Objective, data: TensorDataset, run_dir: Any = None,
                stream: io.StringIO | None = None, **kw: Any) -> Trainer:
    loader = DataLoader(data, batch_size=32, shuffle=True)
    test = DataLoader(data, batch_size=50)
    return Trainer(flow, objective, loader, settings(**kw), evaluate=evaluation_during_training(flow, objective, test, 0),
                   files=None if run_dir is None else RunFolder(run_dir), progress_stream=stream or io.StringIO())


# -- device ----------------------------------------------------------------------------------


def test_device_names_resolve_and_cuda_without_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RevkitError, match=r"train\.device = 'cuda'.*not available.*'cpu' or 'auto'"):
        resolve_device("cuda")
    with pytest.raises(RevkitError, match=r"'tpu' is not a device"):
        resolve_device("tpu")


# -- schedules -------------------------------------------------------------------------------


def test_warmup_is_linear_and_cosine_decays_to_zero_at_the_last_step() -> None:
    f = lr_factor(settings(schedule="cosine", steps=110, warmup_steps=10))
    assert [f(t) for t in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)  # half-way through the decay
    assert f(110) == pytest.approx(0.0, abs=1e-12)
    values = [f(t) for t in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_step_schedule_multiplies_by_gamma_every_step_size_steps() -> None:
    f = lr_factor(settings(schedule="step", step_size=3, gamma=0.1))
    assert [f(t) for t in range(7)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])
    assert lr_factor(settings(schedule="none", warmup_steps=0))(12345) == 1.0
    with pytest.raises(RevkitError, match="train.schedule: 'linear'"):
        lr_factor(settings(schedule="linear"))


def test_the_optimizer_follows_the_schedule_step_by_step() -> None:
    trainer = trainer_for(make_flow(), Nll(), gaussian_data(), steps=6, schedule="step", step_size=2,
                          gamma=0.5, lr=0.1)
    seen = []
    opt = trainer.optimizers["model"]
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))
    trainer.fit()
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


# -- the loop --------------------------------------------------------------------------------


def test_training_fits_a_gaussian_and_lowers_the_loss() -> None:
    data = gaussian_data(n=512, mean=3.0, std=0.5)
    flow = make_flow()
    trainer = trainer_for(flow, Nll(), data, steps=300, log_every=50, schedule="cosine")
    result = trainer.fit()
    assert result.step == 300 and result.stopped == "completed"
    losses = [r["loss"] for r in trainer.metrics.records]
    # the best nll per dimension for Gaussian data is ½·log(2πe) + mean over dimensions of log(std)
    best = 0.5 * math.log(2 * math.pi * math.e) + float(data.tensors[0].std(0).log().mean())
    assert losses[-1] < losses[0] - 0.05
    assert losses[-1] == pytest.approx(best, abs=0.03)
    # the model density must have the data's mean and std
    samples = flow.sample(4000).detach()
    assert samples.mean(0) == pytest.approx(data.tensors[0].mean(0), abs=0.06)
    assert samples.std(0) == pytest.approx(data.tensors[0].std(0), abs=0.04)


def test_before_step_one_the_prior_is_initialised_from_encodings_in_train_mode() -> None:
    data = gaussian_data(n=64, mean=5.0)
    flow = make_flow()
    block = flow.net[0]
    trainer = trainer_for(flow, Nll(), data, steps=1)
    first_batch = trainer.stream.peek()[0].clone()
    trainer.fit()
    calls = flow.prior.init_calls
    assert len(calls) == 1
    z, _ = calls[0]
    assert torch.equal(z, first_batch)  # the untrained block is the identity
    assert block.seen_training[0] is True


def test_each_group_has_its_own_optimizer_and_updates_run_in_order() -> None:
    objective = TwoPlayer(critic_lr=0.5)
    trainer = trainer_for(make_flow(), objective, gaussian_data(), steps=4, lr=0.01)
    assert list(trainer.optimizers) == ["model", "critic"]
    assert trainer.optimizers["critic"].param_groups[0]["lr"] == 0.5
    assert trainer.optimizers["model"].param_groups[0]["lr"] == 0.01
    critic_params = {id(p) for p in trainer.optimizers["critic"].param_groups[0]["params"]}
    model_params = {id(p) for p in trainer.optimizers["model"].param_groups[0]["params"]}
    assert critic_params == {id(objective.critic)} and not critic_params & model_params
    trainer.fit()
    assert objective.calls == ["model", "critic"] * 4
    record = trainer.metrics.records[-1]
    assert {"loss", "zmean", "critic_loss", "critic_critic", "lr", "critic_lr"} <= set(record)


def test_an_unknown_optimizer_override_is_an_error() -> None:
    class BadOverride(Nll):
        def optimizer_overrides(self, group: str) -> dict[str, float]:
            return {"momentum": 0.9}

    with pytest.raises(RevkitError, match=r"momentum.*allowed: lr"):
        trainer_for(make_flow(), BadOverride(), gaussian_data())


def test_gradients_are_clipped_to_the_global_norm_before_each_step() -> None:
    def far_flow() -> Flow:  # a prior far from the data: large gradients
        return make_flow(prior=LearnedMeanGaussian((2,), init=False))

    trainer = trainer_for(far_flow(), Nll(), gaussian_data(mean=50.0), steps=5, grad_clip=0.25)
    norms = []

    def record(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    trainer.optimizers["model"].register_step_pre_hook(record)
    trainer.fit()
    assert len(norms) == 5 and max(norms) <= 0.25 + 1e-6
    # without clipping the same data gives far larger gradients
    unclipped = trainer_for(far_flow(), Nll(), gaussian_data(mean=50.0), steps=1)
    norms.clear()
    unclipped.optimizers["model"].register_step_pre_hook(record)
    unclipped.fit()
    assert norms[0] > 10.0


def test_the_same_seed_gives_the_same_parameters_and_another_seed_does_not() -> None:
    def train(seed: int) -> Tensor:
        torch.manual_seed(123)  # the trainer re-seeds from train.seed
        flow = make_flow()
        trainer_for(flow, Nll(), gaussian_data(), steps=15, seed=seed).fit()
        return torch.cat([p.detach().reshape(-1) for p in flow.parameters()])

    assert torch.equal(train(7), train(7))
    assert not torch.equal(train(7), train(8))


def test_a_nan_loss_stops_training_with_the_step_and_advice() -> None:
    class NanAtStep3(Nll):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def losses(self, model: Flow, batch: Any, update: str = "model") -> Losses:
            self.calls += 1
            out = super().losses(model, batch, update)
            return Losses(out.loss * float("nan"), {}) if self.calls == 3 else out

    trainer = trainer_for(make_flow(), NanAtStep3(), gaussian_data(), steps=10)
    with pytest.raises(TrainingDiverged, match=r"step 3: the 'model' loss is nan.*train\.lr"):
        trainer.fit()
    assert trainer.step == 2


# -- logging and progress --------------------------------------------------------------------


def test_metrics_jsonl_has_one_record_per_log_every_steps(tmp_path: Any) -> None:
    trainer = trainer_for(make_flow(), Nll(), gaussian_data(), run_dir=tmp_path, steps=20, log_every=5)
    trainer.fit()
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    for r in records:
        assert {"step", "loss", "nll", "lr", "images_per_s", "time"} <= set(r)
        assert r["images_per_s"] > 0 and r["lr"] == pytest.approx(0.05)
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)


def test_without_a_terminal_progress_is_a_plain_line_every_log_every_steps() -> None:
    stream = io.StringIO()
    trainer_for(make_flow(), Nll(), gaussian_data(), stream=stream, steps=12, log_every=4).fit()
    lines = stream.getvalue().strip().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["step 4/12", "step 8/12", "step 12/12"]
    assert all("loss " in line and "images_per_s " in line for line in lines)


def test_in_a_terminal_progress_is_a_bar() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = Progress(total=10, log_every=2, stream=stream)
    for step in range(1, 11):
        progress.update(step, loss=1.5, images_per_s=100.0)
        progress.log(step, {"loss": 1.5})
    progress.close()
    text = stream.getvalue()
    assert "10/10" in text and "step 2/10" not in text


def test_eval_every_adds_test_records_during_training(tmp_path: Any) -> None:
    trainer = trainer_for(make_flow(), Nll(), gaussian_data(), run_dir=tmp_path, steps=10, log_every=5,
                          eval_every=5)
    trainer.fit()
    test_records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "test_nll" in r]
    assert [r["step"] for r in test_records] == [5, 10]


# -- stopping --------------------------------------------------------------------------------


def test_the_time_limit_stops_early_and_still_checkpoints(tmp_path: Any) -> None:
    trainer = trainer_for(make_flow(), Nll(), gaussian_data(), run_dir=tmp_path, steps=10_000,
                          time_limit_minutes=1e-9)
    result = trainer.fit()
    assert result.stopped == "time_limit"
    assert result.step < 10_000
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == f"step-{result.step:06d}.pt"


def test_ctrl_c_finishes_the_step_then_checkpoints(tmp_path: Any) -> None:
    class InterruptsAtStep3(Nll):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def losses(self, model: Flow, batch: Any, update: str = "model") -> Losses:
            self.calls += 1
            if self.calls == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return super().losses(model, batch, update)

    def before(signum: int, frame: Any) -> None:  # the handler that was there before training
        raise AssertionError("the trainer's handler should have caught this SIGINT")

    previous = signal.signal(signal.SIGINT, before)  # whatever started the tests (nohup: SIG_IGN)
    try:
        trainer = trainer_for(make_flow(), InterruptsAtStep3(), gaussian_data(), run_dir=tmp_path, steps=50)
        result = trainer.fit()
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.stopped == "interrupted" and result.step == 3
    assert (tmp_path / "checkpoints" / "step-000003.pt").exists()
    assert after is before  # the previous handler is restored afterwards, not Python's default


@pytest.mark.parametrize("previous", [signal.SIG_IGN, signal.default_int_handler], ids=["ignored", "default"])
def test_training_restores_whatever_sigint_handler_was_there_before(previous: Any, tmp_path: Any) -> None:
    """Under nohup SIGINT is ignored; training must hand back exactly that, whatever started the tests."""
    old = signal.signal(signal.SIGINT, previous)
    try:
        trainer_for(make_flow(), Nll(), gaussian_data(), run_dir=tmp_path, steps=2).fit()
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, old)
    assert after is previous


# -- the batch stream ------------------------------------------------------------------------


def test_the_batch_stream_cycles_epochs_and_resumes_at_the_same_batch() -> None:
    data = TensorDataset(torch.arange(10.0).unsqueeze(1), torch.zeros(10, dtype=torch.long))
    loader = DataLoader(data, batch_size=4, shuffle=True)
    stream = BatchStream(loader, seed=3)
    seen = [stream.next_batch()[0].reshape(-1).tolist() for _ in range(7)]
    epoch0 = sorted(v for b in seen[:3] for v in b)
    assert epoch0 == [float(i) for i in range(10)]  # 3 batches = one epoch
    assert seen[:3] != seen[3:6]  # a new shuffle each epoch
    state = {"epoch": 2, "index": 1}
    assert stream.state_dict() == state
    torch.manual_seed(999)  # the global generator must not matter
    other = BatchStream(DataLoader(data, batch_size=4, shuffle=True), seed=3)
    other.load_state_dict({"epoch": 2, "index": 0})
    assert other.next_batch()[0].reshape(-1).tolist() == seen[6]


# -- evaluation outputs ----------------------------------------------------------------------


def test_evaluate_split_averages_per_sample_over_uneven_batches() -> None:
    data = gaussian_data(n=70)
    flow = make_flow()
    loader = DataLoader(data, batch_size=32)  # 32 + 32 + 6
    means, count = evaluate_split(flow, Nll(), loader, torch.device("cpu"))
    expected = float((-flow.log_prob(data.tensors[0]).detach() / 2).mean())
    assert count == 70 and means["nll"] == pytest.approx(expected, rel=1e-6)
    _, partial = evaluate_split(flow, Nll(), loader, torch.device("cpu"), max_batches=2)
    assert partial == 64


def test_class_conditional_samples_come_as_one_row_per_class() -> None:
    flow = Flow([ElementwiseAffine((1, 2, 2))], (1, 2, 2), prior=PerClassPrior((1, 2, 2), classes=3))
    images, per_row = draw_samples(flow, n=7, temperature=0.0)
    assert per_row == 3 and images.shape == (9, 1, 2, 2)
    assert images.reshape(3, 3, -1).mean(dim=(1, 2)).tolist() == [0.0, 10.0, 20.0]


def test_final_evaluation_writes_image_files_and_returns_the_metrics(tmp_path: Any) -> None:
    shape = (1, 4, 4)
    data = TensorDataset(torch.rand(40, *shape), torch.zeros(40, dtype=torch.long))
    flow = make_flow(shape)
    records = [{"step": 1, "loss": 2.0, "lr": 0.1}, {"step": 2, "loss": 1.0, "lr": 0.1},
               {"step": 2, "test_nll": 1.5}]
    budget = {"steps": 2, "seconds": 0.5, "device": "cpu", "parameters": 32, "stopped": "completed"}
    metrics = evaluate_run(flow, Nll(), DataLoader(data, batch_size=16), eval_settings(samples=9, reconstructions=5),
                           tmp_path, torch.device("cpu"), budget, records)
    on_disk = metrics  # the run layer writes them (tests/test_cli.py reads metrics.json of a real run)
    assert not (tmp_path / "metrics.json").exists()
    assert on_disk["test_samples"] == 40 and on_disk["main_metric"] == "test_nll"
    assert on_disk["max_reconstruction_error"] < 1e-5
    assert {k: on_disk[k] for k in budget} == budget
    for name in ("samples.png", "reconstructions.png", "training_curve.png"):
        assert Image.open(tmp_path / name).format == "PNG"
    # 9 samples → a 3×3 grid of 4-pixel images with a 2-pixel border: 2 + 3·(4 + 2) = 20
    assert Image.open(tmp_path / "samples.png").size == (20, 20)
    # 5 originals over 5 reconstructions: 2 rows of 5
    assert Image.open(tmp_path / "reconstructions.png").size == (32, 14)
    assert not (tmp_path / "density.png").exists()


def test_final_evaluation_of_2d_data_draws_a_scatter_and_a_density_map(tmp_path: Any) -> None:
    data = gaussian_data(n=64)
    budget = {"steps": 0}
    metrics = evaluate_run(make_flow(), Nll(), DataLoader(data, batch_size=16), eval_settings(test_batches=2),
                           tmp_path, torch.device("cpu"), budget, [])
    assert metrics["test_samples"] == 32
    for name in ("samples.png", "density.png", "training_curve.png"):
        assert Image.open(tmp_path / name).format == "PNG"
    assert not (tmp_path / "reconstructions.png").exists()


def test_the_training_curve_plots_losses_and_test_metrics(tmp_path: Any) -> None:
    path = write_training_curve([{"step": s, "loss": 1.0 / s, "lr": 0.1, "time": s} for s in range(1, 5)]
                                + [{"step": 4, "test_nll": 0.3}], tmp_path / "curve.png")
    image = np.asarray(Image.open(path).convert("L"))
    assert image.shape[0] > 100 and image.std() > 0  # two panels, something drawn


def test_resuming_drops_metric_lines_written_after_the_checkpoint(tmp_path: Any) -> None:
    from revkit.train.metrics import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (10, 20, 30):
        log.write({"step": step, "loss": 1.0 / step})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "lo')  # torn by a crash
    log.truncate_after(20)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [10, 20]


# -- hooks for objectives with phases and priors with constraints ----------------------------


class Phased(TwoPlayer):
    """Only the model for the first two steps, then critic, critic, model."""

    def updates_at(self, step: int) -> list[str]:
        return ["model"] if step < 2 else ["critic", "critic", "model"]


def test_updates_at_lets_an_objective_switch_phases_and_repeat_updates() -> None:
    objective = Phased()
    trainer = trainer_for(make_flow(), objective, gaussian_data(), steps=4, lr=0.01)
    trainer.fit()
    assert objective.calls == ["model", "model"] + ["critic", "critic", "model"] * 2


class ClampedMeanPrior(LearnedMeanGaussian):
    """A prior whose mean must stay ≤ 0; it wants 100 encodings for its initialisation."""

    init_samples = 100

    def __init__(self, shape: tuple[int, ...]):
        super().__init__(shape, init=False)
        self.after_step_calls = 0

    @torch.no_grad()
    def after_step(self) -> None:
        self.after_step_calls += 1
        self.mean.clamp_(max=0.0)


def test_the_prior_is_projected_after_every_optimizer_step() -> None:
    prior = ClampedMeanPrior((2,))
    trainer = trainer_for(make_flow(prior=prior), Nll(), gaussian_data(mean=3.0), steps=6)
    trainer.fit()
    assert prior.after_step_calls == 6
    assert float(prior.mean.detach().max()) <= 0.0  # the data pull it up; the projection holds it at 0


class RecordingNll(Nll):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[Tensor] = []

    def losses(self, model: Flow, batch: Any, update: str = "model") -> Losses:
        self.batches.append(batch[0].clone())
        return super().losses(model, batch, update)


def test_a_prior_that_asks_for_more_encodings_gets_them_without_changing_the_batch_order() -> None:
    data = gaussian_data(n=256)
    plain, asking = RecordingNll(), RecordingNll()
    trainer_for(make_flow(prior=LearnedMeanGaussian((2,), init=False)), plain, data, steps=5).fit()
    prior = ClampedMeanPrior((2,))
    trainer_for(make_flow(prior=prior), asking, data, steps=5).fit()
    z, y = prior.init_calls[0]
    assert z.shape[0] == 100 and y is not None and y.shape[0] == 100
    assert len(plain.batches) == len(asking.batches) == 5
    assert all(torch.equal(a, b) for a, b in zip(plain.batches, asking.batches))
