"""The per-class Gaussian as the optimal-transport prior: std parameters clamped at ≥ 0, data-dependent
initialisation, active dimensions and restriction, and a density that stays finite when stds collapse."""

from __future__ import annotations

import pytest
import torch

from revkit.errors import RevkitError
from revkit.priors import ClassGaussian

pytestmark = pytest.mark.usefixtures("float64")


def collapsed_prior() -> ClassGaussian:
    """Two classes on 4 dimensions; class 0 has dimensions 1 and 3 collapsed, class 1 dimension 0."""
    prior = ClassGaussian((4,), classes=2, param="std")
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]]))
        prior.stds.copy_(torch.tensor([[0.5, 0.0, 2.0, 1e-5], [0.0, 0.3, 0.3, 0.3]]))
    return prior


# -- parameterisation and the projection after each step ---------------------------------------

def test_param_std_learns_the_stds_themselves_and_log_std_stays_the_default():
    assert ClassGaussian.Params().param == "log_std" and ClassGaussian.Params().init == "none"
    default = ClassGaussian((3,), classes=2)
    assert {n for n, _ in default.named_parameters()} == {"means", "log_stds"}
    direct = ClassGaussian((3,), classes=2, param="std")
    assert {n for n, _ in direct.named_parameters()} == {"means", "stds"}
    torch.testing.assert_close(direct.component_stds(), torch.ones(2, 3))


def test_a_step_that_pushes_stds_negative_is_projected_back_to_zero():
    prior = ClassGaussian((5,), classes=3, param="std")
    optimizer = torch.optim.SGD(prior.parameters(), lr=1.0)
    prior.stds.sum().backward()  # gradient 1 everywhere: one step moves every std from 1 to 0 ...
    with torch.no_grad():
        prior.stds.grad[0] *= 3.0  # ... and class 0's to −2
    optimizer.step()
    assert float(prior.stds.detach().min()) == pytest.approx(-2.0)  # the raw step leaves them negative
    prior.after_step()
    assert float(prior.stds.detach().min()) == 0.0
    assert prior.active_counts() == [0, 0, 0]


def test_after_step_leaves_positive_stds_and_log_std_priors_alone():
    prior = collapsed_prior()
    before = prior.stds.detach().clone()
    prior.after_step()
    torch.testing.assert_close(prior.stds.detach(), before)
    default = ClassGaussian((3,), classes=2)
    with torch.no_grad():
        default.log_stds.fill_(-50.0)
    default.after_step()
    assert float(default.log_stds.detach().max()) == -50.0


# -- active dimensions ---------------------------------------------------------------------------

def test_active_dims_are_the_stds_above_the_threshold_per_label():
    prior = collapsed_prior()  # threshold 1e-3: class 0's 1e-5 counts as collapsed
    expected = torch.tensor([[True, False, True, False], [False, True, True, True]])
    y = torch.tensor([1, 0, 0])
    assert torch.equal(prior.active_dims(y), expected[y])
    assert torch.equal(prior.active_dims(), torch.tensor([[True, True, True, True]]))
    assert prior.active_counts() == [2, 3]
    loose = ClassGaussian((4,), classes=2, param="std", active_threshold=0.0)
    loose.load_state_dict(prior.state_dict())
    assert loose.active_counts() == [3, 3]


def test_restrict_clamps_inactive_dimensions_to_the_class_mean_and_keeps_the_rest():
    prior = collapsed_prior()
    z = torch.randn(3, 4, requires_grad=True)
    y = torch.tensor([0, 1, 0])
    out = prior.restrict(z, y)
    expected = z.detach().clone()
    expected[0, [1, 3]] = torch.tensor([2.0, 4.0])
    expected[1, 0] = -1.0
    expected[2, [1, 3]] = torch.tensor([2.0, 4.0])
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    assert z.grad is not None and torch.equal(z.grad != 0, prior.active_dims(y))
    with pytest.raises(RevkitError, match="needs the labels"):
        prior.restrict(z)


# -- sampling and density with collapsed stds ------------------------------------------------------

def test_samples_sit_exactly_on_the_mean_in_collapsed_dimensions_and_carry_gradients():
    prior = collapsed_prior()
    y = torch.tensor([0] * 200 + [1] * 200)
    s = prior.rsample(400, y)
    assert torch.equal(s[:200, 1], torch.full((200,), 2.0)) and torch.equal(s[200:, 0], torch.full((200,), -1.0))
    assert float(s[:200, 2].detach().std()) == pytest.approx(2.0, rel=0.2)
    s.pow(2).sum().backward()
    assert prior.means.grad is not None and bool((prior.means.grad != 0).all())
    assert prior.stds.grad is not None and float(prior.stds.grad.abs()[0, 0]) > 0


def test_log_prob_stays_finite_with_zero_stds_and_floors_them_at_the_threshold():
    prior = collapsed_prior()
    z = torch.randn(6, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    log_p = prior.log_prob(z, y)
    assert bool(torch.isfinite(log_p).all()) and bool(torch.isfinite(prior.log_prob(z)).all())
    floored = prior.stds.detach().clamp_min(1e-3)
    reference = torch.distributions.Normal(prior.means.detach()[y], floored[y]).log_prob(z).sum(dim=1)
    torch.testing.assert_close(log_p.detach(), reference)
    log_p.sum().backward()
    assert bool(torch.isfinite(prior.stds.grad).all()) and bool(torch.isfinite(prior.means.grad).all())


# -- data-dependent initialisation -------------------------------------------------------------------

def test_data_init_sets_each_class_mean_and_std_from_its_encodings():
    prior = ClassGaussian((2, 3), classes=3, param="std", init="data", init_samples=50)
    assert prior.init_samples == 50
    z = torch.randn(90, 2, 3) * torch.tensor([0.5, 1.0, 2.0]) + 3.0
    y = torch.arange(90) % 2  # classes 0 and 1 only
    prior.init_from_data(z, y)
    for c in (0, 1):
        torch.testing.assert_close(prior.means[c].detach(), z[y == c].mean(dim=0))
        torch.testing.assert_close(prior.stds[c].detach(), z[y == c].std(dim=0))
    torch.testing.assert_close(prior.means[2].detach(), z.mean(dim=0))  # absent class: pooled values
    torch.testing.assert_close(prior.stds[2].detach(), z.std(dim=0))


def test_data_init_with_log_stds_stores_their_logarithm():
    prior = ClassGaussian((3,), classes=2, init="data")
    z, y = torch.randn(40, 3) * 2.0, torch.arange(40) % 2
    prior.init_from_data(z, y)
    torch.testing.assert_close(prior.component_stds().detach()[1], z[y == 1].std(dim=0))


def test_without_data_init_the_prior_asks_for_no_encodings_and_ignores_them():
    prior = ClassGaussian((3,), classes=2, param="std")
    assert prior.init_samples == 0
    prior.init_from_data(torch.randn(10, 3) + 5.0, torch.arange(10) % 2)
    torch.testing.assert_close(prior.means.detach(), torch.zeros(2, 3))


def test_data_init_needs_labels():
    prior = ClassGaussian((3,), classes=2, init="data")
    with pytest.raises(RevkitError, match="labelled"):
        prior.init_from_data(torch.randn(10, 3))
