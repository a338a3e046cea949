"""``rq_spline_coupling`` honours the revkit block contract, checked with revkit's conformance kit.

This file calls :func:`revkit.testing.check_block` exactly as any plugin author would: by the registered
name (so the entry point is exercised too) and with the shapes and parameters worth covering — images
with either mask, vectors, and small tail bounds so that many drawn inputs lie outside ``[−B, B]``,
where the block is the identity. The kit checks the float32 round trip (≤ 1e-5), both log-dets against a
brute-force float64 Jacobian, that they cancel, batch independence, ``output_shape``, gradients to every
parameter, gradients against float64 finite differences (input, context, every parameter; forward, inverse
and under memory-saving execution), train/eval agreement, a ``state_dict`` round trip and memory-saving
execution (gradients equal to plain autograd's when activations are rebuilt with the inverse), on its own odd-sized
and over-1,000-element examples too, near the identity and after some training steps; the block is conditional,
so the kit passes a context too.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from hypothesis import strategies as st
from torch import Tensor

from revkit.testing import check_block
from revkit_splines import RQSplineCoupling


def test_default_draws_conform() -> None:
    """Shapes from the block's supported ranks, parameters drawn from its ``Params`` model."""
    check_block("rq_spline_coupling", max_examples=12)


@pytest.mark.parametrize("mask", ["channel", "checkerboard"])
def test_images_conform(mask: str) -> None:
    check_block(
        "rq_spline_coupling",
        shapes=[(2, 2, 2), (2, 4, 4), (4, 2, 4)],
        params=st.fixed_dictionaries({
            "hidden": st.sampled_from([4, 8]),
            "bins": st.sampled_from([2, 5, 8]),
            "bound": st.sampled_from([0.5, 1.0, 3.0]),
            "mask": st.just(mask),
            "flip": st.booleans(),
        }),
        max_examples=8,
    )


def test_memory_saving_gives_plain_gradients_in_the_tails_too() -> None:
    """The kit's memory-saving check on its own, with bounds small enough that inputs reach the tails."""
    check_block(
        "rq_spline_coupling",
        shapes=[(4,), (2, 4, 4)],
        params=st.fixed_dictionaries({"hidden": st.just(8), "bins": st.integers(2, 8), "bound": st.floats(0.3, 1.0)}),
        checks=["memory_saving"],
        max_examples=6,
    )


def test_vectors_conform() -> None:
    check_block(
        "rq_spline_coupling",
        shapes=[(2,), (5,), (8,)],
        params=st.fixed_dictionaries({
            "hidden": st.just(8),
            "bins": st.integers(2, 10),
            "bound": st.floats(0.3, 4.0),
            "mask": st.sampled_from(["channel", "checkerboard"]),
            "flip": st.booleans(),
        }),
        max_examples=10,
    )


class TailWatchingCoupling(RQSplineCoupling):
    """The plugin's block, counting the transformed inputs it sees beyond and within ``±bound``
    (class-level counters: the kit works on deep copies)."""

    beyond: ClassVar[int] = 0
    within: ClassVar[int] = 0

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        outside = int((x.abs() > self.bound).sum())
        type(self).beyond += outside
        type(self).within += x.numel() - outside
        return super().forward(x, context)


def test_inputs_beyond_the_tail_bound_are_checked() -> None:
    """With a small bound most standard-normal inputs fall in the identity tails: the kit's checks
    then cover tails, spline and the seams between them in one batch."""
    TailWatchingCoupling.beyond = TailWatchingCoupling.within = 0
    check_block(
        TailWatchingCoupling,
        shapes=[(4,), (2, 2, 2)],
        params=st.fixed_dictionaries({
            "hidden": st.just(8),
            "bins": st.sampled_from([3, 6]),
            "bound": st.sampled_from([0.25, 0.5]),
            "mask": st.sampled_from(["channel", "checkerboard"]),
        }),
        max_examples=6,
    )
    assert TailWatchingCoupling.beyond > 100 and TailWatchingCoupling.within > 100


def test_a_fresh_block_is_the_identity() -> None:
    block = RQSplineCoupling((4, 4, 4), hidden=8, bins=5, bound=2.0)
    x = 2 * torch.randn(3, 4, 4, 4)
    y, logdet = block(x)
    assert torch.allclose(y, x, atol=1e-6) and torch.allclose(logdet, torch.zeros(3), atol=1e-5)


def test_the_context_changes_the_map_of_a_conditional_block() -> None:
    torch.manual_seed(0)
    block = RQSplineCoupling((4,), hidden=8, bins=4, bound=2.0, context_size=3)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(5, 4)
    y_a, _ = block(x, torch.eye(3)[[0] * 5])
    y_b, _ = block(x, torch.eye(3)[[1] * 5])
    assert not torch.allclose(y_a, y_b)
