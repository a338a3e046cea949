"""AlignFlow: two flows on one latent translate between unpaired domains; A → B → A is the identity by construction;
the objective's updates; the two-domain MNIST source; the translation spec; ``revkit translate`` writes its grid."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from mnist_paths import DATA_ROOT, needs_mnist
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from revkit.alignflow import AlignedFlows, AlignFlowObjective
from revkit.blocks import ActNorm, AffineCoupling, InvConv1x1, Squeeze
from revkit.build import build
from revkit.cli import main
from revkit.data.base import DataInfo
from revkit.data.unpaired_mnist import UnpairedMnist, transform_images
from revkit.errors import RevkitError, SpecError
from revkit.priors import StandardNormal
from revkit.sequential import Sequential
from revkit.spec import load_spec
from revkit.train import Trainer

SPECS = Path(__file__).resolve().parent.parent / "specs"
SHAPE = (1, 4, 4)
INFO = DataInfo(shape=SHAPE, classes=10, levels=256, name="tiny")


def net(seed: int) -> Sequential:
    torch.manual_seed(seed)
    return Sequential([ActNorm(SHAPE), Squeeze(SHAPE), AffineCoupling((4, 2, 2), hidden=8), InvConv1x1((4, 2, 2)),
                       AffineCoupling((4, 2, 2), hidden=8, flip=True)], SHAPE)


def aligned(dtype: torch.dtype = torch.float32) -> AlignedFlows:
    model = AlignedFlows(net(0), net(1), SHAPE, StandardNormal((4, 2, 2)))
    with torch.no_grad():  # move every parameter far from its initialisation: the identity must not be an accident
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.to(dtype).eval()


def test_a_to_b_to_a_is_the_identity_to_float_precision():
    torch.manual_seed(5)
    model = aligned(torch.float64)
    x_a, x_b = torch.rand(16, *SHAPE, dtype=torch.float64), torch.rand(16, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        there = model.a_to_b(x_a)
        assert (there - x_a).abs().max() > 0.1  # the translation does something
        torch.testing.assert_close(model.b_to_a(there), x_a, rtol=0, atol=1e-12)
        torch.testing.assert_close(model.a_to_b(model.b_to_a(x_b)), x_b, rtol=0, atol=1e-12)
    model32 = aligned(torch.float32)
    with torch.no_grad():
        x32 = x_a.float()
        # float32 through ten perturbed layers and back: a few hundred float32 ulps
        torch.testing.assert_close(model32.b_to_a(model32.a_to_b(x32)), x32, rtol=0, atol=1e-4)


def test_each_domain_has_its_own_exact_density_on_the_shared_prior():
    model = aligned(torch.float64)
    x = torch.rand(3, *SHAPE, dtype=torch.float64)
    z, logdet = model.net_b(x)
    torch.testing.assert_close(model.log_prob_b(x), model.prior.log_prob(z) + logdet)
    assert not torch.allclose(model.log_prob(x), model.log_prob_b(x))
    assert model.sample_b(4).shape == (4, *SHAPE) and model.sample(4).shape == (4, *SHAPE)


def test_the_flows_must_share_a_latent_shape():
    other = Sequential([Squeeze(SHAPE)], SHAPE)
    wrong = Sequential([Squeeze(SHAPE), Squeeze((4, 2, 2))], SHAPE)
    with pytest.raises(RevkitError, match="share one latent space"):
        AlignedFlows(other, wrong, SHAPE, StandardNormal((4, 2, 2)))


class Pairs(Dataset):
    def __init__(self, n: int = 32):
        g = torch.Generator().manual_seed(2)
        self.a = torch.randint(0, 256, (n, *SHAPE), generator=g).float() / 255
        self.b = 1 - torch.randint(0, 256, (n, *SHAPE), generator=g).float() / 255

    def __len__(self) -> int:
        return self.a.shape[0]

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        return self.a[i], 0, self.b[i], 0


def settings(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"seed": 0, "device": "cpu", "steps": 3, "lr": 1e-3, "weight_decay": 0.0,
                              "betas": (0.5, 0.999), "schedule": "none", "warmup_steps": 0, "step_size": None,
                              "gamma": 0.5, "grad_clip": 10.0, "log_every": 1, "checkpoint_every": 0, "eval_every": 0,
                              "time_limit_minutes": 0.0, **kw})


def test_training_updates_both_discriminators_then_both_flows_and_initialises_both():
    model = AlignedFlows(net(0), net(1), SHAPE, StandardNormal((4, 2, 2)))
    obj = AlignFlowObjective(critic_steps=2, nll_weight=0.5, discriminator={"kind": "conv", "hidden": 4})
    obj.setup(model, INFO)
    assert obj.updates_at(0) == ["critic", "critic", "model"]
    trainer = Trainer(model, obj, DataLoader(Pairs(), batch_size=8), settings(), progress_stream=io.StringIO())
    trainer.fit()
    assert bool(model.net_a.layers[0].initialized) and bool(model.net_b.layers[0].initialized)
    record = trainer.metrics.records[-1]
    assert {"generator_a", "generator_b", "bits_per_dim_a", "bits_per_dim_b", "critic_real_a", "critic_fake_b"} <= set(record)
    out = obj.losses(model, next(iter(DataLoader(Pairs(), batch_size=8))))
    m = out.metrics
    assert float(out.loss.detach()) == pytest.approx(m["generator_a"] + m["generator_b"]
                                            + 0.5 * (m["bits_per_dim_a"] + m["bits_per_dim_b"]), rel=1e-5)
    metrics = obj.evaluate(model.eval(), next(iter(DataLoader(Pairs(), batch_size=8))))
    assert float(metrics["cycle_error_a"].max()) < 1e-4 and float(metrics["cycle_error_b"].max()) < 1e-4
    assert float(metrics["cycle_nonfinite_a"].sum()) == 0 and float(metrics["cycle_nonfinite_b"].sum()) == 0
    torch.testing.assert_close(metrics["bits_per_dim"], (metrics["bits_per_dim_a"] + metrics["bits_per_dim_b"]) / 2)


def test_a_round_trip_that_goes_non_finite_is_counted_apart_not_averaged_as_nan():
    model = AlignedFlows(net(0), net(1), SHAPE, StandardNormal((4, 2, 2)))
    obj = AlignFlowObjective(discriminator={"kind": "conv", "hidden": 4})
    obj.setup(model, INFO)
    batch = next(iter(DataLoader(Pairs(), batch_size=8)))
    real = model.b_to_a

    def saturating(x, *args, **kwargs):  # the second image's translation saturates to a non-finite value
        out = real(x, *args, **kwargs).clone()
        out[1] = float("nan")
        return out

    model.b_to_a = saturating  # type: ignore[method-assign]
    metrics = obj.evaluate(model.eval(), batch)
    assert metrics["cycle_nonfinite_a"].tolist() == [0.0, 1.0] + [0.0] * 6
    assert bool(torch.isfinite(metrics["cycle_error_a"]).all()) and float(metrics["cycle_error_a"][1]) == 0.0


def test_the_objective_needs_two_domains():
    model = AlignedFlows(net(0), net(1), SHAPE, StandardNormal((4, 2, 2)))
    obj = AlignFlowObjective(discriminator="mlp")
    obj.setup(model, INFO)
    with pytest.raises(RevkitError, match="x_A, y_A, x_B, y_B"):
        obj.losses(model, (torch.rand(2, *SHAPE), torch.zeros(2)))


def test_the_domain_transforms_stay_on_the_8_bit_grid():
    x = torch.randint(0, 256, (3, 1, 5, 5), dtype=torch.uint8)
    assert torch.equal(transform_images(x, "invert"), 255 - x)
    assert torch.equal(transform_images(x, "rotate90")[:, :, 0, 0], x[:, :, 0, -1])
    thick = transform_images(x, "thicken")
    assert thick.dtype == torch.uint8 and bool((thick >= x).all())


@needs_mnist
def test_unpaired_mnist_halves_are_disjoint_and_b_is_transformed():
    source = UnpairedMnist(DATA_ROOT, download=False, transform="invert")
    train = source.dataset("train")
    assert len(train) == 30000
    a_raw = {bytes(t.numpy()) for t in train.a.data[:2000]}
    b_raw = {bytes((255 - t).numpy()) for t in train.b.data}
    assert not a_raw & b_raw  # no image of A appears (untransformed) in B
    x_a, y_a, x_b, y_b = train[0]
    assert x_a.shape == x_b.shape == (1, 28, 28) and float(x_b.mean()) > 0.5 > float(x_a.mean())


def test_the_translation_spec_builds_two_flows_on_one_latent():
    spec = load_spec(SPECS / "mnist_translate.toml")
    built = build(spec)
    assert isinstance(built.model, AlignedFlows) and isinstance(built.objective, AlignFlowObjective)
    assert built.model.latent_shape == built.model.net_b.output_shape((1, 28, 28))
    with pytest.raises(SpecError) as info:
        load_spec(SPECS / "mnist_translate.toml", ["model.aligned_flows.flow_b[1].block='glow_stp'"])
    assert info.value.path == "model.aligned_flows.flow_b[1].block"


@needs_mnist
def test_revkit_translate_writes_a_grid_of_inputs_and_translations(tmp_path: Path):
    run = tmp_path / "run"
    tiny = ["train.steps=2", "train.device='cpu'", "data.batch_size=8", "data.test_batch_size=16",
            "eval.test_batches=1", "eval.samples=4", "eval.reconstructions=2", f"data.root='{DATA_ROOT}'",
            "train.time_limit_minutes=0"]
    for flow in ("flow_a", "flow_b"):
        tiny += [f"model.aligned_flows.{flow}[2].repeat=1", f"model.aligned_flows.{flow}[2].hidden=4",
                 f"model.aligned_flows.{flow}[5].repeat=1", f"model.aligned_flows.{flow}[5].hidden=4"]
    args = ["run", str(SPECS / "mnist_translate.toml"), "--out", str(run)]
    for o in tiny:
        args += ["--set", o]
    assert main(args) == 0
    out = tmp_path / "grid.png"
    assert main(["translate", str(run), "-n", "6", "--out", str(out), "--device", "cpu"]) == 0
    with Image.open(out) as picture:
        assert picture.size[0] > 6 * 28 and picture.size[1] > 4 * 28
    assert main(["translate", str(run), "-n", "3", "--device", "cpu"]) == 0
    assert list(run.glob("translations-step*.png"))
