"""The fixed-point solvers behind iterative inverses: both reach the fixed point of a contraction,
Anderson acceleration in fewer evaluations, per-sample bookkeeping, and a spec error for an unknown
method."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from revkit.blocks.fixed_point import solve_fixed_point
from revkit.errors import SpecError
from revkit.spec import load_spec
from revkit.spec.bundled import resolve_spec

METHODS = ["plain", "anderson"]


def _linear_contraction(d: int, eigenvalues: Tensor, seed: int = 0) -> Tensor:
    """A symmetric ``[d, d]`` matrix with the given eigenvalues in a random basis (float64)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q @ torch.diag(eigenvalues) @ q.T


def _residual_map(a: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """``G(x) = y − A x``: the fixed point solves ``(I + A) x = y``."""
    return lambda x: y - x @ a.T


@pytest.mark.parametrize("method", METHODS)
def test_both_methods_solve_a_linear_residual_block(method: str) -> None:
    d = 40
    a = _linear_contraction(d, torch.linspace(-0.7, 0.7, d, dtype=torch.float64))
    y = torch.randn(6, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, stats = solve_fixed_point(_residual_map(a, y), y, tol=1e-12, max_iter=500, method=method)
    exact = torch.linalg.solve(torch.eye(d, dtype=torch.float64) + a, y.T).T
    assert stats.all_converged and stats.max_change <= 1e-12
    assert float((x - exact).abs().max()) < 1e-10
    assert stats.iterations.shape == (6,) and bool((stats.iterations >= 1).all())


def test_anderson_needs_far_fewer_evaluations_on_a_wide_spectrum() -> None:
    # eigenvalues of J_g spread over [−0.7, 0.7], as measured on trained MNIST blocks: plain iteration
    # contracts by 0.7 per step (≈ 75 steps to 1e-12 from 1); a Krylov-like method by about
    # (√κ − 1)/(√κ + 1) ≈ 0.41 with κ = 1.7/0.3
    d = 60
    a = _linear_contraction(d, torch.linspace(-0.7, 0.7, d, dtype=torch.float64))
    y = torch.randn(4, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, plain = solve_fixed_point(_residual_map(a, y), y, tol=1e-10, max_iter=500, method="plain")
    _, anderson = solve_fixed_point(_residual_map(a, y), y, tol=1e-10, max_iter=500, method="anderson", memory=10)
    assert plain.all_converged and anderson.all_converged
    assert int(anderson.iterations.max()) * 2 <= int(plain.iterations.min()), (anderson.iterations, plain.iterations)


@pytest.mark.parametrize("method", METHODS)
def test_an_iteration_cap_reports_unconverged_samples(method: str) -> None:
    d = 10
    a = _linear_contraction(d, torch.linspace(-0.9, 0.9, d, dtype=torch.float64))
    y = torch.randn(3, d, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y[0] = 0.0  # the fixed point is 0 = y: converged at the first evaluation
    x, stats = solve_fixed_point(_residual_map(a, y), y, tol=1e-9, max_iter=4, method=method)
    assert stats.converged.tolist() == [True, False, False]
    assert stats.iterations.tolist() == [1, 4, 4]
    assert stats.max_change > 1e-9
    assert torch.equal(x[0], y[0])


@pytest.mark.parametrize("method", METHODS)
def test_a_converged_sample_is_frozen_while_others_go_on(method: str) -> None:
    d = 8
    a = _linear_contraction(d, torch.linspace(-0.5, 0.5, d, dtype=torch.float64))
    y = torch.randn(3, d, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    alone, alone_stats = solve_fixed_point(_residual_map(a, y[:1]), y[:1], tol=1e-6, max_iter=100, method=method)
    mixed = y.clone()
    mixed[1:] *= 1e4  # the others need more iterations
    together, stats = solve_fixed_point(_residual_map(a, mixed), mixed, tol=1e-6, max_iter=100, method=method)
    torch.testing.assert_close(together[0], alone[0], rtol=0, atol=1e-12)  # a batched matmul may round differently
    assert int(stats.iterations[0]) == int(alone_stats.iterations[0]) < int(stats.iterations[1:].min())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 24), lipschitz=st.floats(0.05, 0.9),
       scale=st.floats(0.1, 30.0))
def test_anderson_reaches_the_fixed_point_of_any_nonlinear_contraction(seed: int, dim: int, lipschitz: float,
                                                                      scale: float) -> None:
    # g(x) = L · W2 tanh(W1 x + b) with ‖W1‖ = ‖W2‖ = 1: Lip(g) ≤ L; inputs of any scale
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(2 * dim, dim, generator=gen, dtype=torch.float64)
    w2 = torch.randn(dim, 2 * dim, generator=gen, dtype=torch.float64)
    w1, w2 = w1 / torch.linalg.matrix_norm(w1, 2), w2 / torch.linalg.matrix_norm(w2, 2)
    b = torch.randn(2 * dim, generator=gen, dtype=torch.float64)
    y = scale * torch.randn(5, dim, generator=gen, dtype=torch.float64)

    def g(x: Tensor) -> Tensor:
        return lipschitz * torch.tanh(x @ w1.T + b) @ w2.T

    cap = 20 + math.ceil(math.log(1e-10 / (scale * 10)) / math.log(lipschitz))  # what plain iteration needs, plus slack
    x, stats = solve_fixed_point(lambda v: y - g(v), y, tol=1e-10, max_iter=cap, method="anderson")
    assert stats.all_converged, stats
    assert float((x + g(x) - y).abs().max()) <= 1e-9


def test_anderson_restarts_cleanly_after_its_residual_grows() -> None:
    # G(x) = A x + b with A = [[0, 3], [0, 0]] (nilpotent, fixed point (3, 1)): from x = 0 the first
    # plain step triples the residual, so Anderson drops the sample's history and its next step
    # solves with an all-zero Gram matrix; that step must be a plain one, not a NaN
    a = torch.tensor([[0.0, 3.0], [0.0, 0.0]])
    b = torch.tensor([0.0, 1.0])
    x, stats = solve_fixed_point(lambda v: v @ a.T + b, torch.zeros(1, 2), tol=1e-6, max_iter=10, method="anderson")
    assert stats.all_converged, stats
    assert torch.allclose(x, torch.tensor([[3.0, 1.0]]))


@pytest.mark.parametrize("method", ["plain", "anderson"])
def test_a_nan_residual_is_never_reported_as_converged(method: str) -> None:
    y = torch.tensor([[1.0, 2.0], [float("nan"), 0.0]])
    x, stats = solve_fixed_point(lambda v: y - 0.5 * torch.tanh(v), y, tol=1e-6, max_iter=50, method=method)  # type: ignore[arg-type]
    assert stats.converged.tolist() == [True, False]
    assert bool(torch.isfinite(x[0]).all())


def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="'plain' or 'anderson'"):
        solve_fixed_point(lambda v: v, torch.zeros(1, 1), tol=1e-6, max_iter=3, method="newton")  # type: ignore[arg-type]


def test_the_spec_names_the_field_of_an_unknown_inverse_method() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(resolve_spec("mnist_iresnet"), overrides=['model.layers[2].inverse_method="newton"'])
    message = str(info.value)
    assert "model.layers[2].inverse_method" in message and "'anderson'" in message and "'plain'" in message
