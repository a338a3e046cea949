"""Data-parallel training: two CPU processes (gloo) take the same steps as one process on the same
global batches, with data-dependent initialisation, several parameter groups and the OT objective;
the ``--nproc`` launcher end to end; only rank 0 writes the run folder."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from revkit.blocks import ActNorm, AffineCoupling, RevBlock
from revkit.data.base import DataInfo
from revkit.errors import RevkitError
from revkit.flow import Flow
from revkit.invertible import Invertible
from revkit.objectives import FlowGan, LatentAdversary, MaxLikelihood, OptimalTransport
from revkit.priors import ActiveGaussian, ClassGaussian, StandardNormal
from revkit.spec import load_spec
from revkit.train import Trainer, TrainingDiverged
from revkit.train.distributed import Distributed, ShardedBatchSampler
from revkit.train.launch import free_port
from revkit.runs.run import run_spec

TOLERANCE = 1e-5  # the DDP equivalence tolerance docs/robustness.md quotes
WORLD = 2


def settings(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "seed": 3, "device": "cpu", "steps": 6, "lr": 1e-2, "weight_decay": 0.0, "betas": (0.9, 0.999),
        "schedule": "cosine", "warmup_steps": 2, "step_size": None, "gamma": 0.5, "grad_clip": 1.0,
        "log_every": 1, "checkpoint_every": 0, "eval_every": 0, "time_limit_minutes": 0.0,
    }
    return SimpleNamespace(**{**base, **kw})


def labelled_vectors(n: int = 96, dims: int = 4) -> TensorDataset:
    g = torch.Generator().manual_seed(7)
    y = torch.arange(n) % 2
    return TensorDataset(torch.randn(n, dims, generator=g) + 2.0 * y[:, None], y)


def loader(data: TensorDataset, batch_size: int = 16) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, generator=torch.Generator())


# -- the models under test --------------------------------------------------------------------------


def likelihood_trainer(dist: Distributed | None = None) -> Trainer:
    """Actnorm (data init) + couplings + a class prior initialised from 48 encodings (more than one
    batch) under maximum likelihood: a loss that is a mean over the batch."""
    torch.manual_seed(0)
    prior = ClassGaussian((4,), classes=2, init="data", init_samples=48)
    flow = Flow([ActNorm((4,)), AffineCoupling((4,), hidden=8), AffineCoupling((4,), hidden=8, flip=True)], (4,),
                prior=prior)
    objective = MaxLikelihood()
    objective.setup(flow, DataInfo(shape=(4,), classes=2, levels=None, name="vectors"))
    return Trainer(flow, objective, loader(labelled_vectors()), settings(), progress_stream=io.StringIO(), dist=dist)


def saving_likelihood_trainer(dist: Distributed | None = None) -> Trainer:
    """:func:`likelihood_trainer` with every block in memory-saving execution."""
    trainer = likelihood_trainer(dist)
    trainer.model.net.set_memory_saving(True)
    return trainer


def adversary_trainer(dist: Distributed | None = None) -> Trainer:
    """A critic with its own optimizer, updated twice per step after one phase-1 step."""
    torch.manual_seed(0)
    flow = Flow([RevBlock((4,), hidden=8), RevBlock((4,), hidden=8)], (4,), prior=ActiveGaussian((4,), k=2))
    objective = LatentAdversary(critic_hidden=8, phase1_steps=1, critic_steps=2)
    objective.setup(flow, DataInfo(shape=(4,), classes=0, levels=None, name="vectors"))
    return Trainer(flow, objective, loader(labelled_vectors()), settings(steps=4), progress_stream=io.StringIO(),
                   dist=dist)


def flow_gan_trainer(dist: Distributed | None = None) -> Trainer:
    """Flow-GAN in data space: an MLP discriminator with its own optimizer, two critic updates per
    generator update, plus λ · bits/dim (each rank draws its own generator samples)."""
    torch.manual_seed(0)
    flow = Flow([AffineCoupling((4,), hidden=8), AffineCoupling((4,), hidden=8, flip=True)], (4,),
                prior=StandardNormal((4,)))
    objective = FlowGan(discriminator={"kind": "mlp", "hidden": 8}, critic_steps=2, dequantize="none")
    objective.setup(flow, DataInfo(shape=(4,), classes=2, levels=None, name="vectors"))
    return Trainer(flow, objective, loader(labelled_vectors()), settings(steps=4), progress_stream=io.StringIO(),
                   dist=dist)


def transport_trainer(dist: Distributed | None = None) -> Trainer:
    """Minibatch OT to a data-initialised class prior: each rank matches its own share."""
    torch.manual_seed(0)
    flow = Flow([AffineCoupling((4,), hidden=8), AffineCoupling((4,), hidden=8, flip=True)], (4,),
                prior=ClassGaussian((4,), classes=2, param="std", init="data", init_samples=32))
    objective = OptimalTransport(smoothness_weight=1.0)
    objective.setup(flow, DataInfo(shape=(4,), classes=2, levels=None, name="vectors"))
    return Trainer(flow, objective, loader(labelled_vectors()), settings(steps=3), progress_stream=io.StringIO(),
                   dist=dist)


# -- running ranks ----------------------------------------------------------------------------------


def state_of(trainer: Trainer) -> dict[str, Any]:
    return {"flow": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "objective": {k: v.clone() for k, v in trainer.objective.state_dict().items()},
            "records": trainer.metrics.records}


def _child(rank: int, port: int, make: Callable[[Distributed], Trainer], out: Path, after_init: bool) -> None:
    code = 0
    # a forked child inherits the parent's OpenMP pool in a state it cannot use: one thread per rank
    torch.set_num_threads(1)
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD),
                          RANK=str(rank), LOCAL_RANK=str(rank))
        dist = Distributed.from_env("cpu")
        trainer = make(dist)
        if after_init:  # the state right after data-dependent initialisation
            trainer.settings.steps = 0
        try:
            trainer.fit()
        except TrainingDiverged as exc:
            (out / f"rank{rank}.diverged").write_text(str(exc))
        torch.save(state_of(trainer), out / f"rank{rank}.pt")
        dist.close()
    except BaseException:  # noqa: BLE001 - report anything to the parent
        (out / f"rank{rank}.error").write_text(traceback.format_exc())
        code = 1
    finally:
        os._exit(code)


def run_ranks(make: Callable[[Distributed], Trainer], out: Path, after_init: bool = False) -> list[dict[str, Any]]:
    """Train ``make(dist)`` in ``WORLD`` forked processes; their final states, in rank order."""
    ctx = multiprocessing.get_context("fork")
    port = free_port()
    procs = [ctx.Process(target=_child, args=(r, port, make, out, after_init)) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    errors = [f.read_text() for f in sorted(out.glob("*.error"))]
    assert not errors, errors[0]
    assert all(p.exitcode == 0 for p in procs)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


# -- the tests --------------------------------------------------------------------------------------


def test_each_rank_loads_its_contiguous_share_and_together_they_make_the_global_batch() -> None:
    g = torch.Generator()
    batches = BatchSampler(RandomSampler(range(20), generator=g), 8, drop_last=True)

    def epoch(sampler: Any) -> list[list[int]]:  # every rank seeds the shuffle alike (BatchStream does)
        g.manual_seed(1)
        return list(sampler)

    shares = [epoch(ShardedBatchSampler(batches, r, 2)) for r in range(2)]
    whole = epoch(batches)
    assert [a + b for a, b in zip(*shares)] == whole and len(shares[0][0]) == 4
    with pytest.raises(RevkitError, match="multiple of the number of processes"):
        ShardedBatchSampler(BatchSampler(range(20), 6, drop_last=True), 0, 4)


def test_two_gloo_processes_take_the_same_steps_as_one_process_on_the_global_batch(tmp_path: Path) -> None:
    single = likelihood_trainer()
    single.fit()
    ranks = run_ranks(likelihood_trainer, tmp_path)
    for state in ranks:
        assert max_difference(state["flow"], single.model.state_dict()) < TOLERANCE
    # logged losses are the global batch's (averaged over the ranks)
    losses = [r["loss"] for r in ranks[0]["records"]]
    assert losses == pytest.approx([r["loss"] for r in single.metrics.records], abs=TOLERANCE)
    # and the steps did move the parameters: the comparison above is not between two fresh models
    assert max_difference(ranks[0]["flow"], likelihood_trainer().model.state_dict()) > 1e-3


def test_memory_saving_execution_takes_the_same_steps_under_ddp(tmp_path: Path) -> None:
    # gradients reach DDP's hooks through the memory-saving autograd function like through plain autograd
    single = likelihood_trainer()
    single.fit()
    for state in run_ranks(saving_likelihood_trainer, tmp_path):
        assert max_difference(state["flow"], single.model.state_dict()) < TOLERANCE


def test_data_dependent_initialisation_uses_the_global_batch_on_every_rank(tmp_path: Path) -> None:
    single = likelihood_trainer()
    single.settings.steps = 0
    single.fit()
    ranks = run_ranks(likelihood_trainer, tmp_path, after_init=True)
    for state in ranks:  # actnorm's bias/scale and the class prior's means/stds
        assert max_difference(state["flow"], single.model.state_dict()) < TOLERANCE


def test_a_critic_with_its_own_optimizer_trains_in_step_on_both_ranks(tmp_path: Path) -> None:
    # (the critic sees prior samples each rank draws itself, so it is not the single-process critic)
    ranks = run_ranks(adversary_trainer, tmp_path)
    untrained = adversary_trainer()
    untrained.initialize()
    assert max_difference(ranks[0]["objective"], ranks[1]["objective"]) == 0.0  # one critic, kept in sync
    assert max_difference(ranks[0]["flow"], ranks[1]["flow"]) == 0.0
    assert max_difference(ranks[0]["objective"], untrained.objective.state_dict()) > 1e-4  # and it trained
    assert "critic_loss" in ranks[0]["records"][-1] and "critic_loss" not in ranks[0]["records"][0]


def test_a_data_space_discriminator_trains_in_step_with_the_flow_on_both_ranks(tmp_path: Path) -> None:
    ranks = run_ranks(flow_gan_trainer, tmp_path)
    untrained = flow_gan_trainer()
    untrained.initialize()
    assert max_difference(ranks[0]["objective"], ranks[1]["objective"]) == 0.0  # one discriminator, in sync
    assert max_difference(ranks[0]["flow"], ranks[1]["flow"]) == 0.0
    assert max_difference(ranks[0]["objective"], untrained.objective.state_dict()) > 1e-4  # and it trained
    assert max_difference(ranks[0]["flow"], untrained.model.state_dict()) > 1e-4
    last = ranks[0]["records"][-1]
    assert {"critic_loss", untrained.objective.likelihood.metric_name, "generator"} <= set(last)
    other = ranks[1]["records"][-1]  # the losses are averaged over the ranks: every rank logs the same
    assert {k: v for k, v in last.items() if k not in ("time", "images_per_s")} == \
        {k: v for k, v in other.items() if k not in ("time", "images_per_s")}


def test_optimal_transport_matches_per_rank_and_keeps_the_ranks_identical(tmp_path: Path) -> None:
    ranks = run_ranks(transport_trainer, tmp_path)
    assert max_difference(ranks[0]["flow"], ranks[1]["flow"]) == 0.0
    assert all(torch.isfinite(v).all() for v in ranks[0]["flow"].values())
    assert [r["step"] for r in ranks[0]["records"]] == [1, 2, 3]


class PoisonOnRank1(Invertible):
    """Identity, except that on rank 1 the outputs of forward calls 3 … 2 + ``repeat`` are NaN (call 1 is
    the initialisation, call 3 training step 2, call 4 the diagnostic re-run after a stop)."""

    def __init__(self, rank: int, repeat: int = 1):
        super().__init__()
        self.rank, self.calls, self.repeat = rank, 0, repeat

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        poisoned = self.rank == 1 and 3 <= self.calls < 3 + self.repeat
        return (x * float("nan") if poisoned else x), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return y, y.new_zeros(y.shape[0])


def poisoned_trainer(dist: Distributed | None = None, on_nonfinite: str = "skip") -> Trainer:
    torch.manual_seed(0)
    rank = 0 if dist is None else dist.rank
    flow = Flow([AffineCoupling((4,), hidden=8), PoisonOnRank1(rank, repeat=2 if on_nonfinite == "stop" else 1)], (4,), prior=ClassGaussian((4,), classes=2))
    objective = MaxLikelihood()
    objective.setup(flow, DataInfo(shape=(4,), classes=2, levels=None, name="vectors"))
    return Trainer(flow, objective, loader(labelled_vectors()), settings(steps=4, on_nonfinite=on_nonfinite),
                   progress_stream=io.StringIO(), dist=dist)


def stopping_trainer(dist: Distributed | None = None) -> Trainer:
    return poisoned_trainer(dist, on_nonfinite="stop")


def test_a_non_finite_loss_on_one_rank_makes_every_rank_skip_that_update(tmp_path: Path) -> None:
    ranks = run_ranks(poisoned_trainer, tmp_path)
    assert [r["skipped_updates"] for r in ranks[0]["records"]] == [0, 1, 1, 1]  # rank 0's loss was finite
    assert max_difference(ranks[0]["flow"], ranks[1]["flow"]) == 0.0
    assert all(torch.isfinite(v).all() for v in ranks[0]["flow"].values())


def test_a_non_finite_output_on_one_rank_stops_every_rank_naming_the_layer_and_the_rank(tmp_path: Path) -> None:
    ranks = run_ranks(stopping_trainer, tmp_path)  # neither rank hangs in a collective
    messages = [(tmp_path / f"rank{r}.diverged").read_text() for r in range(WORLD)]
    assert messages[0].startswith("training diverged at step 2: the 'model' loss is nan")
    assert "flow net.layers.1 (PoisonOnRank1) went non-finite first (rank 1)" in messages[0]
    assert [len(r["records"]) for r in ranks] == [1, 1]


TOY = """
[model]
[[model.layers]]
block = "affine_coupling"
repeat = 2
hidden = 8

[data]
kind = "toy2d"
batch_size = 16
test_batch_size = 64
n_train = 128
n_test = 64

[train]
device = "cpu"
steps = 8
log_every = 4
checkpoint_every = 4

[eval]
samples = 10
pictures = []
"""


def test_nproc_2_trains_like_one_process_and_only_rank_0_writes(tmp_path: Path) -> None:
    spec = tmp_path / "toy.toml"
    spec.write_text(TOY)
    single = run_spec(load_spec(spec), spec, out=tmp_path / "one", progress_stream=io.StringIO(), say=lambda _: None)
    out = tmp_path / "two"
    done = subprocess.run([sys.executable, "-m", "revkit", "run", str(spec), "--out", str(out), "--nproc", "2"],
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [str(out)]  # printed once, by rank 0
    assert "training on cpu × 2 processes" in done.stderr
    one = torch.load(single.run_dir / "checkpoints" / "step-000008.pt", weights_only=True)
    two = torch.load(out / "checkpoints" / "step-000008.pt", weights_only=True)
    assert max_difference(one["flow"], two["flow"]) < TOLERANCE
    assert len(two["rng_ranks"]) == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step-000004.pt", "step-000008.pt"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # one writer: steps 4 and 8, once each
    assert json.loads((out / "metrics.json").read_text())["processes"] == 2


# -- discrete data: dequantization noise keyed on the global sample, not the rank ---------------------


MNIST_SHAPE = (1, 28, 28)


def discrete_images(n: int = 32, levels: int = 256) -> TensorDataset:
    """MNIST-shaped 8-bit data ``k/255`` (what the MNIST loader yields), two classes."""
    g = torch.Generator().manual_seed(11)
    k = torch.randint(0, levels, (n, *MNIST_SHAPE), generator=g)
    return TensorDataset(k.float() / (levels - 1), torch.arange(n) % 2)


def discrete_trainer(dist: Distributed | None = None) -> Trainer:
    """Maximum likelihood with uniform dequantization on MNIST-shaped discrete data (256 levels)."""
    torch.manual_seed(0)
    flow = Flow([ActNorm(MNIST_SHAPE), AffineCoupling(MNIST_SHAPE, hidden=4, mask="checkerboard"),
                 AffineCoupling(MNIST_SHAPE, hidden=4, mask="checkerboard", flip=True)], MNIST_SHAPE,
                prior=StandardNormal(MNIST_SHAPE))
    objective = MaxLikelihood()
    objective.setup(flow, DataInfo(shape=MNIST_SHAPE, classes=2, levels=256, name="mnist-shaped"))
    return Trainer(flow, objective, loader(discrete_images(), batch_size=8), settings(steps=4),
                   progress_stream=io.StringIO(), dist=dist)


def test_two_gloo_processes_take_the_same_steps_as_one_process_on_dequantized_discrete_data(tmp_path: Path) -> None:
    single = discrete_trainer()
    assert single.objective.dequantize_mode == "uniform" and single.objective.levels == 256
    single.fit()
    ranks = run_ranks(discrete_trainer, tmp_path)
    for state in ranks:
        assert max_difference(state["flow"], single.model.state_dict()) < TOLERANCE
    losses = [r["loss"] for r in ranks[0]["records"]]
    assert losses == pytest.approx([r["loss"] for r in single.metrics.records], abs=TOLERANCE)
    assert max_difference(ranks[0]["flow"], discrete_trainer().model.state_dict()) > 1e-3


def test_dequantization_noise_of_a_sample_depends_on_its_global_index_only() -> None:
    objective = discrete_trainer().objective
    x = discrete_images(8).tensors[0]
    objective.train()
    objective.begin_step(seed=3, step=5, first_index=0)
    whole = objective.dequantize(x)
    halves = []
    for first in (0, 4):  # two ranks' contiguous shares of the global batch
        objective.begin_step(seed=3, step=5, first_index=first)
        halves.append(objective.dequantize(x[first:first + 4]))
    assert torch.equal(torch.cat(halves), whole)
    objective.begin_step(seed=3, step=6, first_index=0)
    assert not torch.equal(objective.dequantize(x), whole)  # a new step draws new noise
    k = torch.round(x * 255)
    assert bool(((whole * 256 >= k) & (whole * 256 < k + 1)).all())  # still inside each sample's bin
