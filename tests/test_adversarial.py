"""Data-space adversarial training (objectives ``adversarial`` and ``flow_gan``): the three GAN losses against
hand-computed values, the gradient penalty's gradient against its closed form and finite differences, the update
order and the discriminator's optimizer, the hybrid's λ, exact bits/dim in evaluation, discriminators as
registered components validated in the spec, an interrupted and resumed run continuing identically, and the
bundled specs."""

from __future__ import annotations

import io
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from revkit.blocks import ActNorm, AffineCoupling, Squeeze
from revkit.build import build
from revkit.data.base import DataInfo
from revkit.discriminators import ConvDiscriminator, Discriminator, DiscriminatorParams, MLPDiscriminator
from revkit.errors import RevkitError, SpecError
from revkit.flow import Flow
from revkit.alignflow.objective import AlignFlowObjective
from revkit.objectives import Adversarial, FlowGan, LatentAdversary, MaxLikelihood
from revkit.objectives.gan_losses import critic_loss, generator_loss, gradient_penalty, interpolates
from revkit.objectives.two_player import TwoPlayerObjective, TwoPlayerParams
from revkit.plugins import load_registries
from revkit.plugins.hookspecs import hookimpl
from revkit.priors import ClassGaussian, StandardNormal
from revkit.runs.checkpoint import latest_checkpoint, load_checkpoint
from revkit.runs.folder import RunFolder
from revkit.spec import load_spec, load_spec_dict
from revkit.train import Trainer

SPECS = Path(__file__).resolve().parent.parent / "specs"
SHAPE = (1, 4, 4)
INFO = DataInfo(shape=SHAPE, classes=3, levels=256, name="tiny")


def tiny_flow(prior: Any = None, seed: int = 0) -> Flow:
    torch.manual_seed(seed)
    return Flow([ActNorm(SHAPE), Squeeze(SHAPE), AffineCoupling((4, 2, 2), hidden=8),
                 AffineCoupling((4, 2, 2), hidden=8, flip=True)], SHAPE,
                prior=prior if prior is not None else StandardNormal((4, 2, 2)))


def images(n: int = 48, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randint(0, 256, (n, *SHAPE), generator=g).float() / 255.0,
                         torch.randint(0, 3, (n,), generator=g))


def settings(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "seed": 3, "device": "cpu", "steps": 8, "lr": 1e-3, "weight_decay": 0.0, "betas": (0.5, 0.999),
        "schedule": "none", "warmup_steps": 0, "step_size": None, "gamma": 0.5, "grad_clip": 10.0,
        "log_every": 1, "checkpoint_every": 0, "eval_every": 0, "time_limit_minutes": 0.0,
    }
    return SimpleNamespace(**{**base, **kw})


def setup(objective: Adversarial, flow: Flow | None = None) -> tuple[Flow, Adversarial]:
    flow = flow or tiny_flow()
    objective.setup(flow, INFO)
    return flow, objective


# -- the losses, by hand -----------------------------------------------------------------------------------

REAL, FAKE = torch.tensor([0.0, 2.0]), torch.tensor([1.0, -1.0])


def sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


def test_the_logistic_discriminator_loss_by_hand():
    expected = -(math.log(sigmoid(0.0)) + math.log(sigmoid(2.0))) / 2 \
        - (math.log(1 - sigmoid(1.0)) + math.log(1 - sigmoid(-1.0))) / 2
    for kind in ("minimax", "non_saturating"):
        assert float(critic_loss(kind, REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


def test_the_generator_losses_by_hand():
    assert float(generator_loss("minimax", FAKE)) == pytest.approx(
        (math.log(1 - sigmoid(1.0)) + math.log(1 - sigmoid(-1.0))) / 2, rel=1e-6)
    assert float(generator_loss("non_saturating", FAKE)) == pytest.approx(
        -(math.log(sigmoid(1.0)) + math.log(sigmoid(-1.0))) / 2, rel=1e-6)
    assert float(generator_loss("wgan_gp", FAKE)) == pytest.approx(0.0, abs=1e-7)
    assert float(critic_loss("wgan_gp", REAL, FAKE)) == pytest.approx(0.0 - 1.0, rel=1e-6)


def test_the_non_saturating_loss_keeps_its_gradient_where_minimax_goes_flat():
    s = torch.tensor([-8.0], requires_grad=True)  # samples the discriminator rejects confidently
    (g_minimax,) = torch.autograd.grad(generator_loss("minimax", s), s)
    (g_ns,) = torch.autograd.grad(generator_loss("non_saturating", s), s)
    assert abs(float(g_minimax)) == pytest.approx(sigmoid(-8.0), rel=1e-5) and abs(float(g_minimax)) < 1e-3
    assert float(g_ns) == pytest.approx(sigmoid(-8.0) - 1.0, rel=1e-5)


def test_unknown_losses_are_refused():
    with pytest.raises(ValueError, match="wgan_gp"):
        critic_loss("hinge", REAL, FAKE)
    with pytest.raises(RevkitError, match="loss must be one of"):
        Adversarial(loss="hinge")


# -- the gradient penalty -----------------------------------------------------------------------------------

def test_the_gradient_penalty_of_a_linear_critic_and_its_gradient_in_closed_form():
    """D(x) = w·x has ∇ₓD = w, so GP = (‖w‖ − 1)² and ∂GP/∂w = 2(‖w‖ − 1) w/‖w‖ — independent of the points."""
    w = torch.tensor([0.6, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    points = torch.randn(5, 3, dtype=torch.float64)
    gp = gradient_penalty(lambda x: x @ w, points)
    norm = float(w.detach().norm())
    assert float(gp.detach()) == pytest.approx((norm - 1) ** 2, rel=1e-9)
    (grad,) = torch.autograd.grad(gp, w)
    torch.testing.assert_close(grad, 2 * (norm - 1) * w.detach() / norm)


def test_the_gradient_penalty_gradient_matches_finite_differences_for_a_nonlinear_critic():
    torch.manual_seed(0)
    points = torch.randn(4, 3, dtype=torch.float64)
    W = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(5, dtype=torch.float64, requires_grad=True)

    def gp(W: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return gradient_penalty(lambda x: torch.tanh(x @ W.T) @ v, points)

    assert torch.autograd.gradcheck(gp, (W, v), eps=1e-6, atol=1e-6)


def test_interpolates_lie_between_real_and_fake_per_sample():
    real, fake = torch.zeros(3, 2, 2), torch.ones(3, 2, 2)
    x = interpolates(real, fake, torch.tensor([0.0, 0.25, 1.0]))
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([1.0, 0.75, 0.0]))


def test_the_wgan_critic_update_adds_gamma_times_the_penalty():
    flow, obj = setup(Adversarial(loss="wgan_gp", gp_weight=7.0, discriminator={"kind": "mlp", "hidden": 8}))
    torch.manual_seed(4)
    out = obj.losses(flow, (torch.rand(6, *SHAPE), torch.zeros(6, dtype=torch.long)), update="critic")
    m = out.metrics
    assert float(out.loss.detach()) == pytest.approx(m["fake"] - m["real"] + 7.0 * m["gradient_penalty"], rel=1e-5)


# -- updates, groups, the hybrid ------------------------------------------------------------------------------

def test_critic_steps_discriminator_updates_then_one_generator_update_each_step():
    flow, obj = setup(Adversarial(critic_steps=3, discriminator={"kind": "conv", "hidden": 4}))
    assert obj.update_order() == ["model", "critic"]
    assert obj.updates_at(0) == obj.updates_at(9) == ["critic", "critic", "critic", "model"]
    trainer = Trainer(flow, obj, DataLoader(images(), batch_size=8), settings(steps=2), progress_stream=io.StringIO())
    trainer.fit()
    def adam_steps(group: str) -> int:
        return int(next(iter(trainer.optimizers[group].state.values()))["step"])
    assert (adam_steps("critic"), adam_steps("model")) == (6, 2)
    assert {"loss", "generator", "critic_loss", "critic_real", "critic_fake"} <= set(trainer.metrics.records[-1])


def test_the_groups_and_the_discriminators_own_optimizer_settings():
    flow, obj = setup(Adversarial(critic_lr=3e-4, critic_beta1=0.0, critic_beta2=0.9, discriminator="mlp"))
    groups = obj.parameter_groups(flow)
    assert {id(p) for p in groups["model"]} == {id(p) for p in flow.parameters()}
    assert {id(p) for p in groups["critic"]} == {id(p) for p in obj.critic.parameters()}
    trainer = Trainer(flow, obj, DataLoader(images(), batch_size=8), settings(), progress_stream=io.StringIO())
    assert trainer.optimizers["critic"].param_groups[0]["lr"] == 3e-4
    assert trainer.optimizers["critic"].param_groups[0]["betas"] == (0.0, 0.9)
    assert trainer.optimizers["model"].param_groups[0]["betas"] == (0.5, 0.999)


def test_the_hybrid_adds_lambda_times_bits_per_dim_and_adversarial_alone_computes_none():
    flow, obj = setup(FlowGan(nll_weight=0.3, adversary_weight=2.0, discriminator="mlp"))
    batch = (torch.rand(6, *SHAPE), torch.zeros(6, dtype=torch.long))
    out = obj.losses(flow, batch)
    assert float(out.loss) == pytest.approx(2.0 * out.metrics["generator"] + 0.3 * out.metrics["bits_per_dim"], rel=1e-5)
    _, alone = setup(Adversarial(discriminator="mlp"), flow)
    assert set(alone.losses(flow, batch).metrics) == {"generator"}
    with pytest.raises(RevkitError, match="nll_weight must be > 0"):
        FlowGan(nll_weight=0.0)


def test_the_generator_update_reaches_the_flow_and_the_critic_update_sees_detached_samples():
    flow, obj = setup(Adversarial(discriminator="mlp"))
    batch = (torch.rand(6, *SHAPE), torch.zeros(6, dtype=torch.long))
    obj.losses(flow, batch, "model").loss.backward()
    assert all(p.grad is not None for p in flow.net.parameters() if p.requires_grad)
    flow.zero_grad(set_to_none=True)
    obj.losses(flow, batch, "critic").loss.backward()
    assert all(p.grad is None for p in flow.parameters())


def test_evaluation_reports_exact_bits_per_dim_like_maximum_likelihood():
    flow, obj = setup(Adversarial(discriminator="mlp"))
    ml = MaxLikelihood()
    ml.setup(flow, INFO)
    batch = (torch.rand(5, *SHAPE), torch.zeros(5, dtype=torch.long))
    torch.manual_seed(7)
    metrics = obj.evaluate(flow, batch)
    torch.manual_seed(7)
    expected = ml.evaluate(flow, batch)["bits_per_dim"]
    torch.testing.assert_close(metrics["bits_per_dim"], expected)
    assert obj.main_metric == "bits_per_dim" and set(metrics) == {"bits_per_dim", "critic_real", "critic_fake"}


def test_a_class_conditional_discriminator_needs_labels_and_a_class_conditional_model():
    with pytest.raises(RevkitError, match="class-conditional model"):
        setup(Adversarial(conditional=True))
    prior = ClassGaussian((4, 2, 2), classes=3)
    flow, obj = setup(Adversarial(conditional=True, discriminator={"kind": "conv", "hidden": 4}), tiny_flow(prior))
    assert obj.critic.classes == 3
    out = obj.losses(flow, (torch.rand(6, *SHAPE), torch.tensor([0, 1, 2, 0, 1, 2])), "critic")
    assert math.isfinite(float(out.loss))
    with pytest.raises(RevkitError, match="pass labels"):
        obj.critic(torch.rand(2, *SHAPE))


def test_the_conv_discriminator_handles_odd_sizes_and_projects_labels():
    d = ConvDiscriminator((3, 7, 5), classes=4, hidden=3)
    x = torch.rand(2, 3, 7, 5)
    a, b = d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1]))
    assert a.shape == (2,) and not torch.equal(a, b)
    with pytest.raises(RevkitError, match="rank"):
        ConvDiscriminator((16,))
    assert MLPDiscriminator((16,), hidden=4)(torch.rand(3, 16)).shape == (3,)


# -- discriminators as components, in the spec ------------------------------------------------------------------

def spec_doc(**objective: Any) -> dict[str, Any]:
    return {"model": {"layers": [{"block": "squeeze"}]}, "data": {"kind": "mnist"},
            "objective": {"kind": "adversarial", **objective}}


@pytest.mark.parametrize(("table", "path", "message"), [
    ({"kind": "cnov"}, "objective.discriminator.kind", "unknown discriminator 'cnov' (did you mean 'conv'?)"),
    ({"kind": "conv", "hiden": 3}, "objective.discriminator.hiden", "did you mean 'hidden'?"),
    ({"kind": "conv", "hidden": "x"}, "objective.discriminator.hidden", "integer"),
])
def test_the_discriminator_table_is_validated_at_its_path(table: dict[str, Any], path: str, message: str):
    with pytest.raises(SpecError) as info:
        load_spec_dict(spec_doc(discriminator=table))
    assert info.value.path == path and message in info.value.message


class TinyParams(DiscriminatorParams):
    scale: float = 1.0


class Tiny(Discriminator):
    """A plugin's discriminator: the scaled mean pixel."""

    Params = TinyParams

    def __init__(self, input_shape: Any, classes: int = 0, scale: float = 1.0):
        super().__init__(input_shape, classes)
        self.w = torch.nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.w * x.reshape(x.shape[0], -1).mean(dim=1)


class TinyPlugin:
    @hookimpl
    def register_discriminators(self, register: Any) -> None:
        register("tiny", Tiny)


def test_a_plugin_registers_a_discriminator_through_the_hook():
    regs = load_registries(extra_plugins=[("tiny-plugin", TinyPlugin())], entry_points=False)
    assert regs.discriminators.source("tiny") == "tiny-plugin"
    assert {"conv", "mlp"} <= set(regs.discriminators.names())
    spec = load_spec_dict(spec_doc(discriminator={"kind": "tiny", "scale": 2.5}), registries=regs)
    critic = spec.objective.params.discriminator.build((1, 28, 28))
    assert isinstance(critic, Tiny) and float(critic.w) == 2.5
    with pytest.raises(SpecError, match="scale"):
        load_spec_dict(spec_doc(discriminator={"kind": "tiny", "scale": "big"}), registries=regs)


# -- resuming ------------------------------------------------------------------------------------------------------

def make_trainer(run_dir: Path, loss: str, init_seed: int = 0) -> Trainer:
    flow = tiny_flow(seed=init_seed)
    obj = FlowGan(loss=loss, critic_steps=2, nll_weight=0.5, discriminator={"kind": "conv", "hidden": 4})
    obj.setup(flow, INFO)
    loader = DataLoader(images(), batch_size=8, shuffle=True, drop_last=True, generator=torch.Generator())
    return Trainer(flow, obj, loader, settings(steps=8), files=RunFolder(run_dir), progress_stream=io.StringIO())


def everything(trainer: Trainer) -> torch.Tensor:
    tensors = [*trainer.model.state_dict().values(), *trainer.objective.state_dict().values()]
    return torch.cat([t.detach().double().reshape(-1) for t in tensors])


@pytest.mark.parametrize("loss", ["non_saturating", "wgan_gp"])
def test_an_interrupted_adversarial_run_resumes_and_continues_identically(tmp_path: Path, loss: str):
    straight = make_trainer(tmp_path / "straight", loss)
    straight.fit()

    first = make_trainer(tmp_path / "resumed", loss)
    first.optimizers["model"].register_step_post_hook(
        lambda *_: first.stop.request("interrupted") if first.step == 2 else None)
    assert first.fit().step == 3
    state = load_checkpoint(latest_checkpoint(tmp_path / "resumed" / "checkpoints"))
    assert set(state["optimizers"]) == {"model", "critic"} and any(k.startswith("critic.") for k in state["objective"])

    second = make_trainer(tmp_path / "resumed", loss, init_seed=99)  # other weights, other random state
    torch.manual_seed(12345)
    second.load_state_dict(state)
    assert second.fit().step == 8
    assert torch.equal(everything(second), everything(straight))
    keys = ("loss", "critic_loss", "generator", "bits_per_dim")
    assert [[r[k] for k in keys] for r in second.metrics.records] == \
        [[r[k] for k in keys] for r in straight.metrics.records]


# -- the bundled specs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind"), [("mnist_gan", "adversarial"), ("mnist_flow_gan", "flow_gan")])
def test_the_mnist_gan_specs_build_mnist_glows_generator(name: str, kind: str):
    spec = load_spec(SPECS / f"{name}.toml")
    glow = load_spec(SPECS / "mnist_glow.toml")
    assert spec.objective.kind == kind and spec.objective.params.loss == "non_saturating"
    assert spec.to_dict()["model"] == glow.to_dict()["model"]  # the same generator
    built = build(spec)
    assert isinstance(built.objective.critic, ConvDiscriminator)
    assert built.objective.nll_weight == (1.0 if kind == "flow_gan" else 0.0)
    assert "mnist_classifier" in spec.eval.scores


@pytest.mark.parametrize("make", [
    lambda **kw: Adversarial(**kw),
    lambda **kw: FlowGan(**kw),
    lambda **kw: AlignFlowObjective(**kw),
    lambda **kw: LatentAdversary(phase1_steps=0, **kw),
], ids=["adversarial", "flow_gan", "alignflow", "latent_adversary"])
def test_every_objective_with_a_critic_schedules_and_configures_it_the_same_way(make: Any) -> None:
    objective = make(critic_steps=3, critic_lr=1e-3, critic_beta1=0.0, critic_beta2=0.9)
    assert isinstance(objective, TwoPlayerObjective) and issubclass(objective.Params, TwoPlayerParams)
    assert objective.updates_at(5) == ["critic", "critic", "critic", "model"]
    assert objective.optimizer_overrides("critic") == {"lr": 1e-3, "beta1": 0.0, "beta2": 0.9}
    assert objective.optimizer_overrides("model") == {}
    with pytest.raises(RevkitError, match="call setup"):
        objective.parameter_groups(tiny_flow())
    with pytest.raises(RevkitError, match="critic_steps must be ≥ 1"):
        make(critic_steps=0)
