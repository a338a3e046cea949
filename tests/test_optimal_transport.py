"""The minibatch optimal-transport objective: costs, plans against a brute-force assignment, gradients
into the network and the prior with the plan held constant, evaluation, and the mnist_ot spec."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch.utils.data import DataLoader, TensorDataset

from revkit.blocks import RevBlock
from revkit.build import build
from revkit.data.base import DataInfo
from revkit.errors import RevkitError, SpecError
from revkit.flow import Flow
from revkit.objectives import OptimalTransport, cost_matrix, transport_plan
from revkit.priors import ClassGaussian, StandardNormal
from revkit.spec import load_spec
from revkit.summary import describe
from revkit.train import Trainer

SPECS = Path(__file__).resolve().parent.parent / "specs"
INFO = DataInfo(shape=(6,), classes=3, levels=None, name="vectors")


pytestmark = pytest.mark.usefixtures("float64")


def small_flow(param: str = "std") -> Flow:
    """A RevBlock on 6-vectors with a per-class Gaussian over 3 classes (random means and stds)."""
    prior = ClassGaussian((6,), classes=3, param=param)
    with torch.no_grad():
        prior.means.copy_(torch.randn(3, 6))
        if param == "std":
            prior.stds.copy_(0.5 + torch.rand(3, 6))
    return Flow([RevBlock((6,), hidden=8)], (6,), prior=prior, classes=3)


def objective(**kw: Any) -> OptimalTransport:
    ot = OptimalTransport(**kw)
    ot.setup(small_flow(), INFO)
    return ot


# -- costs and plans -----------------------------------------------------------------------------

@pytest.mark.parametrize("cost", ["euclidean", "sqeuclidean"])
def test_cost_matrix_matches_scipy(cost: str):
    a, b = torch.randn(5, 4), torch.randn(7, 4)
    torch.testing.assert_close(cost_matrix(a, b, cost), torch.as_tensor(cdist(a.numpy(), b.numpy(), cost)))


def test_euclidean_cost_has_a_finite_gradient_where_points_coincide():
    a = torch.randn(3, 4, requires_grad=True)
    cost_matrix(a, a.detach().clone()).sum().backward()
    assert a.grad is not None and bool(torch.isfinite(a.grad).all())


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 8), dims=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_exact_plan_is_the_hungarian_assignment_scaled_by_one_over_n(n: int, dims: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    costs = cost_matrix(torch.randn(n, dims, generator=g), torch.randn(n, dims, generator=g))
    plan = transport_plan(costs, "emd")
    rows, cols = linear_sum_assignment(costs.numpy())
    assert float((plan * costs).sum()) == pytest.approx(float(costs.numpy()[rows, cols].mean()), abs=1e-12)
    torch.testing.assert_close(plan.sum(dim=0), torch.full((n,), 1.0 / n))
    torch.testing.assert_close(plan.sum(dim=1), torch.full((n,), 1.0 / n))


def test_sinkhorn_plan_has_uniform_marginals_and_approaches_the_exact_cost():
    costs = cost_matrix(torch.randn(12, 3), torch.randn(12, 3))
    exact = float((transport_plan(costs, "emd") * costs).sum())
    plan = transport_plan(costs, "sinkhorn", reg=0.02)
    torch.testing.assert_close(plan.sum(dim=1), torch.full((12,), 1 / 12), atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.sum(dim=0), torch.full((12,), 1 / 12), atol=1e-6, rtol=0)
    entropic = float((plan * costs).sum())
    assert entropic == pytest.approx(exact, rel=0.05)
    blurred = float((transport_plan(costs, "sinkhorn", reg=1.0) * costs).sum())
    assert blurred > entropic  # a larger regularisation spreads the plan: a dearer transport


def test_the_plan_is_a_constant_without_gradient():
    costs = cost_matrix(torch.randn(4, 3, requires_grad=True), torch.randn(4, 3))
    plan = transport_plan(costs)
    assert not plan.requires_grad and plan.grad_fn is None


# -- the loss ------------------------------------------------------------------------------------

def test_transport_loss_equals_the_mean_over_classes_of_the_brute_force_assignment_cost():
    flow, ot = small_flow(), objective()
    z, y = torch.randn(11, 6), torch.tensor([0, 2, 2, 0, 2, 0, 0, 2, 2, 0, 2])  # class 1 absent
    torch.manual_seed(7)
    loss = ot.transport_loss(flow, z, y)
    torch.manual_seed(7)  # the same prior draws, class by class in label order
    expected = []
    for c in (0, 2):
        zc = z[y == c].numpy()
        samples = flow.prior.rsample(len(zc), torch.full((len(zc),), c)).detach().numpy()
        costs = cdist(zc, samples)
        rows, cols = linear_sum_assignment(costs)
        expected.append(costs[rows, cols].mean())
    assert float(loss.detach()) == pytest.approx(float(np.mean(expected)), abs=1e-10)


def test_gradients_of_the_loss_treat_the_plan_as_constant():
    flow, ot = small_flow(), objective(cost="euclidean")
    z = torch.randn(5, 6, requires_grad=True)
    y = torch.zeros(5, dtype=torch.long)
    torch.manual_seed(3)
    ot.transport_loss(flow, z, y).backward()
    torch.manual_seed(3)
    samples = flow.prior.rsample(5, y).detach()
    plan = transport_plan(cost_matrix(z.detach(), samples))
    diffs = z.detach().unsqueeze(1) - samples.unsqueeze(0)  # [5, 5, 6]
    expected = (plan.unsqueeze(-1) * diffs / diffs.norm(dim=-1, keepdim=True)).sum(dim=1)
    torch.testing.assert_close(z.grad, expected)


def test_gradients_reach_the_network_and_the_prior_means_and_stds_of_the_classes_in_the_batch():
    flow, ot = small_flow(), objective()
    x, y = torch.randn(12, 6), torch.tensor([0, 1] * 6)
    out = ot.losses(flow, (x, y))
    out.loss.backward()
    prior = flow.prior
    assert set(out.metrics) == {"ot_cost", "smoothness", "active_dims", "std_ratio"}
    assert bool((prior.means.grad[:2] != 0).all()) and bool((prior.stds.grad[:2] != 0).all())
    assert bool((prior.means.grad[2] == 0).all()) and bool((prior.stds.grad[2] == 0).all())
    for name, p in flow.net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_the_smoothness_term_is_added_with_its_weight():
    flow, x, y = small_flow(), torch.rand(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    torch.manual_seed(1)
    plain = objective(smoothness_weight=0.0).losses(flow, (x, y))
    assert "smoothness" not in plain.metrics and float(plain.loss.detach()) == pytest.approx(plain.metrics["ot_cost"])
    torch.manual_seed(1)
    weighted = objective(smoothness_weight=15.0, smoothness_noise=0.1).losses(flow, (x, y))
    smooth = weighted.metrics["smoothness"]
    assert smooth > 0
    assert float(weighted.loss.detach()) == pytest.approx(weighted.metrics["ot_cost"] + 15.0 * smooth)
    assert objective(smoothness_noise=0.0).smoothness(flow, x, flow.encode(x), y) < 1e-12


def test_evaluate_gives_per_sample_costs_and_restricted_reconstruction_errors():
    flow, ot = small_flow(), objective()
    x, y = torch.randn(9, 6), torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2])
    torch.manual_seed(5)
    metrics = ot.evaluate(flow, (x, y))
    assert metrics["ot_cost"].shape == (9,) and metrics["restricted_l1"].shape == (9,)
    torch.manual_seed(5)
    z = flow.encode(x)
    plans = ot.class_plans(flow, z, y)
    weighted = sum(idx.numel() * float((plan * costs).detach().sum()) for idx, costs, plan in plans) / 9
    assert float(metrics["ot_cost"].mean()) == pytest.approx(weighted)
    assert float(metrics["restricted_l1"].max()) < 1e-12  # every dimension active: exact inversion
    with torch.no_grad():
        flow.prior.stds[0, :3] = 0.0
    collapsed = ot.evaluate(flow, (x, y))["restricted_l1"]
    assert bool((collapsed[:3] > 1e-3).all()) and float(collapsed[3:].max()) < 1e-12


# -- setup and training ----------------------------------------------------------------------------

def test_an_unconditional_prior_is_refused_with_a_clear_message():
    flow = Flow([RevBlock((6,), hidden=8)], (6,), prior=StandardNormal((6,)), classes=3)
    with pytest.raises(RevkitError, match=r"class-conditional prior \(prior.kind = 'class_gaussian'\)"):
        OptimalTransport().setup(flow, INFO)


def test_a_spec_pairing_it_with_an_unconditional_prior_fails_at_the_objective():
    with pytest.raises(SpecError) as err:
        build(load_spec(SPECS / "mnist_ot.toml", overrides=["prior={kind='standard_normal'}"]))
    assert err.value.path == "objective" and "class-conditional" in str(err.value)


def test_training_with_the_trainer_initialises_the_prior_from_data_and_keeps_stds_nonnegative():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(240) % 3
    x = torch.randn(240, 6, generator=g) * 0.3 + y[:, None].double()
    prior = ClassGaussian((6,), classes=3, param="std", init="data", init_samples=120)
    flow = Flow([RevBlock((6,), hidden=8)], (6,), prior=prior, classes=3)
    ot = OptimalTransport(smoothness_weight=1.0)
    ot.setup(flow, INFO)
    settings_ = SimpleNamespace(seed=0, device="cpu", steps=30, lr=0.2, weight_decay=0.0, betas=[0.9, 0.999],
                                schedule="none", warmup_steps=0, step_size=1000, gamma=0.5, grad_clip=0.0,
                                log_every=10, checkpoint_every=0, eval_every=0, time_limit_minutes=0.0)
    trainer = Trainer(flow, ot, DataLoader(TensorDataset(x, y), batch_size=30), settings_,
                      progress_stream=io.StringIO())
    trainer.initialize()  # the loader keeps its order, so the 120 encodings are those of x[:120]
    with torch.no_grad():
        z = flow.encode(x[:120])
    torch.testing.assert_close(prior.means.detach()[1], z[y[:120] == 1].mean(dim=0))
    first = trainer.train_step(next(iter(trainer.stream.loader)))["ot_cost"]
    trainer.fit()
    assert float(prior.stds.detach().min()) >= 0.0
    assert min(prior.active_counts()) < 6  # lr 0.2 drives some stds through zero; the clamp holds them there
    assert trainer.metrics.records[-1]["ot_cost"] < first


# -- the bundled spec ------------------------------------------------------------------------------

def test_mnist_ot_spec_builds_the_papers_revnet_with_a_data_initialised_std_prior():
    built = build(load_spec(SPECS / "mnist_ot.toml"))
    assert describe(built.model) == ("Subsample → 2×RevBlock(25) → Subsample → 2×RevBlock(50) → Subsample → "
                                    "2×RevBlock(100) → Subsample → 2×RevBlock(200) → Flatten")
    assert built.model.input_shape == (1, 32, 32) and built.model.latent_shape == (1024,)
    prior = built.model.prior
    assert isinstance(prior, ClassGaussian) and prior.param == "std" and prior.init_samples == 2000
    assert isinstance(built.objective, OptimalTransport) and built.objective.solver == "emd"
    assert built.objective.smoothness_weight == 15.0 and built.objective.smoothness_noise == 0.01


def test_the_main_spec_fits_a_rank_32_covariance_and_the_paper_spec_keeps_the_papers_setting():
    main = build(load_spec(SPECS / "mnist_ot.toml"))
    paper = build(load_spec(SPECS / "mnist_ot_paper.toml"))
    assert describe(main.model) == describe(paper.model)
    assert (main.model.prior.rank, main.model.prior.fit_samples, main.model.prior.residual) == (32, 20000, False)
    assert main.objective.prior_fit == "moments"
    assert (paper.model.prior.rank, paper.model.prior.fit_samples) == (0, 0)
    assert paper.objective.prior_fit == "learned" and paper.objective.divergence == "ot"


# -- the options against within-class collapse -------------------------------------------------------

def alike_sets(scale: torch.Tensor, dims: int = 64, n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` encodings and ``n`` prior samples of one class, both drawn from N(0, scale²) in ``dims``
    dimensions: the same distribution."""
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, dims, generator=g), scale * torch.randn(n, dims, generator=g)


def plan_cost(a: torch.Tensor, b: torch.Tensor, solver: str = "emd") -> torch.Tensor:
    costs = cost_matrix(a, b)
    return (transport_plan(costs, solver) * costs).sum()  # type: ignore[arg-type]


def scale_gradient(loss_of: Any, seeds: int = 20) -> tuple[float, float]:
    """Mean loss and mean d loss / d scale at scale 1 over ``seeds`` draws of two alike sets."""
    values, grads = [], []
    for seed in range(seeds):
        scale = torch.tensor(1.0, requires_grad=True)
        loss = loss_of(*alike_sets(scale, seed=seed))
        (grad,) = torch.autograd.grad(loss, scale)
        values.append(float(loss.detach()))
        grads.append(float(grad))
    return sum(values) / seeds, sum(grads) / seeds


def test_minibatch_ot_rewards_shrinking_two_alike_sets_and_the_energy_distance_does_not():
    ot_value, ot_grad = scale_gradient(plan_cost)
    assert ot_value > 8.0 and ot_grad > 8.0  # ≈ sqrt(2·64) ≈ 11.3: shrinking both lowers the loss
    energy_value, energy_grad = scale_gradient(OptimalTransport.energy_distance)
    assert abs(energy_value) < 0.05 * ot_value and abs(energy_grad) < 0.05 * ot_grad


def test_the_sinkhorn_divergence_at_a_small_epsilon_keeps_the_bias():
    """Why the option is the energy distance: OT_ε(z, s) − ½OT_ε(z, z) − ½OT_ε(s, s) with the solver's
    ε (5% of the largest cost) still rewards shrinking two alike minibatches almost as much as OT."""
    def sinkhorn_divergence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return plan_cost(a, b, "sinkhorn") - 0.5 * plan_cost(a, a, "sinkhorn") - 0.5 * plan_cost(b, b, "sinkhorn")

    ot_value, ot_grad = scale_gradient(plan_cost)
    value, grad = scale_gradient(sinkhorn_divergence)
    assert value > 0.8 * ot_value and grad > 0.8 * ot_grad


def test_the_energy_distance_pulls_apart_sets_together():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 16, generator=g) + 3.0
    s = torch.randn(8, 16, generator=g)
    shift = torch.zeros(16, requires_grad=True)
    loss = OptimalTransport.energy_distance(z - shift, s)
    (grad,) = torch.autograd.grad(loss, shift)
    assert float(loss) > 1.0 and bool((grad < 0).all())  # a positive shift moves z towards s and lowers it


def test_the_energy_loss_trains_the_prior_too():
    flow, ot = small_flow(), objective(divergence="energy")
    x, y = torch.randn(12, 6), torch.tensor([0, 1] * 6)
    out = ot.losses(flow, (x, y))
    out.loss.backward()
    assert bool((flow.prior.means.grad[:2] != 0).all()) and bool((flow.prior.stds.grad[:2] != 0).all())
    with pytest.raises(RevkitError, match="cost = 'euclidean'"):
        OptimalTransport(divergence="energy", cost="sqeuclidean")


def test_prior_moments_follow_the_encodings_and_get_no_gradient():
    flow = small_flow()
    ot = OptimalTransport(prior_fit="moments", prior_momentum=0.5)
    ot.setup(flow, INFO)
    x, y = torch.randn(12, 6), torch.tensor([0, 1] * 6)
    prior = flow.prior
    before_means, before_stds = prior.means.detach().clone(), prior.stds.detach().clone()
    z = flow.encode(x, y).detach()
    out = ot.losses(flow, (x, y))
    out.loss.backward()
    assert prior.means.grad is None and prior.stds.grad is None
    for c in (0, 1):
        members = z[y == c]
        assert torch.allclose(prior.means[c], 0.5 * before_means[c] + 0.5 * members.mean(0))
        assert torch.allclose(prior.stds[c], 0.5 * before_stds[c] + 0.5 * members.std(0))
    assert torch.equal(prior.means[2], before_means[2]) and torch.equal(prior.stds[2], before_stds[2])
    flow.eval()
    ot.losses(flow, (x, y))  # evaluation passes leave the prior alone
    assert torch.allclose(prior.means[0], 0.5 * before_means[0] + 0.5 * z[y == 0].mean(0))


def test_std_ratio_compares_the_prior_spread_with_the_encodings():
    flow, ot = small_flow(), objective()
    with torch.no_grad():
        flow.prior.stds.fill_(2.0)
    z = torch.cat([torch.randn(50, 6), torch.randn(50, 6)])
    y = torch.tensor([0] * 50 + [1] * 50)
    expected = sum(2.0 / float(z[y == c].std(0).mean()) for c in (0, 1)) / 2
    assert ot.std_ratio(flow, z, y) == pytest.approx(expected)


def test_bad_option_values_are_refused():
    with pytest.raises(RevkitError, match="divergence"):
        OptimalTransport(divergence="sinkhorn_divergence")  # type: ignore[arg-type]
    with pytest.raises(RevkitError, match="prior_momentum"):
        OptimalTransport(prior_momentum=1.0)
