"""The built-in priors: densities against torch.distributions / scipy, sampling and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import distributions as D

from revkit.errors import RevkitError
from revkit.plugins import load_registries
from revkit.priors import (
    ClassGaussian,
    DiagonalGaussian,
    GaussianMixture,
    Prior,
    StandardNormal,
)

pytestmark = pytest.mark.usefixtures("float64")


def _randomise(prior: Prior) -> None:
    """Move every parameter away from its initial value, so the checks see real parameters."""
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(0.5 * torch.randn_like(p))


# -- registration -------------------------------------------------------------------------------

def test_builtin_priors_are_registered_through_the_hook():
    regs = load_registries(entry_points=False)
    assert regs.priors["standard_normal"] is StandardNormal
    assert regs.priors["diagonal_gaussian"] is DiagonalGaussian
    assert regs.priors["class_gaussian"] is ClassGaussian
    assert regs.priors["gaussian_mixture"] is GaussianMixture


def test_params_models_describe_the_keywords():
    assert ClassGaussian.Params().classes is None
    assert ClassGaussian.Params(classes=3).classes == 3
    assert GaussianMixture.Params().components == 10
    with pytest.raises(ValueError):
        GaussianMixture.Params(components=0)
    with pytest.raises(ValueError):
        StandardNormal.Params(mean=1.0)


# -- log densities --------------------------------------------------------------------------------

def test_standard_normal_log_prob_matches_scipy():
    prior = StandardNormal((2, 3))
    z = torch.randn(5, 2, 3)
    expected = stats.norm.logpdf(z.numpy()).reshape(5, -1).sum(axis=1)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, rtol=1e-12)


def test_diagonal_gaussian_log_prob_matches_torch_distributions():
    prior = DiagonalGaussian((3, 2))
    _randomise(prior)
    z = torch.randn(7, 3, 2)
    ref = D.Independent(D.Normal(prior.mean, prior.log_std.exp()), 2).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z), ref)


def test_diagonal_gaussian_starts_as_standard_normal():
    z = torch.randn(4, 6)
    torch.testing.assert_close(DiagonalGaussian((6,)).log_prob(z), StandardNormal((6,)).log_prob(z))


def test_class_gaussian_log_prob_given_labels_uses_that_class():
    prior = ClassGaussian((4,), classes=3)
    _randomise(prior)
    z, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    ref = D.Independent(D.Normal(prior.means[y], prior.log_stds[y].exp()), 1).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z, y), ref)


def test_class_gaussian_without_labels_is_the_uniform_marginal():
    prior = ClassGaussian((4,), classes=3)
    _randomise(prior)
    z = torch.randn(6, 4)
    mix = D.MixtureSameFamily(
        D.Categorical(probs=torch.full((3,), 1 / 3)),
        D.Independent(D.Normal(prior.means, prior.log_stds.exp()), 1),
    )
    torch.testing.assert_close(prior.log_prob(z), mix.log_prob(z))


def test_class_gaussian_picks_the_component_of_the_nearest_class():
    prior = ClassGaussian((2,), classes=3)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[-5.0, 0.0], [0.0, 0.0], [5.0, 0.0]]))
    z = torch.tensor([[-5.0, 0.1], [0.2, 0.0], [4.9, -0.1]])
    per_class = torch.stack([prior.log_prob(z, torch.full((3,), c)) for c in range(3)], dim=1)
    assert per_class.argmax(dim=1).tolist() == [0, 1, 2]
    # and its samples come from the class asked for
    samples = prior.sample(200, torch.tensor(2))
    assert samples[:, 0].mean().item() == pytest.approx(5.0, abs=0.3)


def test_gaussian_mixture_log_prob_matches_torch_distributions():
    prior = GaussianMixture((2, 2), components=4)
    _randomise(prior)
    z = torch.randn(5, 2, 2)
    mix = D.MixtureSameFamily(
        D.Categorical(logits=prior.logits),
        D.Independent(D.Normal(prior.means, prior.log_stds.exp()), 2),
    )
    torch.testing.assert_close(prior.log_prob(z), mix.log_prob(z))


def test_gaussian_mixture_density_integrates_to_one_on_a_grid():
    prior = GaussianMixture((1,), components=3)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, 1.0, -1.0]))
        prior.means.copy_(torch.tensor([[-2.0], [0.5], [3.0]]))
        prior.log_stds.copy_(torch.tensor([[0.0], [-1.0], [0.3]]).reshape(3, 1))
    grid = torch.linspace(-15, 15, 30001)
    density = prior.log_prob(grid.reshape(-1, 1)).exp()
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)


def test_components_are_spread_at_initialisation():
    prior = GaussianMixture((3,), components=5)
    assert torch.cdist(prior.means.detach(), prior.means.detach()).fill_diagonal_(math.inf).min() > 0.01


# -- sampling -----------------------------------------------------------------------------------

PRIORS = {
    "standard_normal": lambda: StandardNormal((2, 3)),
    "diagonal_gaussian": lambda: DiagonalGaussian((2, 3)),
    "class_gaussian": lambda: ClassGaussian((2, 3), classes=4),
    "gaussian_mixture": lambda: GaussianMixture((2, 3), components=3),
}


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_rsample_shape_and_temperature_zero_gives_the_means(name):
    prior = PRIORS[name]()
    _randomise(prior)
    z = prior.rsample(8, temperature=0.0)
    assert z.shape == (8, 2, 3)
    if name == "standard_normal":
        assert torch.equal(z, torch.zeros_like(z))
    elif name == "diagonal_gaussian":
        torch.testing.assert_close(z, prior.mean.detach().expand_as(z))
    else:  # every sample equals one of the component means
        means = prior.means.detach().reshape(prior.means.shape[0], -1)
        dist = torch.cdist(z.detach().reshape(8, -1), means)
        assert dist.min(dim=1).values.max().item() < 1e-12


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_temperature_scales_the_deviation_from_the_mean(name):
    prior = PRIORS[name]()
    _randomise(prior)
    draws = {}
    for t in (0.0, 0.5, 1.0):
        torch.manual_seed(1)  # same labels / components and the same noise for each temperature
        draws[t] = prior.sample(500, temperature=t)
    mean = draws[0.0]
    assert (draws[1.0] - mean).abs().min() > 0
    torch.testing.assert_close(draws[0.5] - mean, 0.5 * (draws[1.0] - mean))


@pytest.mark.parametrize("name", ["diagonal_gaussian", "class_gaussian", "gaussian_mixture"])
def test_rsample_gives_gradients_to_means_and_stds(name):
    prior = PRIORS[name]()
    prior.rsample(64).pow(2).sum().backward()
    for pname, p in prior.named_parameters():
        if pname == "logits":  # the component choice is not differentiable (documented)
            assert p.grad is None
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_diagonal_gaussian_samples_have_the_learned_moments():
    prior = DiagonalGaussian((2,))
    with torch.no_grad():
        prior.mean.copy_(torch.tensor([1.0, -2.0]))
        prior.log_std.copy_(torch.tensor([0.0, math.log(3.0)]))
    z = prior.sample(20000)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 3.0]), atol=0.1, rtol=0)


def test_sample_carries_no_gradient():
    assert not DiagonalGaussian((3,)).sample(4).requires_grad


def test_mixture_samples_follow_the_weights():
    prior = GaussianMixture((1,), components=2)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([math.log(0.8), math.log(0.2)]))
        prior.means.copy_(torch.tensor([[-10.0], [10.0]]))
    z = prior.sample(5000)
    assert (z > 0).double().mean().item() == pytest.approx(0.2, abs=0.03)


def test_class_gaussian_without_labels_draws_every_class():
    prior = ClassGaussian((1,), classes=3)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[-10.0], [0.0], [10.0]]))
    z = prior.sample(600)
    nearest = (z - prior.means.reshape(1, 3)).abs().argmin(dim=1)
    assert nearest.bincount(minlength=3).min() > 150


# -- errors ---------------------------------------------------------------------------------------

def test_class_gaussian_needs_a_number_of_classes():
    with pytest.raises(RevkitError, match="classes must be an integer ≥ 1, got None"):
        ClassGaussian((4,))
    with pytest.raises(RevkitError, match="got 0"):
        ClassGaussian((4,), classes=0)


def test_out_of_range_labels_raise():
    prior = ClassGaussian((2,), classes=3)
    with pytest.raises(RevkitError, match=r"labels must lie in \[0, 3\), got values in \[0, 3\]"):
        prior.log_prob(torch.zeros(2, 2), torch.tensor([0, 3]))
    with pytest.raises(RevkitError, match=r"labels must lie in \[0, 3\)"):
        prior.rsample(2, torch.tensor([-1, 0]))


def test_wrong_number_of_labels_raises():
    with pytest.raises(RevkitError, match="expected 4 labels, got 3"):
        ClassGaussian((2,), classes=3).log_prob(torch.zeros(4, 2), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_wrong_latent_shape_raises(name):
    with pytest.raises(RevkitError, match=r"expected latents of per-sample shape \(2, 3\), got \(6,\)"):
        PRIORS[name]().log_prob(torch.zeros(4, 6))


@pytest.mark.parametrize("cls", [StandardNormal, DiagonalGaussian, GaussianMixture])
def test_bad_shapes_raise_at_construction(cls):
    msg = r"latent shape must be a non-empty tuple of positive sizes, got \(3, 0\)"
    with pytest.raises(RevkitError, match=msg):
        cls((3, 0))


def test_mixture_needs_a_component():
    with pytest.raises(RevkitError, match="components must be ≥ 1, got 0"):
        GaussianMixture((2,), components=0)


def test_bad_sampling_arguments_raise():
    with pytest.raises(RevkitError, match="temperature must be ≥ 0"):
        StandardNormal((2,)).rsample(3, temperature=-1.0)
    with pytest.raises(RevkitError, match="number of samples must be ≥ 1"):
        StandardNormal((2,)).rsample(0)


def test_state_dict_round_trip_gives_the_same_density():
    a, b = GaussianMixture((3,), components=4), GaussianMixture((3,), components=4)
    _randomise(a)
    b.load_state_dict(a.state_dict())
    z = torch.randn(5, 3)
    torch.testing.assert_close(a.log_prob(z), b.log_prob(z))
