"""revkit's ELU: the same function as torch's, with first and second derivatives right."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from revkit.blocks.activations import ELU, elu
from revkit.blocks.iresnet import IResNet

finite = st.floats(-60.0, 60.0, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=64))
def test_elu_is_torchs_elu_to_float32_rounding(values: list[float]) -> None:
    x = torch.tensor(values)
    assert torch.allclose(elu(x), F.elu(x), rtol=0, atol=1.2e-7)
    x64 = x.double()
    assert torch.allclose(elu(x64), F.elu(x64), rtol=0, atol=1e-15)


def test_elu_first_and_second_derivatives_match_finite_differences() -> None:
    torch.manual_seed(0)
    x = (torch.randn(4, 7, dtype=torch.float64) * 3).requires_grad_(True)
    assert torch.autograd.gradcheck(elu, (x,))
    assert torch.autograd.gradgradcheck(elu, (x,))


def test_elu_gradient_is_torchs_on_both_sides_and_at_zero() -> None:
    x = torch.tensor([-5.0, -1.0, -1e-3, 0.0, 1e-3, 2.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(elu(x).sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(F.elu(x2).sum(), x2)
    assert torch.allclose(g, g2)


def test_iresnet_blocks_use_it_and_keep_their_outputs() -> None:
    torch.manual_seed(0)
    block = IResNet((2, 4, 4), hidden=8, actnorm=False, logdet="exact").double().eval()  # u not updated
    assert all(isinstance(act, ELU) for act in block.acts)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    y, logdet = block(x)
    block.acts = torch.nn.ModuleList(torch.nn.ELU() for _ in block.acts)
    y_torch, logdet_torch = block(x)
    assert torch.allclose(y, y_torch, atol=1e-14) and torch.allclose(logdet, logdet_torch, atol=1e-12)
