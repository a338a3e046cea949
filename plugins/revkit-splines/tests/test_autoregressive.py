"""``rq_spline_autoregressive`` through revkit's conformance kit, and the autoregressive structure the kit
cannot see: output ``i`` depends only on inputs ``j ≤ i`` (in the block's order), through MADE's masks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from revkit.errors import RevkitError, ShapeError
from revkit.testing import check_block
from revkit_splines import MADE, RQSplineAutoregressive


def test_default_draws_conform() -> None:
    check_block("rq_spline_autoregressive", max_examples=10)


def test_vectors_conform_inside_and_beyond_the_tail_bound() -> None:
    """Small bounds put most standard-normal inputs in the identity tails, large ones in the spline;
    D = 1 has a MADE whose single output sees no input at all."""
    check_block(
        "rq_spline_autoregressive",
        shapes=[(1,), (2,), (5,), (8,)],
        params=st.fixed_dictionaries({
            "hidden": st.sampled_from([4, 8, 16]),
            "bins": st.integers(2, 10),
            "bound": st.sampled_from([0.25, 1.0, 4.0]),
            "flip": st.booleans(),
        }),
        max_examples=12,
    )


def _randomised(block: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.5)
    return block


@settings(max_examples=25, deadline=None)
@given(features=st.integers(1, 7), hidden=st.integers(4, 12), flip=st.booleans(), seed=st.integers(0, 2**16))
def test_made_outputs_depend_only_on_earlier_features(features: int, hidden: int, flip: bool, seed: int) -> None:
    made = _randomised(MADE(features, 3, hidden, reverse=flip), seed).double()
    x = torch.randn(256, features, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    per_sample = torch.func.vmap(torch.func.jacrev(lambda v: made(v[None])[0]))(x)  # [N, out i, P, in j]
    influence = per_sample.abs().amax(dim=(0, 2))  # [i, j]
    degree = made.degrees
    later_or_same = degree[None, :] >= degree[:, None]  # [i, j]: j is not before i
    assert torch.all(influence[later_or_same] == 0)
    # ...and the masks keep a path j → i for every earlier j (a hidden unit of each degree in [d(j), d(i)))
    if made.hidden_layers is not None:
        layers = made.hidden_layers
        paths = made.output_layer.mask @ layers.hidden_layer.mask @ layers.input_layer.mask  # [D·P, D]
        reachable = paths.reshape(features, 3, features).amax(dim=1) > 0
        if hidden >= features - 1:
            assert torch.equal(reachable, ~later_or_same)


@pytest.mark.parametrize("features", [1, 4])
def test_every_feature_depends_on_the_context(features: int) -> None:
    """The first feature's outputs see no hidden unit; the context reaches them directly."""
    made = _randomised(MADE(features, 2, 8, context_size=3), 0).double()
    x = torch.randn(1, features, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda c: made(x, c), torch.randn(1, 3, dtype=torch.float64))
    assert torch.all(jac[0].abs().amax(dim=(1, 2, 3)) > 0)


@pytest.mark.parametrize("flip", [False, True])
def test_the_block_jacobian_is_triangular_in_its_order(flip: bool) -> None:
    block = _randomised(RQSplineAutoregressive((6,), hidden=16, bins=5, bound=2.0, flip=flip), 3).double()
    x = torch.randn(1, 6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: block(v)[0], x)[0, :, 0, :]
    order = torch.arange(6).flip(0) if flip else torch.arange(6)
    permuted = jac[order][:, order]
    assert torch.equal(permuted.triu(1), torch.zeros_like(permuted))
    assert torch.all(permuted.diagonal() > 0)


def test_a_fresh_block_is_the_identity() -> None:
    block = RQSplineAutoregressive((5,), hidden=8, bins=4, bound=2.0)
    x = 3 * torch.randn(4, 5)
    y, logdet = block(x)
    assert torch.allclose(y, x, atol=1e-6) and torch.allclose(logdet, torch.zeros(4), atol=1e-5)


def test_the_context_changes_the_map_and_is_checked() -> None:
    block = _randomised(RQSplineAutoregressive((3,), hidden=8, bins=4, bound=2.0, context_size=2), 1)
    x = torch.randn(5, 3)
    y_a, _ = block(x, torch.eye(2)[[0] * 5])
    y_b, _ = block(x, torch.eye(2)[[1] * 5])
    assert not torch.allclose(y_a, y_b)
    x_back, _ = block.inverse(y_b, torch.eye(2)[[1] * 5])
    assert torch.allclose(x_back, x, atol=1e-5)
    with pytest.raises(RevkitError, match=r"pass a context of shape \(5, 2\)"):
        block(x)


def test_images_are_refused_with_advice() -> None:
    with pytest.raises(ShapeError, match="flatten"):
        RQSplineAutoregressive((1, 4, 4))
