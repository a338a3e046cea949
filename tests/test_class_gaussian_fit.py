"""The class prior's fit after training: moments of the encodings, the rank-k covariance factor, its
density against a dense Gaussian, its samples' covariance, the spec check, and the trainer's call."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from revkit.blocks import RevBlock
from revkit.errors import RevkitError, SpecError
from revkit.flow import Flow
from revkit.objectives import OptimalTransport
from revkit.priors import ClassGaussian
from revkit.priors.class_gaussian import ClassGaussianParams


def correlated(n: int, dims: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Encodings with strong correlations: per class a mean plus a rank-2 signal plus small noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    basis = torch.randn(classes, dims, 2, generator=g, dtype=torch.float64)
    coeff = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.5], dtype=torch.float64)
    z = y[:, None].double() + torch.einsum("ndk,nk->nd", basis[y], coeff)
    return z + 0.1 * torch.randn(n, dims, generator=g, dtype=torch.float64), y


def fitted(rank: int, z: torch.Tensor, y: torch.Tensor, param: str = "std") -> ClassGaussian:
    prior = ClassGaussian((z.shape[1],), classes=int(y.max()) + 1, param=param, covariance_rank=rank,
                          fit_samples=z.shape[0]).double()
    prior.fit_to_data(z, y)
    return prior


@pytest.mark.parametrize("rank", [0, 1, 3])
@pytest.mark.parametrize("param", ["std", "log_std"])
def test_the_fit_keeps_each_class_mean_and_per_dimension_variance(rank, param):
    z, y = correlated(300, 6, 3)
    prior = fitted(rank, z, y, param)
    for c in range(3):
        torch.testing.assert_close(prior.means.detach()[c], z[y == c].mean(dim=0))
        torch.testing.assert_close(prior.component_stds().detach()[c], z[y == c].std(dim=0))


def test_the_factor_spans_the_top_principal_directions_and_the_diagonal_is_the_residual():
    z, y = correlated(400, 8, 2)
    prior = fitted(2, z, y)
    members = z[y == 0]
    covariance = torch.cov(members.T)
    values, vectors = torch.linalg.eigh(covariance)
    w = prior.factors[0]
    torch.testing.assert_close(w @ w.T, vectors[:, -2:] @ torch.diag(values[-2:]) @ vectors[:, -2:].T)
    residual = covariance.diagonal() - (w @ w.T).diagonal()
    torch.testing.assert_close(prior.stds.detach()[0].pow(2), residual.clamp_min(0))


@settings(max_examples=20, deadline=None)
@given(rank=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_log_prob_equals_the_dense_gaussian_with_covariance_w_wt_plus_diag(rank, seed):
    z, y = correlated(200, 5, 2, seed)
    prior = fitted(rank, z, y, "log_std")
    g = torch.Generator().manual_seed(seed + 1)
    points = torch.randn(7, 5, generator=g, dtype=torch.float64) * 2
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    dense = []
    for c in range(2):
        # the density floors the diagonal std at active_threshold (1e-3), as for a collapsed dimension
        w, var = prior.factors[c], prior.log_stds.detach()[c].mul(2).exp().clamp_min(1e-6)
        gaussian = torch.distributions.MultivariateNormal(prior.means.detach()[c], w @ w.T + torch.diag(var))
        dense.append(gaussian.log_prob(points))
    dense = torch.stack(dense, dim=1)  # [7, 2]
    torch.testing.assert_close(prior.log_prob(points, labels).detach(), dense.gather(1, labels[:, None]).squeeze(1))
    marginal = torch.logsumexp(dense, dim=1) - torch.log(torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(prior.log_prob(points).detach(), marginal)


def test_samples_have_the_fitted_covariance_and_the_temperature_scales_it():
    z, y = correlated(600, 4, 1)
    prior = fitted(2, z, y)
    torch.manual_seed(0)
    draws = prior.sample(40_000, torch.zeros(40_000, dtype=torch.long))
    w = prior.factors[0]
    expected = w @ w.T + torch.diag(prior.stds.detach()[0].pow(2))
    torch.testing.assert_close(torch.cov(draws.T), expected, atol=0.05 * float(expected.abs().max()), rtol=0)
    cold = prior.sample(40_000, torch.zeros(40_000, dtype=torch.long), temperature=0.5)
    torch.testing.assert_close(torch.cov(cold.T), 0.25 * expected, atol=0.05 * float(expected.abs().max()), rtol=0)


def test_before_the_fit_the_factor_is_zero_and_sampling_matches_the_diagonal_prior():
    diagonal = ClassGaussian((5,), classes=2, param="std")
    low_rank = ClassGaussian((5,), classes=2, param="std", covariance_rank=2, fit_samples=10)
    labels = torch.tensor([0, 1, 1])
    torch.manual_seed(3)
    a = diagonal.sample(3, labels)
    torch.manual_seed(3)
    b = low_rank.sample(3, labels)
    torch.testing.assert_close(a, b)
    assert low_rank.factors.abs().sum() == 0 and "factors" in low_rank.state_dict()


def test_a_class_with_fewer_than_two_encodings_keeps_its_values():
    z, y = correlated(20, 3, 2)
    y[:] = 0
    y[0] = 1
    prior = fitted(1, z, y)
    assert prior.means.detach()[1].abs().sum() == 0 and prior.factors[1].abs().sum() == 0


def test_without_fit_samples_the_fit_does_nothing_and_labels_are_required_otherwise():
    prior = ClassGaussian((3,), classes=2)
    prior.fit_to_data(torch.randn(10, 3), torch.zeros(10, dtype=torch.long))
    assert prior.means.detach().abs().sum() == 0
    with pytest.raises(RevkitError, match="labelled"):
        ClassGaussian((3,), classes=2, fit_samples=5).fit_to_data(torch.randn(5, 3))


def test_a_rank_without_a_fit_or_above_the_latent_size_is_refused():
    with pytest.raises(ValueError, match="fit_samples"):
        ClassGaussianParams(covariance_rank=4)
    assert ClassGaussianParams(covariance_rank=4, fit_samples=10, residual=False).residual is False
    with pytest.raises(RevkitError, match="latent size"):
        ClassGaussian((3,), classes=2, covariance_rank=4, fit_samples=10)


def test_the_spec_names_the_field_when_a_rank_comes_without_a_fit():
    from pathlib import Path

    from revkit.build import build
    from revkit.spec import load_spec

    spec = Path(__file__).resolve().parents[1] / "specs" / "mnist_ot.toml"
    with pytest.raises(SpecError) as err:
        build(load_spec(spec, overrides=["prior.covariance_rank=8", "prior.fit_samples=0"]))
    assert "prior" in str(err.value.path) and "fit_samples" in str(err.value)


def trainer_for(prior: ClassGaussian, steps: int):
    from revkit.train.trainer import Trainer

    g = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = torch.randn(120, 6, generator=g) * 0.3 + y[:, None].float()
    flow = Flow([RevBlock((6,), hidden=8)], (6,), prior=prior, classes=3)
    ot = OptimalTransport(smoothness_weight=0.0, prior_fit="moments")
    settings_ = SimpleNamespace(seed=0, device="cpu", steps=steps, lr=0.01, weight_decay=0.0, betas=[0.9, 0.999],
                                schedule="none", warmup_steps=0, step_size=1000, gamma=0.5, grad_clip=0.0,
                                log_every=10, checkpoint_every=0, eval_every=0, time_limit_minutes=0.0)
    stream = io.StringIO()
    trainer = Trainer(flow, ot, DataLoader(TensorDataset(x, y), batch_size=30), settings_, progress_stream=stream)
    return trainer, flow, x, y, stream


def test_the_trainer_fits_the_prior_to_the_trained_encodings_after_the_last_step():
    prior = ClassGaussian((6,), classes=3, param="std", covariance_rank=2, fit_samples=90)
    trainer, flow, x, y, stream = trainer_for(prior, steps=4)
    trainer.fit()
    assert "fitting the prior to the encodings of 90 training examples" in stream.getvalue()
    assert prior.factors.abs().sum() > 0
    # the loader keeps its order, so the 90 encodings are those of x[:90] under the trained network
    with torch.no_grad():
        z = flow.encode(x[:90])
    members = z[y[:90] == 2]
    torch.testing.assert_close(prior.means.detach()[2], members.mean(dim=0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prior.component_stds().detach()[2], members.std(dim=0), atol=1e-5, rtol=1e-4)


def test_a_prior_without_fit_samples_is_left_as_training_left_it():
    prior = ClassGaussian((6,), classes=3, param="std")
    trainer, *_ = trainer_for(prior, steps=2)
    trainer.fit()
    before = prior.means.detach().clone()
    assert trainer.fit_prior(lambda _: None) is False
    torch.testing.assert_close(prior.means.detach(), before)


def test_without_the_residual_only_the_principal_directions_vary_and_the_density_stays_finite():
    z, y = correlated(300, 6, 2)
    prior = ClassGaussian((6,), classes=2, param="std", covariance_rank=2, fit_samples=300, residual=False).double()
    prior.fit_to_data(z, y)
    assert prior.stds.detach().abs().sum() == 0
    draws = prior.sample(50, torch.zeros(50, dtype=torch.long)) - prior.means.detach()[0]
    assert torch.linalg.matrix_rank(draws) == 2
    assert torch.isfinite(prior.log_prob(z[:10], y[:10])).all()
