"""The planar flow: the conformance kit (numerical inverse, log-det against the brute-force Jacobian),
the constraint wᵀû > −1 that keeps it invertible, and the accuracy of the root-finding inverse."""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from hypothesis import given, settings

from revkit.blocks.planar import Planar
from revkit.testing import brute_force_logdet, check_block


def unconditional_planar(shape: tuple[int, ...], context_size: int = 0, init_scale: float = 0.1) -> Planar:
    """The planar block without context (the kit's context is then ignored)."""
    return Planar(shape, init_scale=init_scale)


def test_planar_conforms_with_and_without_context():
    # the kit gives conditional blocks a context; analytic_inverse = False makes it check the round
    # trip to inverse_atol, and the log-det against slogdet of the float64 Jacobian in both directions
    check_block("planar", shapes=[(1,), (2,), (5,)], max_examples=8, inverse_atol=1e-5)
    check_block(unconditional_planar, shapes=[(3,)], max_examples=4, inverse_atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(-20.0, 20.0), d=st.integers(1, 6))
def test_the_reparametrised_u_keeps_w_dot_u_above_minus_one(seed, scale, d):
    torch.manual_seed(seed)
    block = Planar((d,), init_scale=1.0)
    with torch.no_grad():
        block.u.copy_(-scale * block.w / block.w.norm() ** 2 * 10 + torch.randn(d))  # wᵀu far below −1 too
    with torch.no_grad():
        u_hat, w, _, m = block.parameters_for(torch.zeros(4, d), None)
    assert (m > -1).all()
    assert torch.allclose((w * u_hat).sum(1), m, atol=1e-3 * (1 + float(m.abs().max())))
    # so the Jacobian determinant 1 + tanh'·m stays positive even where tanh' = 1 (on the hyperplane)
    z_on_plane = torch.zeros(1, d)
    with torch.no_grad():
        block.b.zero_()
    assert torch.isfinite(block(z_on_plane)[1]).all()


def test_without_the_constraint_the_map_would_fold():
    """The counterexample the constraint exists for: with wᵀu = −3 the map z ↦ z + u·tanh(wᵀz) is not
    monotone along w, while the block (which uses û) stays strictly increasing there."""
    w = torch.tensor([1.0])
    u = torch.tensor([-3.0])
    z = torch.linspace(-1, 1, 201)[:, None]
    raw = z + u * torch.tanh(z * w)
    assert (raw[1:] - raw[:-1] < 0).any()  # folded: not invertible
    block = Planar((1,))
    with torch.no_grad():
        block.u.copy_(u)
        block.w.copy_(w)
    y, _ = block(z)
    assert (y[1:] - y[:-1] > 0).all()


def test_inverse_is_accurate_for_large_parameters_and_inputs():
    torch.manual_seed(0)
    block = Planar((4,), init_scale=1.0).double()
    with torch.no_grad():
        block.u.mul_(20)
        block.w.mul_(20)
        block.b.fill_(3.0)
    z = 5 * torch.randn(64, 4, dtype=torch.float64)
    y, logdet = block(z)
    z_back, inv_logdet = block.inverse(y)
    assert torch.allclose(z_back, z, atol=1e-9)
    assert torch.allclose(logdet + inv_logdet, torch.zeros(64, dtype=torch.float64), atol=1e-9)


def test_logdet_matches_the_jacobian_at_steep_points():
    torch.manual_seed(1)
    block = Planar((3,), init_scale=1.0).double()
    with torch.no_grad():
        block.w.mul_(10)
    z = torch.randn(8, 3, dtype=torch.float64) * 0.1  # near the hyperplane, where tanh' is largest
    _, logdet = block(z)
    expected, sign = brute_force_logdet(lambda t: block(t)[0], z)
    assert (sign > 0).all()
    assert torch.allclose(logdet, expected, atol=1e-8)


def test_gradients_through_the_numerical_inverse_match_finite_differences():
    torch.manual_seed(2)
    block = Planar((3,), init_scale=1.0).double()
    y = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: block.inverse(t)[0], (y,))
