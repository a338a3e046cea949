"""Training-time penalties: ``iresnet``'s Jacobian penalty estimates γ‖J_g‖_F²/d, is recorded only in
training passes with gradients, and the ``"model"`` update (and only it) adds it to the loss."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from revkit.blocks.iresnet import IResNet
from revkit.data.base import DataInfo
from revkit.flow import Flow
from revkit.objectives import MaxLikelihood
from revkit.objectives.base import Losses, Objective
from revkit.penalties import clear_penalties, total_penalty
from revkit.priors import StandardNormal
from revkit.train.distributed import StepModule


def _block(shape: tuple[int, ...], **params: object) -> IResNet:
    torch.manual_seed(0)
    block = IResNet(shape, hidden=8, **params).double()  # type: ignore[arg-type]
    with torch.no_grad():
        for layer in block.layers:
            layer.layer.weight.mul_(4.0)  # every layer at norm c: a Jacobian far from zero
        for _ in range(30):
            block.weights()  # converge the norm estimates
    return block.train()


def _inputs(shape: tuple[int, ...], n: int = 4) -> Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _frobenius(block: IResNet, x: Tensor, weights: list[Tensor]) -> Tensor:
    """‖J_g(x_i)‖_F²/d per sample, from the dense Jacobian."""
    shape = x.shape[1:]
    jacs = [torch.func.jacrev(lambda v: block.g(v.reshape(1, *shape), weights).reshape(-1))(xi.reshape(-1))
            for xi in x]
    return torch.stack([j.pow(2).sum() / j.shape[0] for j in jacs])


@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
def test_the_jacobian_penalty_averages_to_gamma_times_the_mean_squared_singular_value(shape: tuple[int, ...]) -> None:
    block = _block(shape, jacobian_penalty=2.5, jacobian_penalty_samples=0)
    x = _inputs(shape)
    weights = [w.detach() for w in block.weights()]
    truth = 2.5 * float(_frobenius(block, x, weights).mean().detach())
    draws = []
    for seed in range(400):
        torch.manual_seed(seed)
        block(x)
        assert block.penalty is not None and block.penalty.dim() == 0
        draws.append(float(block.penalty.detach()))
    mean, stderr = sum(draws) / len(draws), float(torch.tensor(draws).std()) / math.sqrt(len(draws))
    assert abs(mean - truth) <= 3 * stderr, (mean, truth, stderr)
    assert truth > 0.01  # not a vanishing Jacobian


def test_the_penalty_is_estimated_on_the_first_samples_of_the_batch() -> None:
    block = _block((2,), jacobian_penalty=1.0, jacobian_penalty_samples=2)
    x = _inputs((2,), n=6)
    other = torch.cat([x[:2], 10 * x[2:]])
    values = []
    for batch in (x, other):
        torch.manual_seed(0)
        block(batch)
        values.append(float(block.penalty.detach()))  # type: ignore[union-attr]
    assert values[0] == values[1]
    torch.manual_seed(0)
    block.jacobian_penalty_samples = 0
    block(other)
    assert float(block.penalty.detach()) != values[0]  # type: ignore[union-attr]


def test_the_penalty_is_differentiable_in_the_weights_and_pulls_the_jacobian_down() -> None:
    block = _block((2,), jacobian_penalty=1.0, jacobian_penalty_samples=0)
    x = _inputs((2,))
    torch.manual_seed(0)
    block(x)
    block.penalty.backward()  # type: ignore[union-attr]
    weights = [p for name, p in block.layers.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in weights)


def test_no_penalty_is_recorded_in_evaluation_without_gradients_or_with_gamma_zero() -> None:
    x = _inputs((2,))
    block = _block((2,), jacobian_penalty=1.0)
    block.eval()(x)
    assert block.penalty is None
    with torch.no_grad():
        block.train()(x)
    assert block.penalty is None
    off = _block((2,))
    off(x)
    assert off.penalty is None


class _Sum(Objective):
    """Any update's loss is the mean negative log-likelihood (so the flow runs for every update);
    the last result is kept in ``last``."""

    last: Losses

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        self.last = Losses(loss=-model.log_prob(batch[0]).mean(), metrics={"nll": 1.0})
        return self.last

    def update_order(self) -> list[str]:
        return ["model", "critic"]


def _flow(gamma: float) -> Flow:
    torch.manual_seed(0)
    blocks = [IResNet((2,), hidden=8, jacobian_penalty=gamma, jacobian_penalty_samples=0) for _ in range(2)]
    return Flow(blocks, (2,), prior=StandardNormal((2,)))


def test_the_model_update_adds_the_recorded_penalties_to_the_loss_and_logs_them() -> None:
    flow, objective = _flow(gamma=3.0), _Sum()
    batch = (torch.randn(16, 2, generator=torch.Generator().manual_seed(2)), torch.zeros(16, dtype=torch.long))
    out = StepModule(flow, objective)(batch, "model")
    recorded = total_penalty(flow)
    assert recorded is not None and recorded.requires_grad
    value = float(recorded.detach())
    assert value > 0
    assert float(out.loss.detach()) == pytest.approx(float(objective.last.loss.detach()) + value, rel=1e-6)
    assert out.metrics == {"nll": 1.0, "penalty": pytest.approx(value)}
    assert sum(1 for m in flow.modules() if getattr(m, "penalty", None) is not None) == 2


def test_other_updates_and_stale_penalties_add_nothing() -> None:
    flow, objective = _flow(gamma=3.0), _Sum()
    step = StepModule(flow, objective)
    batch = (torch.randn(8, 2, generator=torch.Generator().manual_seed(3)), torch.zeros(8, dtype=torch.long))
    critic = step(batch, "critic")
    assert critic is objective.last and "penalty" not in critic.metrics
    flow.eval()  # nothing recorded in this pass: what an earlier pass left must not leak in
    for block in flow.modules():
        if isinstance(block, IResNet):
            block.penalty = torch.tensor(100.0)
    out = step(batch, "model")
    assert out is objective.last and "penalty" not in out.metrics
    assert total_penalty(flow) is None
    flow.train()
    step(batch, "model")
    assert total_penalty(flow) is not None
    clear_penalties(flow)
    assert total_penalty(flow) is None


def test_training_with_the_penalty_leaves_a_smaller_jacobian() -> None:
    """Two-moons-like points, the same 150 steps with and without the penalty."""
    g = torch.Generator().manual_seed(0)
    t = torch.rand(2048, generator=g) * math.pi
    data = torch.stack([torch.cos(t), torch.sin(t)], 1) * 2 + 0.1 * torch.randn(2048, 2, generator=g)
    results = {}
    for gamma in (0.0, 5.0):
        flow = _flow(gamma)
        objective = MaxLikelihood()
        objective.setup(flow, DataInfo(shape=(2,), classes=0, levels=None, name="points"))
        step = StepModule(flow, objective)
        opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
        torch.manual_seed(1)
        for i in range(150):
            batch = data[(i * 128) % 2048:][:128]
            out = step((batch, torch.zeros(128, dtype=torch.long)), "model")
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        flow.eval()
        h, total = data[:256], 0.0
        for block in (b for b in flow.modules() if isinstance(b, IResNet)):  # in encoding order
            with torch.no_grad():
                weights = [w.detach() for w in block.weights()]
            total += float(_frobenius(block, h, weights).mean().detach())
            with torch.no_grad():
                h = block(h)[0]
        results[gamma] = total
    assert results[5.0] < 0.5 * results[0.0], results
