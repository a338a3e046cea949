"""The latent adversary: the fixed k-dimensional prior, the spectral-normalized critic, clamp-then-invert
reconstruction, the two phases through the trainer's generic hooks, and the bundled specs."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from revkit.blocks import RevBlock
from revkit.build import build
from revkit.data.base import DataInfo
from revkit.data.loaders import make_loaders
from revkit.errors import RevkitError
from revkit.flow import Flow
from revkit.objectives import LatentAdversary, SpectralCritic, hinge_critic_loss
from revkit.priors import ActiveGaussian, ClassGaussian
from revkit.spec import load_spec
from revkit.train import Trainer

SPECS = Path(__file__).resolve().parent.parent / "specs"
INFO = DataInfo(shape=(8,), classes=0, levels=None, name="vectors")


def train_settings(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "seed": 0, "device": "cpu", "steps": 6, "lr": 1e-2, "weight_decay": 0.0, "betas": [0.9, 0.999],
        "schedule": "none", "warmup_steps": 0, "step_size": 1000, "gamma": 0.5, "grad_clip": 0.0,
        "log_every": 1, "checkpoint_every": 0, "eval_every": 0, "time_limit_minutes": 0.0,
    }
    return SimpleNamespace(**{**base, **kw})


def adversary_setup(k: int = 3, **kw: Any) -> tuple[Flow, LatentAdversary]:
    torch.manual_seed(0)
    flow = Flow([RevBlock((8,), hidden=16), RevBlock((8,), hidden=16)], (8,), prior=ActiveGaussian((8,), k=k))
    objective = LatentAdversary(critic_hidden=16, **kw)
    objective.setup(flow, INFO)
    return flow, objective


def vector_data(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, 8, generator=g), torch.zeros(n, dtype=torch.long))


def largest_singular_values(critic: SpectralCritic) -> list[float]:
    """σ_max of each weight as the critic uses it (after the spectral normalization)."""
    with torch.no_grad():
        return [float(torch.linalg.matrix_norm(layer.weight, ord=2)) for layer in critic.layers]


# -- the prior ---------------------------------------------------------------------------------------

def test_active_gaussian_chooses_the_k_dimensions_of_largest_variance():
    prior = ActiveGaussian((2, 4), k=3)
    scales = torch.tensor([[0.1, 5.0, 0.2, 0.3], [4.0, 0.1, 0.2, 3.0]])
    prior.init_from_data(torch.randn(500, 2, 4) * scales + 7.0)
    assert torch.equal(prior.active, scales > 1.0)
    assert torch.equal(prior.active_dims(), (scales > 1.0).unsqueeze(0))
    assert set(dict(prior.named_buffers())) == {"active", "mean"} and not list(prior.parameters())
    restored = ActiveGaussian((2, 4), k=3)
    restored.load_state_dict(prior.state_dict())  # checkpoints carry the choice
    assert torch.equal(restored.active, prior.active)


def test_active_gaussian_samples_are_standard_normal_on_active_dimensions_and_zero_elsewhere():
    torch.manual_seed(0)
    prior = ActiveGaussian((6,), k=2)
    prior.init_from_data(torch.randn(100, 6) * torch.tensor([1.0, 1.0, 9.0, 1.0, 9.0, 1.0]))
    s = prior.sample(4000)
    assert bool((s[:, [0, 1, 3, 5]] == 0).all())
    np.testing.assert_allclose(s[:, [2, 4]].std(dim=0).numpy(), [1.0, 1.0], rtol=0.05)
    np.testing.assert_allclose(s[:, [2, 4]].mean(dim=0).numpy(), [0.0, 0.0], atol=0.06)
    z = torch.randn(5, 6)
    expected = z.clone()
    expected[:, [0, 1, 3, 5]] = 0.0
    torch.testing.assert_close(prior.restrict(z), expected)
    reference = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, [2, 4]]).sum(dim=1)
    torch.testing.assert_close(prior.log_prob(z), reference)


def test_active_gaussian_refuses_k_larger_than_the_latent():
    with pytest.raises(RevkitError, match=r"k must lie in \[1, 6\]"):
        ActiveGaussian((6,), k=7)


# -- the critic -------------------------------------------------------------------------------------

def test_the_critic_stays_1_lipschitz_per_layer_while_it_trains_hard():
    torch.manual_seed(0)
    critic = SpectralCritic(4, 32)
    optimizer = torch.optim.Adam(critic.parameters(), lr=0.05)
    for _ in range(200):  # separable real and fake: unconstrained weights would grow without bound
        real, fake = torch.randn(64, 4) + 3.0, torch.randn(64, 4) - 3.0
        loss = hinge_critic_loss(critic(real), critic(fake))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    critic.eval()
    sigmas = largest_singular_values(critic)
    assert max(sigmas) <= 1.0 + 1e-3, sigmas  # power iteration estimates σ from below: a hair of slack
    raw = [float(torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach(), ord=2))
           for layer in critic.layers]
    assert max(raw) > 1.5  # the weights themselves did grow; the normalization is what holds them at 1


# -- the objective ------------------------------------------------------------------------------------

def test_restricted_reconstruction_equals_clamping_then_decoding():
    flow, objective = adversary_setup()
    x = torch.rand(5, 8)
    z = flow.encode(x)
    clamped = torch.where(flow.prior.active, z, torch.zeros_like(z))
    expected = (flow.decode(clamped) - x).abs().mean(dim=1)
    torch.testing.assert_close(objective.restricted_reconstruction(flow, x, z), expected)
    assert float(expected.detach().min()) > 1e-3  # five of eight dimensions were clamped: not the identity


def test_phases_and_repeated_critic_updates_come_from_updates_at():
    _, objective = adversary_setup(phase1_steps=3, critic_steps=2)
    assert objective.update_order() == ["model", "critic"]
    assert [objective.updates_at(s) for s in (0, 2, 3, 10)] == [
        ["model"], ["model"], ["critic", "critic", "model"], ["critic", "critic", "model"]]


def test_parameter_groups_and_the_critics_optimizer_settings():
    flow, objective = adversary_setup(critic_lr=3e-4, critic_beta1=0.0, critic_beta2=0.9)
    groups = objective.parameter_groups(flow)
    assert {id(p) for p in groups["model"]} == {id(p) for p in flow.parameters()}
    assert {id(p) for p in groups["critic"]} == {id(p) for p in objective.critic.parameters()}
    assert objective.optimizer_overrides("critic") == {"lr": 3e-4, "beta1": 0.0, "beta2": 0.9}
    assert objective.optimizer_overrides("model") == {}
    trainer = Trainer(flow, objective, DataLoader(vector_data(), batch_size=16), train_settings(),
                      progress_stream=io.StringIO())
    assert trainer.optimizers["critic"].param_groups[0]["lr"] == 3e-4
    assert trainer.optimizers["critic"].param_groups[0]["betas"] == (0.0, 0.9)


def test_training_runs_reconstruction_only_then_alternates_critic_and_network():
    flow, objective = adversary_setup(phase1_steps=3, critic_steps=2)
    trainer = Trainer(flow, objective, DataLoader(vector_data(), batch_size=16), train_settings(steps=6),
                      progress_stream=io.StringIO())
    critic_before = {k: v.clone() for k, v in objective.critic.state_dict().items()}
    trainer.fit()
    records = trainer.metrics.records
    assert [("critic_loss" in r, "adversary" in r) for r in records] == [(False, False)] * 3 + [(True, True)] * 3
    assert all(set(r) >= {"critic_real", "critic_fake", "inactive_mse", "reconstruction_l1"} for r in records[3:])
    assert any(not torch.equal(v, objective.critic.state_dict()[k]) for k, v in critic_before.items())
    assert max(largest_singular_values(objective.critic)) <= 1.0 + 1e-3


def test_a_phase_one_run_leaves_the_critic_untouched_and_lowers_the_reconstruction_error():
    flow, objective = adversary_setup(phase1_steps=100)
    trainer = Trainer(flow, objective, DataLoader(vector_data(), batch_size=16), train_settings(steps=40),
                      progress_stream=io.StringIO())
    critic_before = {k: v.clone() for k, v in objective.critic.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(v, objective.critic.state_dict()[k]) for k, v in critic_before.items())
    curve = [r["reconstruction_l1"] for r in trainer.metrics.records]
    assert curve[-1] < 0.7 * curve[0]


def test_the_network_update_combines_its_three_terms_with_the_spec_weights():
    flow, objective = adversary_setup(phase1_steps=0, adversary_weight=2.0, reconstruction_weight=3.0,
                                      inactive_weight=5.0)
    objective.updates_at(0)
    out = objective.losses(flow, (torch.rand(6, 8), torch.zeros(6, dtype=torch.long)))
    m = out.metrics
    assert float(out.loss.detach()) == pytest.approx(2 * m["adversary"] + 3 * m["reconstruction_l1"]
                                                      + 5 * m["inactive_mse"])


def test_evaluate_reports_per_sample_metrics():
    flow, objective = adversary_setup()
    metrics = objective.evaluate(flow, (torch.rand(7, 8), torch.zeros(7, dtype=torch.long)))
    assert {k: tuple(v.shape) for k, v in metrics.items()} == {
        "reconstruction_l1": (7,), "inactive_mse": (7,), "critic_score": (7,)}
    assert objective.main_metric == "reconstruction_l1"


def test_a_class_conditional_prior_is_refused():
    flow = Flow([RevBlock((8,), hidden=4)], (8,), prior=ClassGaussian((8,), classes=2), classes=2)
    with pytest.raises(RevkitError, match="unconditional prior.*active_gaussian"):
        LatentAdversary().setup(flow, INFO)


def test_the_critic_travels_in_the_objectives_state_dict():
    _, objective = adversary_setup()
    keys = set(objective.state_dict())
    assert any(k.startswith("critic.layers.0.parametrizations.weight") for k in keys)
    _, other = adversary_setup()
    other.load_state_dict(objective.state_dict())


# -- the bundled specs ------------------------------------------------------------------------------------

def test_mnist_adversarial_spec_builds():
    built = build(load_spec(SPECS / "mnist_adversarial.toml"))
    assert built.model.latent_shape == (1024,)
    assert isinstance(built.model.prior, ActiveGaussian) and built.model.prior.k == 16
    assert isinstance(built.objective, LatentAdversary) and built.objective.critic.in_features == 16


def write_faces(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (80, 70, 3), dtype=np.uint8)).save(folder / f"face{i}.png")


def test_celeba_adversarial_spec_builds_the_papers_64x64_revnet_and_trains_on_an_image_folder(tmp_path):
    write_faces(tmp_path / "faces", 6)
    spec = load_spec(SPECS / "celeba_adversarial.toml", overrides=[
        "data.kind=image_folder", f"data.root={tmp_path / 'faces'}", "data.test_fraction=0.34",
        "data.batch_size=2", "data.test_batch_size=2", "data.num_workers=0",
        "prior.init_samples=4", "objective.phase1_steps=1", "train.steps=2", "train.device=cpu", "train.log_every=1",
    ])
    built = build(spec)
    assert built.model.input_shape == (3, 64, 64) and built.model.latent_shape == (12288,)
    assert built.model.prior.k == 64
    train_loader, _, _ = make_loaders(spec.data, built.source, seed=0)
    trainer = Trainer(built.model, built.objective, train_loader, spec.train, progress_stream=io.StringIO())
    result = trainer.fit()
    assert result.step == 2
    assert "reconstruction_l1" in trainer.metrics.records[0]
    assert "critic_loss" in trainer.metrics.records[1]  # step 2 is in phase 2
    assert int(built.model.prior.active.sum()) == 64
