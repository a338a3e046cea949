"""The VAE's bounds on log p(x): the IWAE estimate against exact marginalisation on a grid, and the
IWAE bound against the ELBO."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from revkit.blocks.planar import Planar
from revkit.sequential import Sequential
from revkit.vae import VAE, elbo, importance_weighted

PIXELS = 4


class TinyEncoder(nn.Module):
    """x [B, 4] → a posterior a little off the prior (μ = 0.3·Ax) and wider than it (log σ = 0.2), so that
    the importance weights p(x, z)/q(z|x) stay bounded and the estimates converge quickly."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(PIXELS, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, None]:
        mean = 0.3 * self.mean(x)
        return mean, torch.full_like(mean, 0.2), None


def tiny_vae(flow_steps: int = 2) -> VAE:
    """A 2-D latent, a linear decoder to 4 Bernoulli pixels, and a planar posterior flow."""
    torch.manual_seed(0)
    decoder = nn.Linear(2, PIXELS)
    with torch.no_grad():
        decoder.weight.mul_(3.0)  # a decoder whose likelihood varies strongly with z
    flow = Sequential([Planar((2,), init_scale=0.5) for _ in range(flow_steps)], (2,))
    return VAE((PIXELS,), 2, TinyEncoder(), decoder, flow).double()


def exact_log_px(model: VAE, x: Tensor, half_width: float = 7.0, points: int = 401) -> Tensor:
    r"""log ∫ p(x|z) N(z; 0, I) dz by the midpoint rule on a grid over [−w, w]² (a 2-D latent)."""
    axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    cell = math.log(float(axis[1] - axis[0])) * 2
    grid = torch.cartesian_prod(axis, axis)  # [G, 2]
    z = grid[:, None, :].expand(-1, x.shape[0], -1)  # [G, B, 2]
    with torch.no_grad():
        log_joint = model.log_likelihood(x, z) + model.log_prior(z)
    return torch.logsumexp(log_joint, dim=0) + cell


def binary_batch(n: int, seed: int = 1) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, PIXELS), 0.5, dtype=torch.float64), generator=gen)


def test_iwae_estimate_agrees_with_exact_marginalisation_on_a_grid():
    model = tiny_vae()
    x = binary_batch(6)
    exact = exact_log_px(model, x)
    torch.manual_seed(2)
    estimate = importance_weighted(model, x, samples=40_000, chunk_rows=240_000).log_px
    assert torch.allclose(estimate, exact, atol=0.02), (estimate, exact)


def test_the_elbo_is_below_log_px_by_a_visible_gap():
    model = tiny_vae()
    x = binary_batch(6)
    torch.manual_seed(3)
    gap = exact_log_px(model, x) - elbo(model, x, samples=10_000)
    assert (gap > 0.01).all(), gap  # the posterior is not exact, so the bound is not tight


@pytest.mark.parametrize("flow_steps", [0, 3])
def test_iwae_bound_with_100_samples_is_at_least_the_elbo_on_average(flow_steps):
    model = tiny_vae(flow_steps)
    x = binary_batch(16, seed=4)
    torch.manual_seed(5)
    bound_elbo = elbo(model, x, samples=1).mean()  # an independent estimate of the ELBO
    iwae = importance_weighted(model, x, samples=100).log_px.mean()
    assert iwae >= bound_elbo
    assert iwae <= exact_log_px(model, x).mean() + 0.02  # and still a lower bound of log p(x)


def test_small_chunks_give_the_same_estimate():
    """997 samples per image at a time (the last chunk partial): still the exact value."""
    model = tiny_vae()
    x = binary_batch(6)
    torch.manual_seed(6)
    chunked = importance_weighted(model, x, samples=40_000, chunk_rows=6 * 997)
    assert chunked.samples == 40_000
    assert torch.allclose(chunked.log_px, exact_log_px(model, x), atol=0.02)
