"""The rational-quadratic spline with linear tails, as a function ℝ → ℝ per entry.

Properties from Durkan et al. (2019): zero parameters give the identity; the spline passes through its
knots, is strictly increasing, and meets the identity tails at ±B with slope 1; its log-derivative is
the log of the true derivative; the inverse undoes it, in float64 to rounding and in float32 to the
conformance kit's 1e-5 on well-conditioned splines; the minimum bin sizes and derivative hold.
"""

from __future__ import annotations

import pytest
import torch

from revkit_splines.rational_quadratic import (
    DEFAULT_MIN_BIN_HEIGHT,
    DEFAULT_MIN_BIN_WIDTH,
    DEFAULT_MIN_DERIVATIVE,
    SplineKnots,
    parameter_count,
    rq_spline,
    rq_spline_inverse,
    spline_knots,
)

BINS = 6
BOUND = 2.0


def random_knots(n: int, scale: float, dtype: torch.dtype = torch.float64, seed: int = 0) -> SplineKnots:
    """Knots of ``n`` splines from ``N(0, scale²)`` parameters (larger scale: more curved splines)."""
    gen = torch.Generator().manual_seed(seed)
    raw = scale * torch.randn(n, parameter_count(BINS), generator=gen, dtype=dtype)
    return spline_knots(raw, BOUND)


def test_zero_parameters_give_the_identity() -> None:
    knots = spline_knots(torch.zeros(7, parameter_count(BINS)), BOUND)
    x = torch.linspace(-3 * BOUND, 3 * BOUND, 7)
    y, log_d = rq_spline(x, knots)
    assert torch.allclose(y, x, atol=1e-6)
    assert torch.allclose(log_d, torch.zeros(7), atol=1e-6)


def test_outside_the_bound_the_map_is_the_identity_with_zero_log_derivative() -> None:
    knots = random_knots(4, scale=2.0)
    x = torch.tensor([-50.0, -BOUND - 1e-9, BOUND + 1e-9, 7.0], dtype=torch.float64)
    y, log_d = rq_spline(x, knots)
    assert torch.equal(y, x) and torch.equal(log_d, torch.zeros(4, dtype=torch.float64))
    x_back, inv_log_d = rq_spline_inverse(x, knots)
    assert torch.equal(x_back, x) and torch.equal(inv_log_d, torch.zeros(4, dtype=torch.float64))


def test_the_spline_passes_through_its_knots_and_meets_the_tails_with_slope_one() -> None:
    knots = random_knots(5, scale=2.0)
    for k in range(BINS + 1):
        y, log_d = rq_spline(knots.x[:, k], knots)
        assert torch.allclose(y, knots.y[:, k], atol=1e-12), f"knot {k}"
        assert torch.allclose(log_d, knots.derivative[:, k].log(), atol=1e-9), f"knot {k}"
    assert torch.equal(knots.x[:, 0], torch.full((5,), -BOUND, dtype=torch.float64))
    assert torch.equal(knots.y[:, -1], torch.full((5,), BOUND, dtype=torch.float64))
    assert torch.equal(knots.derivative[:, [0, -1]], torch.ones(5, 2, dtype=torch.float64))


def test_the_spline_is_strictly_increasing() -> None:
    knots = random_knots(3, scale=3.0)
    x = torch.linspace(-BOUND - 1, BOUND + 1, 2001, dtype=torch.float64)
    y, _ = rq_spline(x.expand(3, -1).T, _broadcast(knots, 2001))
    assert bool((y.diff(dim=0) > 0).all())


def _broadcast(knots: SplineKnots, n: int) -> SplineKnots:
    """The same per-entry knots for ``n`` points each: shapes ``[n, entries, K + 1]``."""
    return SplineKnots(*(t.expand(n, *t.shape) for t in (knots.x, knots.y, knots.derivative)), knots.bound)


def test_log_derivative_is_the_log_of_the_true_derivative() -> None:
    knots = random_knots(200, scale=2.0)
    x = (2.5 * torch.randn(200, dtype=torch.float64)).requires_grad_()
    y, log_d = rq_spline(x, knots)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(log_d, dy_dx.log(), atol=1e-10)
    assert bool((x.abs() > BOUND).any()) and bool((x.abs() < BOUND).any())


def test_the_inverse_undoes_the_spline_in_float64() -> None:
    knots = random_knots(500, scale=3.0)
    x = 2.5 * torch.randn(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y, log_d = rq_spline(x, knots)
    x_back, inv_log_d = rq_spline_inverse(y, knots)
    assert torch.allclose(x_back, x, atol=1e-9)
    assert torch.allclose(inv_log_d, -log_d, atol=1e-9)


def test_the_inverse_is_accurate_in_float32_for_well_conditioned_splines() -> None:
    knots = random_knots(2000, scale=0.5, dtype=torch.float32)
    x = 2.5 * torch.randn(2000, generator=torch.Generator().manual_seed(2))
    y, log_d = rq_spline(x, knots)
    x_back, inv_log_d = rq_spline_inverse(y, knots)
    assert float((x_back - x).abs().max()) <= 1e-5
    assert float((inv_log_d + log_d).abs().max()) <= 1e-5


def test_points_on_the_knots_and_on_the_bound_round_trip_in_float32() -> None:
    knots = random_knots(4, scale=1.0, dtype=torch.float32)
    for k in range(BINS + 1):
        x = knots.x[:, k].clone()
        y, _ = rq_spline(x, knots)
        x_back, _ = rq_spline_inverse(y, knots)
        assert float((x_back - x).abs().max()) <= 1e-5, f"knot {k}"


def test_bins_and_derivatives_respect_their_minima() -> None:
    knots = random_knots(100, scale=30.0)  # extreme logits push every size towards its floor
    widths, heights = knots.x.diff(dim=-1), knots.y.diff(dim=-1)
    assert float(widths.min()) >= 2 * BOUND * DEFAULT_MIN_BIN_WIDTH * (1 - 1e-9)
    assert float(heights.min()) >= 2 * BOUND * DEFAULT_MIN_BIN_HEIGHT * (1 - 1e-9)
    assert float(knots.derivative.min()) >= DEFAULT_MIN_DERIVATIVE
    assert torch.allclose(widths.sum(-1), torch.full((100,), 2 * BOUND, dtype=torch.float64))


@pytest.mark.parametrize("count", [1, 3, 4, 9])
def test_a_parameter_count_that_is_not_3k_minus_1_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="3K − 1"):
        spline_knots(torch.zeros(2, count), BOUND)
