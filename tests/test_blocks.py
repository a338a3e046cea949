"""Specifications of the built-in blocks' own behaviour.

The generic checks every registered block must pass (round trips on drawn inputs, brute-force
Jacobians, gradients, state_dict round trips, …) live in the conformance kit (``revkit.testing``);
here each block's particular promise is pinned down.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from pydantic import ValidationError

from revkit.blocks import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    Coupling,
    Flatten,
    InvConv1x1,
    Logit,
    Permute,
    Reshape,
    RevBlock,
    Squeeze,
    Subsample,
)
from revkit.blocks.builtin import BUILTIN_BLOCKS
from revkit.errors import RevkitError, ShapeError
from revkit.plugins import load_registries

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def perturb(block: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Move every parameter away from its initial value (zero-initialised layers make a fresh
    coupling the identity, which would let a wrong coupling pass)."""
    with torch.no_grad():
        for p in block.parameters():
            p.add_(std * torch.randn_like(p))
    return block


# -- registration and parameter models ------------------------------------------------------------


def test_every_builtin_block_is_registered_through_the_hook() -> None:
    registries = load_registries(entry_points=False)
    for name, block in BUILTIN_BLOCKS.items():
        assert registries.blocks[name] is block
    assert "split" in registries.blocks


@pytest.mark.parametrize("name", sorted(BUILTIN_BLOCKS))
def test_params_fields_are_exactly_the_keyword_parameters(name: str) -> None:
    block = BUILTIN_BLOCKS[name]
    signature = inspect.signature(block.__init__)
    keywords = set(signature.parameters) - {"self", "input_shape", "context_size", "then"}
    assert set(block.Params.model_fields) == keywords
    for field in block.Params.model_fields.values():
        assert field.description, f"{name}: every parameter needs a description"


@pytest.mark.parametrize(
    "block, params",
    [
        (AffineCoupling, {"hidden": 0}),
        (AffineCoupling, {"scale_bound": 0.0}),
        (AffineCoupling, {"scale_bound": 1e-30}),  # would underflow to 0 in float32
        (AffineCoupling, {"mask": "stripes"}),
        (AdditiveCoupling, {"hidden": -3}),
        (RevBlock, {"hidden": 0}),
        (Squeeze, {"factor": 1}),
        (Permute, {"mode": "shuffle"}),
        (Permute, {"seed": -1}),
        (Reshape, {"shape": [4, 0]}),
        (Reshape, {"shape": []}),
        (Logit, {"alpha": 0.5}),
        (Logit, {"alpha": -0.1}),
        (ActNorm, {"scale": 1.0}),
    ],
)
def test_params_reject_values_outside_their_constraints(block: type, params: dict) -> None:
    with pytest.raises(ValidationError):
        block.Params(**params)


def test_params_defaults() -> None:
    assert AffineCoupling.Params() == AffineCoupling.Params(
        hidden=64, mask="channel", flip=False, scale_bound=2.0
    )
    assert Permute.Params().mode == "reverse" and Permute.Params().seed == 0
    assert Logit.Params().alpha == 0.05
    assert Squeeze.Params().factor == 2


# -- a quick float64 round trip per block ---------------------------------------------------------

ROUND_TRIP_CASES = [
    (lambda: AffineCoupling((4, 6, 6), hidden=8), (4, 6, 6)),
    (lambda: AffineCoupling((3, 5, 5), hidden=8, mask="checkerboard", flip=True), (3, 5, 5)),
    (lambda: AffineCoupling((6,), hidden=8, flip=True), (6,)),
    (lambda: AdditiveCoupling((4, 6, 6), hidden=8), (4, 6, 6)),
    (lambda: AdditiveCoupling((5,), hidden=8, mask="checkerboard"), (5,)),
    (lambda: RevBlock((4, 6, 6), hidden=5), (4, 6, 6)),
    (lambda: RevBlock((6,), hidden=5), (6,)),
    (lambda: Subsample((1, 4, 4)), (1, 4, 4)),
    (lambda: Subsample((4, 6, 2)), (4, 6, 2)),
    (lambda: Squeeze((3, 6, 6), factor=3), (3, 6, 6)),
    (lambda: ActNorm((3, 4, 4)), (3, 4, 4)),
    (lambda: ActNorm((5,)), (5,)),
    (lambda: InvConv1x1((4, 3, 3)), (4, 3, 3)),
    (lambda: InvConv1x1((5,)), (5,)),
    (lambda: InvConv1x1((1, 3, 3)), (1, 3, 3)),
    (lambda: Permute((5, 2, 2), mode="random", seed=3), (5, 2, 2)),
    (lambda: Flatten((2, 3, 3)), (2, 3, 3)),
    (lambda: Reshape((12,), shape=[3, 2, 2]), (12,)),
    (lambda: Logit((2, 3, 3), alpha=0.1), (2, 3, 3)),
]


@pytest.mark.parametrize("factory, shape", ROUND_TRIP_CASES)
def test_float64_round_trip(factory, shape: tuple[int, ...]) -> None:
    block = perturb(factory().double())
    x = torch.rand(3, *shape, dtype=torch.float64) * 0.98 + 0.01  # inside the logit's domain
    y, logdet = block(x)
    assert tuple(y.shape[1:]) == block.output_shape(shape)
    assert logdet.shape == (3,)
    x_back, logdet_back = block.inverse(y)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(logdet + logdet_back, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    if block.volume_preserving:
        assert torch.all(logdet == 0)


# -- subsample: the seed paper's two-stream checkerboard ------------------------------------------


def pixel_ids(height: int, width: int) -> torch.Tensor:
    """A 1-channel image whose pixel at (h, w) holds the value h·width + w."""
    return torch.arange(height * width, dtype=torch.float64).reshape(1, 1, height, width)


def test_subsample_takes_the_phases_in_the_order_00_11_01_10() -> None:
    x = torch.randn(2, 3 * 2, 4, 6)  # two streams of 3 channels
    y, _ = Subsample((6, 4, 6))(x)
    assert y.shape == (2, 24, 2, 3)
    for s, stream in enumerate(x.chunk(2, dim=1)):
        packed = y[:, 12 * s : 12 * (s + 1)]
        expected = [stream[:, :, 0::2, 0::2], stream[:, :, 1::2, 1::2],
                    stream[:, :, 0::2, 1::2], stream[:, :, 1::2, 0::2]]
        for k, phase in enumerate(expected):
            assert torch.equal(packed[:, 3 * k : 3 * (k + 1)], phase)


def test_subsample_first_step_puts_even_checkerboard_in_first_half_odd_in_second() -> None:
    height = width = 6
    y, _ = Subsample((1, height, width))(pixel_ids(height, width))
    assert y.shape == (1, 4, 3, 3)

    def parities(channels: torch.Tensor) -> set[int]:
        return {(int(v) // width + int(v) % width) % 2 for v in channels.flatten()}

    assert parities(y[0, :2]) == {0}  # (h + w) even
    assert parities(y[0, 2:]) == {1}  # (h + w) odd
    assert y[0, :2].numel() == y[0, 2:].numel() == height * width // 2


def test_subsample_two_steps_on_4x4_leave_one_pixel_per_channel_each_stream_covering_the_image() -> None:
    first = Subsample((1, 4, 4))
    second = Subsample((4, 2, 2))
    y, _ = second(first(pixel_ids(4, 4))[0])
    assert y.shape == (1, 16, 1, 1)
    pixels = [divmod(int(v), 4) for v in y.flatten()]
    # worked out by hand from the phase order (0,0), (1,1), (0,1), (1,0) applied per stream
    assert pixels == [
        (0, 0), (1, 1), (2, 2), (3, 3), (0, 2), (1, 3), (2, 0), (3, 1),  # stream 1: even checkerboard
        (0, 1), (1, 0), (2, 3), (3, 2), (0, 3), (1, 2), (2, 1), (3, 0),  # stream 2: odd checkerboard
    ]
    for stream in (pixels[:8], pixels[8:]):
        assert {h for h, _ in stream} == {0, 1, 2, 3}  # every row
        assert {w for _, w in stream} == {0, 1, 2, 3}  # every column
        assert {(h // 2, w // 2) for h, w in stream} == {(0, 0), (0, 1), (1, 0), (1, 1)}  # every quadrant


def test_subsample_splits_rgb_into_streams_as_torch_chunk_does() -> None:
    x = torch.arange(3 * 4 * 4, dtype=torch.float64).reshape(1, 3, 4, 4)
    block = Subsample((3, 4, 4))
    y, logdet = block(x)
    assert y.shape == (1, 12, 2, 2) and torch.equal(logdet, torch.zeros(1, dtype=torch.float64))
    first, second = x.chunk(2, dim=1)  # 2 and 1 channels, as in the authors' code
    phases = ((0, 0), (1, 1), (0, 1), (1, 0))
    assert torch.equal(y[:, :8], torch.cat([first[:, :, i::2, j::2] for i, j in phases], dim=1))
    assert torch.equal(y[:, 8:], torch.cat([second[:, :, i::2, j::2] for i, j in phases], dim=1))
    assert torch.equal(block.inverse(y)[0], x)


def test_subsample_shape_errors_say_what_is_needed() -> None:
    with pytest.raises(ShapeError, match=r"even.*\(1, 5, 4\).*pad"):
        Subsample((1, 5, 4))
    with pytest.raises(ShapeError, match=r"images \(C, H, W\).*got per-sample shape \(16,\)"):
        Subsample((16,))


# -- squeeze ---------------------------------------------------------------------------------------


def test_squeeze_moves_each_fxf_patch_into_channels() -> None:
    x = torch.randn(2, 3, 6, 9)
    y, _ = Squeeze((3, 6, 9), factor=3)(x)
    assert y.shape == (2, 27, 2, 3)
    for c, i, j, h, w in [(0, 0, 0, 0, 0), (1, 2, 1, 1, 2), (2, 1, 2, 0, 1)]:
        assert y[:, c * 9 + i * 3 + j, h, w].equal(x[:, c, h * 3 + i, w * 3 + j])
    with pytest.raises(ShapeError, match="divisible by 2"):
        Squeeze((3, 5, 4))


# -- revblock --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 5, 5), (6,)])
def test_revblock_computes_y1_eq_x2_plus_F_x1_and_y2_eq_x1_plus_G_y1(shape: tuple[int, ...]) -> None:
    block = RevBlock(shape, hidden=7)
    x = torch.randn(3, *shape)
    x1, x2 = x.chunk(2, dim=1)
    y1 = x2 + block.f(x1)
    y2 = x1 + block.g(y1)
    y, logdet = block(x)
    torch.testing.assert_close(y, torch.cat([y1, y2], dim=1))
    assert torch.all(logdet == 0)


def test_revblock_functions_are_two_convolutions_with_default_init() -> None:
    block = RevBlock((4, 8, 8), hidden=25)
    convs = [m for m in block.f if isinstance(m, torch.nn.Conv2d)]
    layers = [(c.in_channels, c.out_channels, c.kernel_size) for c in convs]
    assert layers == [(2, 25, (3, 3)), (25, 2, (3, 3))]
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in block.modules())
    assert all(p.abs().sum() > 0 for p in block.parameters())  # not zero-initialised
    assert block.describe() == "RevBlock(25)"


@pytest.mark.parametrize(
    "shape, advice", [((3, 8, 8), "subsample"), ((1, 8, 8), "subsample"), ((5,), "even")]
)
def test_revblock_needs_an_even_channel_count(shape: tuple[int, ...], advice: str) -> None:
    with pytest.raises(ShapeError, match=rf"even number.*got {shape[0]}.*{advice}"):
        RevBlock(shape)


# -- couplings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [AffineCoupling, AdditiveCoupling])
def test_fresh_coupling_is_the_identity(block: type) -> None:
    x = torch.randn(2, 4, 6, 6)
    y, logdet = block((4, 6, 6), hidden=8)(x)
    assert torch.equal(y, x)
    assert torch.all(logdet == 0)


@pytest.mark.parametrize("block", [AffineCoupling, AdditiveCoupling])
@pytest.mark.parametrize("flip", [False, True])
def test_channel_mask_transforms_one_half_of_the_channels(block: type, flip: bool) -> None:
    x = torch.randn(2, 6, 4, 4)
    y, _ = perturb(block((6, 4, 4), hidden=8, flip=flip))(x)
    kept, changed = (slice(3, 6), slice(0, 3)) if flip else (slice(0, 3), slice(3, 6))
    assert torch.equal(y[:, kept], x[:, kept])
    assert torch.all(y[:, changed] != x[:, changed])


@pytest.mark.parametrize("flip", [False, True])
def test_checkerboard_mask_on_images_transforms_alternate_positions_in_every_channel(flip: bool) -> None:
    x = torch.randn(2, 3, 5, 5)
    y, _ = perturb(AffineCoupling((3, 5, 5), hidden=8, mask="checkerboard", flip=flip))(x)
    h, w = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    kept = ((h + w) % 2 == 0) != flip
    assert torch.equal(y[:, :, kept], x[:, :, kept])
    assert torch.all(y[:, :, ~kept] != x[:, :, ~kept])


def test_checkerboard_mask_on_vectors_keeps_even_features() -> None:
    x = torch.randn(4, 7)
    y, _ = perturb(AffineCoupling((7,), hidden=8, mask="checkerboard"))(x)
    assert torch.equal(y[:, 0::2], x[:, 0::2])
    assert torch.all(y[:, 1::2] != x[:, 1::2])


def test_affine_checkerboard_logdet_counts_only_the_transformed_entries() -> None:
    block = perturb(AffineCoupling((4, 3, 3), hidden=8, mask="checkerboard").double())
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    jacobian = torch.func.jacrev(lambda v: block(v.reshape(1, 4, 3, 3))[0].reshape(-1))(x.reshape(-1))
    _, logdet = block(x)
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jacobian)[1])


def test_affine_shift_stays_within_its_bound_for_huge_network_outputs() -> None:
    bounded = AffineCoupling((4, 2, 2), hidden=8, shift_bound=3.0)
    free = AffineCoupling((4, 2, 2), hidden=8)
    free.load_state_dict(bounded.state_dict())
    for block in (bounded, free):
        with torch.no_grad():
            block.subnet.net[-1].bias.fill_(1e6)  # raw log-scale and shift both 1e6
    x = torch.zeros(2, 4, 2, 2)
    y_bounded, _ = bounded(x)
    y_free, _ = free(x)
    assert float(y_bounded[:, 2:].detach().abs().max()) <= 3.0  # x_a = 0, so y_a is the shift alone
    assert float(y_free[:, 2:].detach().abs().max()) > 1e5
    torch.testing.assert_close(bounded.inverse(y_bounded)[0], x)


@pytest.mark.parametrize("raw", [1e6, -1e6])
@pytest.mark.parametrize("bound", [0.5, 2.0])
def test_affine_log_scale_stays_within_the_bound_for_huge_network_outputs(raw: float, bound: float) -> None:
    block = AffineCoupling((4, 2, 2), hidden=8, scale_bound=bound)
    last = block.subnet.net[-1]
    with torch.no_grad():
        last.bias.fill_(raw)  # every network output (raw log-scale and shift) becomes ±1e6
    x = torch.randn(3, 4, 2, 2)
    y, logdet = block(x)
    transformed = 2 * 2 * 2  # half of the 4 channels, 2×2 positions
    expected = math.copysign(bound, raw) * transformed
    torch.testing.assert_close(logdet, torch.full((3,), expected))
    assert torch.isfinite(y).all()
    x_back, _ = block.inverse(y)
    torch.testing.assert_close(x_back[:, :2], x[:, :2])


@pytest.mark.parametrize("shape", [(4, 4, 4), (6,)])
def test_conditional_coupling_depends_on_the_context(shape: tuple[int, ...]) -> None:
    block = perturb(AffineCoupling(shape, hidden=8, context_size=3))
    x = torch.randn(2, *shape)
    first = F.one_hot(torch.tensor([0, 0]), 3).float()
    second = F.one_hot(torch.tensor([2, 2]), 3).float()
    y_first, ld_first = block(x, first)
    y_second, ld_second = block(x, second)
    assert not torch.allclose(y_first, y_second)
    assert not torch.allclose(ld_first, ld_second)
    torch.testing.assert_close(block.inverse(y_second, second)[0], x, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(block.inverse(y_second, first)[0], x)


def test_conditional_coupling_asks_for_its_context() -> None:
    block = AdditiveCoupling((4,), hidden=8, context_size=3)
    with pytest.raises(RevkitError, match=r"context_size=3.*pass a context of shape \(2, 3\)"):
        block(torch.randn(2, 4))
    with pytest.raises(RevkitError, match=r"context of shape \(2, 3\), got \(2, 5\)"):
        block(torch.randn(2, 4), torch.zeros(2, 5))


def test_unconditional_coupling_ignores_a_context() -> None:
    block = perturb(AffineCoupling((4,), hidden=8))
    x = torch.randn(2, 4)
    assert torch.equal(block(x, torch.randn(2, 10))[0], block(x)[0])


@pytest.mark.parametrize("block", [AffineCoupling, AdditiveCoupling])
def test_channel_mask_with_odd_channels_is_a_shape_error_with_advice(block: type) -> None:
    with pytest.raises(ShapeError, match=r"even number of channels.*got 3 in per-sample shape \(3, 8, 8\)"
                                         r".*mask='checkerboard' or put a squeeze"):
        block((3, 8, 8))
    with pytest.raises(ShapeError, match=r"even number of features.*got 5.*mask='checkerboard'"):
        block((5,))


def test_coupling_rank_mismatch_and_too_small_checkerboard_are_shape_errors() -> None:
    with pytest.raises(ShapeError, match=r"vectors \(D,\) or images \(C, H, W\).*\(4, 4\).*flatten"):
        AffineCoupling((4, 4))
    with pytest.raises(ShapeError, match=r"at least 2 positions.*\(4, 1, 1\).*mask='channel'"):
        AffineCoupling((4, 1, 1), mask="checkerboard")


def test_coupling_describe() -> None:
    assert AffineCoupling((4, 2, 2), hidden=64).describe() == "AffineCoupling(64)"
    checkerboard = AdditiveCoupling((4,), hidden=32, mask="checkerboard")
    assert checkerboard.describe() == "AdditiveCoupling(32, checkerboard)"


# -- actnorm ---------------------------------------------------------------------------------------


def channel_stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0, *range(2, t.dim())]
    return t.mean(dims), t.std(dims, unbiased=False)


@pytest.mark.parametrize("shape", [(3, 5, 5), (4,)])
def test_actnorm_first_training_forward_standardises_each_channel(shape: tuple[int, ...]) -> None:
    block = ActNorm(shape).train()
    view = (1, -1) + (1,) * (len(shape) - 1)
    x = torch.randn(64, *shape) * torch.tensor([3.0, 0.5, 7.0, 2.0][: shape[0]]).view(view) + 4.0
    y, logdet = block(x)
    mean, std = channel_stats(y)
    torch.testing.assert_close(mean, torch.zeros(shape[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(shape[0]), atol=1e-5, rtol=0)
    positions = math.prod(shape[1:])
    torch.testing.assert_close(logdet, (-positions * torch.log(channel_stats(x)[1]).sum()).expand(64))


def test_actnorm_initialises_only_once() -> None:
    block = ActNorm((2, 3, 3)).train()
    block(torch.randn(32, 2, 3, 3) * 5 + 1)
    state = {k: v.clone() for k, v in block.state_dict().items()}
    y, _ = block(torch.randn(32, 2, 3, 3) * 0.1 - 8)  # different statistics: must not re-initialise
    for key, value in block.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not torch.allclose(channel_stats(y)[1], torch.ones(2), atol=0.1)


def test_actnorm_eval_mode_never_initialises() -> None:
    block = ActNorm((2, 3, 3)).eval()
    x = torch.randn(8, 2, 3, 3) * 5 + 1
    y, logdet = block(x)
    assert torch.equal(y, x) and torch.all(logdet == 0)
    assert not bool(block.initialized)


def test_actnorm_initialisation_survives_a_state_dict_round_trip() -> None:
    trained = ActNorm((2,)).train()
    trained(torch.randn(32, 2) * 3 + 2)
    restored = ActNorm((2,)).train()
    restored.load_state_dict(trained.state_dict())
    x = torch.randn(16, 2) * 0.1
    torch.testing.assert_close(restored(x)[0], trained(x)[0])  # no re-initialisation on new data


def test_actnorm_loading_an_uninitialised_state_initialises_again() -> None:
    # the block mirrors `initialized` in a Python flag (no tensor read per forward, for torch.compile);
    # loading a state dict must reset that mirror
    block = ActNorm((2,)).train()
    block(torch.randn(32, 2) * 3 + 2)
    block.load_state_dict(ActNorm((2,)).state_dict())
    assert not bool(block.initialized)
    y, _ = block(torch.randn(64, 2) * 5 - 1)
    torch.testing.assert_close(channel_stats(y)[1], torch.ones(2), atol=1e-4, rtol=0)


# -- invconv1x1 ------------------------------------------------------------------------------------


def test_invconv_starts_orthogonal_with_zero_logdet() -> None:
    block = InvConv1x1((5, 3, 3))
    w = block.weight()
    torch.testing.assert_close(w @ w.T, torch.eye(5), atol=1e-5, rtol=0)
    _, logdet = block(torch.randn(2, 5, 3, 3))
    torch.testing.assert_close(logdet, torch.zeros(2), atol=1e-5, rtol=0)
    assert abs(abs(float(torch.linalg.det(w.detach()))) - 1.0) < 1e-5  # det W = ±1


@pytest.mark.parametrize("shape", [(4, 3, 5), (4,)])
def test_invconv_multiplies_every_pixel_by_w_and_logdet_is_hw_log_abs_det_w(shape: tuple[int, ...]) -> None:
    block = perturb(InvConv1x1(shape).double())
    x = torch.randn(2, *shape, dtype=torch.float64)
    y, logdet = block(x)
    w = block.weight()
    if len(shape) == 3:
        expected = F.conv2d(x, w[:, :, None, None])
    else:
        expected = x @ w.T
    torch.testing.assert_close(y, expected)
    positions = math.prod(shape[1:])
    torch.testing.assert_close(logdet, (positions * torch.linalg.slogdet(w)[1]).expand(2))
    assert abs(float(logdet[0].detach())) > 1e-3  # the perturbation moved it off 0, so the check has teeth


def test_invconv_learns_exactly_the_lu_entries() -> None:
    parameters = dict(InvConv1x1((4, 2, 2)).named_parameters())
    assert {name: p.numel() for name, p in parameters.items()} == {
        "lower": 6, "upper": 6, "log_abs_diagonal": 4  # strictly triangular parts of 4×4, diagonal
    }
    assert [name for name, _ in InvConv1x1((1, 2, 2)).named_parameters()] == ["log_abs_diagonal"]


def test_invconv_caches_the_inverse_weight_only_while_not_training() -> None:
    block = InvConv1x1((3,)).eval()
    with torch.no_grad():
        cached = block.inverse_weight()
        assert block.inverse_weight() is cached
        block.train()
        assert block.inverse_weight() is not cached  # never cached in training mode
        block.eval()
        fresh = block.inverse_weight()
        assert fresh is not cached
        assert block.inverse_weight() is fresh
    assert block.inverse_weight().requires_grad  # with gradients wanted, no detached cache


def test_invconv_cache_follows_parameter_changes() -> None:
    block = InvConv1x1((4, 2, 2)).eval()
    y = torch.randn(3, 4, 2, 2)
    with torch.no_grad():
        block.inverse(y)  # fills the cache
        perturb(block)  # an in-place change, like an optimizer step
        x, _ = block.inverse(y)
        torch.testing.assert_close(block(x)[0], y, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(block.inverse_weight() @ block.weight(), torch.eye(4), atol=1e-5, rtol=0)


# -- permute ---------------------------------------------------------------------------------------


def test_permute_reverse_reverses_the_channels() -> None:
    x = torch.randn(2, 4, 3, 3)
    y, logdet = Permute((4, 3, 3))(x)
    assert torch.equal(y, x.flip(1))
    assert torch.all(logdet == 0)


def test_permute_random_is_fixed_by_its_seed_and_stored_in_the_state_dict() -> None:
    x = torch.arange(10.0).expand(2, 10)
    a = Permute((10,), mode="random", seed=7)(x)[0]
    torch.manual_seed(123)  # the global RNG does not matter
    b = Permute((10,), mode="random", seed=7)(x)[0]
    c = Permute((10,), mode="random", seed=8)(x)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert sorted(a[0].tolist()) == list(range(10))
    assert "permutation" in Permute((10,), mode="random").state_dict()
    assert Permute((10,), mode="random", seed=7).describe() == "Permute(random)"


# -- flatten and reshape ---------------------------------------------------------------------------


def test_flatten_and_reshape_rearrange_row_major() -> None:
    x = torch.randn(2, 4, 2, 2)
    flat, _ = Flatten((4, 2, 2))(x)
    assert torch.equal(flat, x.reshape(2, 16))
    back, _ = Reshape((16,), shape=[4, 2, 2])(flat)
    assert torch.equal(back, x)
    with pytest.raises(ShapeError, match=r"remove the flatten"):
        Flatten((16,))


def test_reshape_with_a_different_element_count_names_both_shapes() -> None:
    with pytest.raises(ShapeError, match=r"\(16,\) \(16 elements\) into \(4, 2, 3\) \(24 elements\)"):
        Reshape((16,), shape=[4, 2, 3])


# -- logit -----------------------------------------------------------------------------------------


def test_logit_is_the_logit_of_the_squeezed_input_with_its_exact_logdet() -> None:
    alpha = 0.05
    block = Logit((6,), alpha=alpha)
    x = torch.rand(4, 6, dtype=torch.float64)
    y, logdet = block(x)
    u = alpha + (1 - 2 * alpha) * x
    torch.testing.assert_close(y, torch.log(u / (1 - u)))
    torch.testing.assert_close(logdet, torch.log((1 - 2 * alpha) / (u * (1 - u))).sum(dim=1))
    assert Logit.input_domain == (0.0, 1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.499])
def test_logit_float32_round_trip_stays_precise_for_any_alpha(alpha: float) -> None:
    block = Logit((256,), alpha=alpha)
    x = torch.rand(4, 256) * 0.998 + 0.001
    torch.testing.assert_close(block.inverse(block(x)[0])[0], x, atol=1e-6, rtol=0)


def test_logit_keeps_the_boundary_finite_when_alpha_is_positive() -> None:
    y, logdet = Logit((2,), alpha=0.05)(torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()


# -- the public toolkit ---------------------------------------------------------------------------


def test_the_public_toolkit_exports_what_a_block_author_needs() -> None:
    import revkit.blocks as toolkit

    for name in ["Coupling", "Invertible", "BlockParams", "Shape", "sum_except_batch", "Register", "hookimpl",
                 "make_mask", "ChannelMask", "CheckerboardMask", "coupling_subnet", "require_rank",
                 "require_built_shape", "require_context", "require_even_channels", "InverseVJP", "vjp"]:
        assert name in toolkit.__all__ and hasattr(toolkit, name), name


class ScaleShiftShift(Coupling):
    """``y_a = x_a·e^{s} + t_1 + t_2``: a coupling with three parameters per entry, made per instance."""

    def __init__(self, input_shape: tuple[int, ...], *, hidden: int = 8, mask: str = "channel"):
        super().__init__(input_shape, hidden=hidden, mask=mask, parameters_per_entry=3)  # type: ignore[arg-type]

    def forward_half(self, active: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert params.shape == (active.shape[0], 3, *active.shape[1:])
        s, t1, t2 = params.unbind(1)
        return active * s.exp() + t1 + t2, s

    def inverse_half(self, active: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s, t1, t2 = params.unbind(1)
        return (active - t1 - t2) * (-s).exp(), -s


@pytest.mark.parametrize("shape, mask", [((4, 4, 4), "channel"), ((3, 4, 4), "checkerboard"), ((6,), "channel")])
def test_a_coupling_subclass_gets_its_parameters_per_entry_shaped_per_entry(shape: tuple[int, ...], mask: str) -> None:
    torch.manual_seed(0)
    block = ScaleShiftShift(shape, mask=mask)
    nn.init.normal_(block.subnet.net[-1].weight, std=0.3)
    out_features = block.subnet.net[-1].weight.shape[0]
    assert block.parameters_per_entry == 3 and out_features == 3 * block.mask.active_shape[0]
    x = torch.randn(5, *shape)
    y, logdet = block(x)
    x_back, inverse_logdet = block.inverse(y)
    torch.testing.assert_close(x_back, x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logdet + inverse_logdet, torch.zeros(5), rtol=0, atol=1e-5)
    assert logdet.abs().min() > 0


def test_invertible_checks_the_rank_and_the_built_shape_once_for_every_block() -> None:
    with pytest.raises(ShapeError, match=r"takes vectors \(D,\) or images \(C, H, W\), got per-sample shape "
                                         r"\(2, 3\); put a flatten or reshape before it"):
        ActNorm((2, 3))
    block = ActNorm((4, 2, 2))
    assert block.output_shape((4, 2, 2)) == (4, 2, 2)
    with pytest.raises(ShapeError, match=r"actnorm was built for per-sample shape \(4, 2, 2\), got \(4, 4, 4\)"):
        block.output_shape((4, 4, 4))
