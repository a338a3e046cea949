"""Checkpoints: atomic writes, the ``latest`` pointer, keep-last-3, safe loading, exact resume."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from revkit.blocks.coupling import AffineCoupling
from revkit.data.base import DataInfo
from revkit.errors import CheckpointError
from revkit.flow import Flow
from revkit.runs.folder import RunFolder
from revkit.objectives.max_likelihood import MaxLikelihood
from revkit.priors.diagonal_gaussian import DiagonalGaussian
from revkit.train import Trainer
from revkit.runs.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


def state(step: int, value: float = 0.0) -> dict[str, Any]:
    return {"step": step, "flow": {"w": torch.full((3,), value)}, "objective": {}, "optimizers": {},
            "schedulers": {}, "rng": {"torch": torch.get_rng_state()}, "spec": "[model]\n"}


# -- files -----------------------------------------------------------------------------------


def test_a_saved_checkpoint_loads_back_and_latest_names_it(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, state(7, 1.5))
    assert path.name == "step-000007.pt"
    assert (tmp_path / "latest").read_text().strip() == "step-000007.pt"
    assert latest_checkpoint(tmp_path) == path
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and torch.equal(loaded["flow"]["w"], torch.full((3,), 1.5))
    assert loaded["spec"] == "[model]\n"


def test_only_the_last_three_checkpoints_are_kept(tmp_path: Path) -> None:
    for step in range(1, 6):
        save_checkpoint(tmp_path, state(step))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000003.pt", "step-000004.pt", "step-000005.pt"]
    assert latest_checkpoint(tmp_path).name == "step-000005.pt"


def test_a_failure_while_saving_leaves_the_previous_checkpoint_intact(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path, state(1, 1.0))
    before = sorted(p.name for p in tmp_path.iterdir())

    def disk_full(obj: Any, f: io.BufferedWriter, *args: Any, **kwargs: Any) -> None:
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(tmp_path, state(2, 2.0))
    message = str(info.value)  # names the file, the reason and what was kept
    assert str(tmp_path / "step-000002.pt") in message and "No space left on device" in message
    assert f"the last checkpoint, {tmp_path / 'step-000001.pt'}, is intact" in message
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial or temporary file
    assert latest_checkpoint(tmp_path).name == "step-000001.pt"
    assert torch.equal(load_checkpoint(latest_checkpoint(tmp_path))["flow"]["w"], torch.ones(3))


def test_a_truncated_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, state(3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{path}.*truncated or corrupt"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


class Payload:
    """An arbitrary object: pickling it would let a file run code on load."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getcwd, ())


def test_loading_uses_weights_only_so_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "step-000001.pt"
    torch.save({**state(1), "flow": Payload()}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    with pytest.raises(TypeError, match="plain data"):
        save_checkpoint(tmp_path, {**state(2), "flow": Payload()})


def test_missing_or_dangling_latest_pointer_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
    (tmp_path / "latest").write_text("step-000009.pt\n")
    with pytest.raises(CheckpointError, match="step-000009.pt, which does not exist"):
        latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "step-000009.pt")


def test_a_file_without_the_checkpoint_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "step-000001.pt"
    torch.save({"step": 1}, path)
    with pytest.raises(CheckpointError, match="not a revkit checkpoint"):
        load_checkpoint(path)


# -- resuming a trainer ----------------------------------------------------------------------

STEPS = 12
INFO = DataInfo(shape=(2,), classes=0, levels=256, name="grid")


def settings(**changes: Any) -> SimpleNamespace:
    return SimpleNamespace(**{**dict(seed=5, device="cpu", steps=STEPS, lr=1e-2, weight_decay=1e-3, betas=(0.9, 0.99),
                                     schedule="cosine", warmup_steps=3, step_size=None, gamma=0.5, grad_clip=1.0,
                                     log_every=1, checkpoint_every=0, eval_every=0, time_limit_minutes=0.0),
                              **changes})


def make_trainer(run_dir: Path, hidden: int = 16, generator: bool = True, init_seed: int = 0,
                 **changes: Any) -> Trainer:
    """Affine couplings + learned diagonal Gaussian under max likelihood with uniform dequantization
    (random every step) on shuffled 8-bit data: every kind of state a resume must restore."""
    torch.manual_seed(init_seed)
    flow = Flow([AffineCoupling((2,), hidden=hidden), AffineCoupling((2,), hidden=hidden, flip=True)], (2,),
                prior=DiagonalGaussian((2,)))
    objective = MaxLikelihood()
    objective.setup(flow, INFO)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (100, 2), generator=g).float() / 255.0
    data = TensorDataset(x, torch.zeros(100, dtype=torch.long))
    loader = DataLoader(data, batch_size=16, shuffle=True, drop_last=True,
                        generator=torch.Generator() if generator else None)
    return Trainer(flow, objective, loader, settings(**changes), files=RunFolder(run_dir),
                   progress_stream=io.StringIO())


def parameters(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])


@pytest.mark.parametrize("generator", [True, False], ids=["loader-with-generator", "loader-without"])
def test_resuming_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path: Path, generator: bool) -> None:
    straight = make_trainer(tmp_path / "straight", generator=generator)
    straight.fit()

    first = make_trainer(tmp_path / "resumed", generator=generator)
    optimizer = first.optimizers["model"]
    optimizer.register_step_post_hook(lambda *_: first.stop.request("interrupted") if first.step == 4 else None)
    result = first.fit()
    assert result.stopped == "interrupted" and result.step == 5  # 7 steps (and 4 epochs' data) to go

    # a new process: other initial weights, other global random state, then the checkpoint
    second = make_trainer(tmp_path / "resumed", generator=generator, init_seed=99)
    torch.manual_seed(12345)
    second.load_state_dict(load_checkpoint(latest_checkpoint(tmp_path / "resumed" / "checkpoints")))
    assert second.step == 5
    assert second.fit().step == STEPS

    assert torch.equal(parameters(second), parameters(straight))
    losses = {r["step"]: r["loss"] for r in second.metrics.records}
    assert losses == {r["step"]: r["loss"] for r in straight.metrics.records}


def interrupted_then_resumed(run_dir: Path, at_step: int, **changes: Any) -> Trainer:
    """A trainer stopped (as by Ctrl-C) after step ``at_step``, then a fresh one resumed from its checkpoint
    and trained to the end."""
    first = make_trainer(run_dir, **changes)
    optimizer = first.optimizers["model"]
    optimizer.register_step_post_hook(lambda *_: first.stop.request("interrupted") if first.step == at_step else None)
    assert first.fit().stopped == "interrupted"
    second = make_trainer(run_dir, init_seed=99, **changes)
    second.load_state_dict(load_checkpoint(latest_checkpoint(run_dir / "checkpoints")))
    second.fit()
    return second


def test_with_a_weight_average_the_model_ends_as_the_average_and_a_resume_changes_nothing(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "straight", ema_decay=0.8)
    seen: list[torch.Tensor] = []
    straight.evaluate = lambda device: seen.append(parameters(straight)) or {}
    straight.settings.eval_every = 4
    straight.fit()
    average = straight.average
    assert average is not None and average.updates == STEPS
    names = dict(straight.model.named_parameters(prefix="flow"))
    for name, value in average.average.items():  # the trained model is the average
        assert torch.equal(names[name].detach(), value), name
    final = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    assert final["step"] == STEPS and set(final["average"]["weights"]) == set(average.average)
    live = final["live"]["flow"]  # the weights training would go on from: not the average
    assert any(not torch.equal(live[k], v) for k, v in final["flow"].items() if v.is_floating_point())
    # evaluations during training saw the average of that step, not the live weights
    assert len(seen) == STEPS // 4 and torch.equal(seen[-1], parameters(straight))

    resumed = interrupted_then_resumed(tmp_path / "resumed", 4, ema_decay=0.8)
    assert torch.equal(parameters(resumed), parameters(straight))
    assert resumed.average is not None
    assert all(torch.equal(resumed.average.average[k], v) for k, v in average.average.items())

    # resuming the finished run: no step to take, the same model
    again = make_trainer(tmp_path / "straight", init_seed=7, ema_decay=0.8)
    again.load_state_dict(final)
    assert again.fit().step == STEPS and torch.equal(parameters(again), parameters(straight))


def test_a_checkpoint_without_the_average_the_spec_asks_for_is_refused(tmp_path: Path) -> None:
    plain = make_trainer(tmp_path / "plain", steps=1)
    plain.fit()
    path = latest_checkpoint(tmp_path / "plain" / "checkpoints")
    with pytest.raises(CheckpointError, match=rf"{path}: has no weight average, but train.ema_decay = 0.9"):
        make_trainer(tmp_path / "other", ema_decay=0.9).load_state_dict(load_checkpoint(path), source=path)


def test_a_checkpoint_of_another_model_is_refused_naming_the_file(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path / "run", hidden=16)
    trainer.settings.steps = 1
    trainer.fit()
    path = latest_checkpoint(tmp_path / "run" / "checkpoints")
    other = make_trainer(tmp_path / "other", hidden=8)
    with pytest.raises(CheckpointError, match=rf"{path}: was saved from a different model"):
        other.load_state_dict(load_checkpoint(path), source=path)
