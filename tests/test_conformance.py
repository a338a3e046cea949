"""The conformance kit, run over every registered block, and proven able to fail.

Every block in the registry is checked the moment it is registered (the parametrization reads
the registry at collection time). Throw-away blocks below show each check passing on a correct
block and failing on a block broken in exactly the way that check exists to catch.
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
from collections.abc import Iterator
from typing import Annotated, Literal

import hypothesis
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError
from torch import Tensor, nn

from revkit.errors import ShapeError
from revkit.invertible import BlockParams, InverseVJP, Invertible, Shape, check_rank, numel, sum_except_batch
from revkit.memory_saving import recompute_reverse_grad
from revkit.plugins import get_registries
from revkit.testing import (
    ALL,
    KitError,
    check_batch_independence,
    check_block,
    check_gradients,
    check_jacobian_logdet,
    check_logdet_estimator,
    check_round_trip,
    check_state_dict,
    params_strategy,
)

FEW = 5  # hypothesis examples for the throw-away blocks: each check fails on the first one


# ============================================================================================
# every registered block
# ============================================================================================
def _reshape_params(shape: Shape) -> st.SearchStrategy[dict[str, object]]:
    n = numel(shape)
    targets = [[n], list(reversed(shape))] + ([[n // 4, 2, 2]] if n % 4 == 0 else [])
    return st.sampled_from(targets).map(lambda target: {"shape": target})


#: blocks whose parameters depend on the input shape, and how to draw them; every other block's
#: parameters are drawn from its ``Params`` model.
SHAPE_DEPENDENT_PARAMS = {"reshape": _reshape_params}

#: blocks whose parameters are drawn from a narrower strategy than their ``Params`` model: an
#: iterative inverse needs a tolerance and an iteration cap that can reach the kit's
#: ``inverse_atol`` (drawn from ``Params`` the cap would be ≤ 8 steps).
NARROWED_PARAMS = {
    "iresnet": st.fixed_dictionaries({
        "hidden": st.sampled_from([2, 4, 8]),
        "coeff": st.sampled_from([0.5, 0.9]),
        "activation": st.sampled_from(["elu", "lipswish"]),
        "actnorm": st.booleans(),
        "n_power_iterations": st.integers(1, 4),
        "logdet": st.sampled_from(["series", "roulette", "exact"]),
        # a series this short at coeff 0.9 declares a vacuous truncation bound: the kit refuses it
        # (test_a_short_iresnet_series_declares_a_vacuous_bias_bound); here, terms that bound something
        "series_terms": st.integers(5, 8),
        "probe": st.sampled_from(["gaussian", "rademacher"]),
        "n_probes": st.integers(1, 2),
        "neumann_gradient": st.booleans(),
        "inverse_tol": st.just(1e-6),
        "inverse_max_iter": st.just(200),
    }),
}


@pytest.mark.parametrize("name", get_registries().blocks.names())
def test_registered_block_conforms(name: str) -> None:
    params = SHAPE_DEPENDENT_PARAMS.get(name) or NARROWED_PARAMS.get(name)
    check_block(name, params=params, max_examples=10)


def test_a_short_iresnet_series_declares_a_vacuous_bias_bound() -> None:
    # two terms at coeff 0.9: the truncation bound d·L³/(3(1−L)), L = 0.9³, exceeds the log-volume change
    params = {"hidden": 8, "coeff": 0.9, "logdet": "series", "series_terms": 2, "inverse_tol": 1e-6,
              "inverse_max_iter": 200}
    with pytest.raises(AssertionError, match=r"check 'logdet_estimator' failed: .*declared bias bound .* is vacuous"):
        check_block("iresnet", shapes=[(5,)], params=params, checks=["logdet_estimator"], max_examples=3,
                    shrink=False)


# ============================================================================================
# throw-away blocks: a correct family, then one broken variant per check
# ============================================================================================
class AffineParams(BlockParams):
    init_scale: float = Field(0.0, ge=-1.0, le=1.0)
    learn_shift: bool = True


class Affine(Invertible):
    r"""Elementwise :math:`y = x·e^{s} + t`, ``logdet = Σ s``; ``s`` starts at ``init_scale``
    (zero by default, like a zero-initialised coupling), ``t`` at zero."""

    Params = AffineParams

    def __init__(self, input_shape: Shape, init_scale: float = 0.0, learn_shift: bool = True):
        super().__init__()
        check_rank("affine", input_shape, (1, 3))
        self.log_scale = nn.Parameter(torch.full(tuple(input_shape), float(init_scale)))
        shift = torch.zeros(tuple(input_shape))
        if learn_shift:
            self.shift = nn.Parameter(shift)
        else:
            self.register_buffer("shift", shift)

    def scale(self) -> Tensor:
        return self.log_scale

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.scale()
        return x * s.exp() + self.shift, s.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.scale()
        return (y - self.shift) * (-s).exp(), (-s.sum()).expand(y.shape[0])


class OffInverse(Affine):
    """Broken: the inverse is off by 1e-3."""

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, logdet = super().inverse(y, context)
        return x + 1e-3, logdet


class ReverseGradDropsLogdet(Affine):
    """Broken: its single-step inverse and vector–Jacobian product (``inverse_and_vjp``, which the
    memory-saving backward uses) drops the log-det's gradient, so plain and memory-saving training
    would differ; nothing else is wrong."""

    def inverse_and_vjp(
        self, y: Tensor, grad_y: Tensor, grad_logdet: Tensor | None, context: Tensor | None = None
    ) -> InverseVJP:
        return recompute_reverse_grad(self, y, grad_y, None, context)


class InverseLogdetWrongSign(Affine):
    """Broken: the inverse reports the forward's log-det, so the two do not cancel."""

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, logdet = super().inverse(y, context)
        return x, -logdet


class WrongSignLogdet(Affine):
    """Broken: both log-dets have the wrong sign. They still cancel, and with ``s = 0`` (its
    initial value) they are even right; only a Jacobian check on perturbed parameters sees it."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet = super().forward(x, context)
        return y, -logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, logdet = super().inverse(y, context)
        return x, -logdet


class LeakyBatch(Affine):
    r"""Broken: mixes the batch mean into every sample, :math:`y = a(x) + c·\bar a`.

    It is still a bijection of the whole batch with the right per-sample log-det on a batch of
    one (:math:`Σ s + D\log(1+c)`), so only the batch-independence check can catch it.
    """

    c = 0.5

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, logdet = super().forward(x, context)
        return a + self.c * a.mean(dim=0, keepdim=True), logdet + a[0].numel() * math.log1p(self.c)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a = y - self.c / (1 + self.c) * y.mean(dim=0, keepdim=True)
        x, logdet = super().inverse(a, context)
        return x, logdet - y[0].numel() * math.log1p(self.c)


class WrongOutputShape(Affine):
    """Broken: ``output_shape`` claims a trailing axis the output does not have."""

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, 1)


class UnusedParameter(Affine):
    """Broken: a parameter that nothing uses, so it never gets a gradient."""

    def __init__(self, input_shape: Shape, init_scale: float = 0.0, learn_shift: bool = True):
        super().__init__(input_shape, init_scale, learn_shift)
        self.unused = nn.Parameter(torch.ones(2))


class ModeDependent(Affine):
    """Broken: computes a different (still invertible) function in train mode."""

    def scale(self) -> Tensor:
        return self.log_scale * (1.5 if self.training else 1.0)


class LyingVolumePreserving(Affine):
    """Broken: declares ``volume_preserving`` but has a non-zero log-det."""

    volume_preserving = True


class HalfDetachedShift(Affine):
    """Broken: half of the shift enters the output through ``.detach()``: values right, the shift's
    gradient half what it should be (non-zero, so only finite differences can tell)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.scale()
        return x * s.exp() + 0.5 * (self.shift + self.shift.detach()), s.sum().expand(x.shape[0])


class VectorsOnlyInName(Affine):
    """Broken: declares ``supported_ranks = (1,)`` but builds for images without a ShapeError."""

    supported_ranks = (1,)


class ActNorm(Invertible):
    r"""Per-channel :math:`y = (x - μ)·e^{-ρ}` with :math:`μ, ρ` set from the first training
    batch (mean and log-std); ``initialized`` is a buffer, so it travels with the state dict."""

    def __init__(self, input_shape: Shape):
        super().__init__()
        check_rank("actnorm", input_shape, (1, 3))
        stat_shape = (input_shape[0],) + (1,) * (len(input_shape) - 1)
        self.loc = nn.Parameter(torch.zeros(stat_shape))
        self.log_std = nn.Parameter(torch.zeros(stat_shape))
        self.register_buffer("initialized", torch.tensor(False))

    def _is_initialized(self) -> bool:
        return bool(self.initialized)

    def _mark_initialized(self) -> None:
        self.initialized.fill_(True)

    def _spatial(self, x: Tensor) -> int:
        return numel(tuple(x.shape[2:]))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not self._is_initialized():
            with torch.no_grad():
                dims = [0, *range(2, x.dim())]
                self.loc.copy_(x.mean(dim=dims).reshape(self.loc.shape))
                self.log_std.copy_(x.std(dim=dims).add(1e-6).log().reshape(self.log_std.shape))
            self._mark_initialized()
        logdet = -self.log_std.sum() * self._spatial(x)
        return (x - self.loc) * (-self.log_std).exp(), logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = self.log_std.sum() * self._spatial(y)
        return y * self.log_std.exp() + self.loc, logdet.expand(y.shape[0])


class ForgetfulActNorm(ActNorm):
    """Broken: remembers its initialisation in a Python attribute, outside the state dict, so a
    reloaded block re-initialises on its first training batch."""

    def __init__(self, input_shape: Shape):
        super().__init__(input_shape)
        self._done = False

    def _is_initialized(self) -> bool:
        return self._done

    def _mark_initialized(self) -> None:
        self._done = True


class Conditional(Affine):
    """Correct conditional block: :math:`y = x·e^{s} + t + W c` for context ``c``."""

    conditional = True

    def __init__(self, input_shape: Shape, context_size: int, **params: object):
        super().__init__(input_shape, **params)  # type: ignore[arg-type]
        self.weight = nn.Parameter(torch.randn(context_size, numel(tuple(input_shape))) * 0.1)

    def _offset(self, x: Tensor, context: Tensor | None) -> Tensor:
        assert context is not None, "a conditional block needs its context"
        return (context @ self.weight).reshape(x.shape)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet = super().forward(x)
        return y + self._offset(x, context), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return super().inverse(y - self._offset(y, context))


class Stochastic(Affine):
    """Correct block with a noisy log-det estimate (like a power series), exact on request."""

    exact_logdet = False

    def __init__(self, input_shape: Shape, **params: object):
        super().__init__(input_shape, **params)  # type: ignore[arg-type]
        self._exact = False

    @contextlib.contextmanager
    def exact_logdet_mode(self) -> Iterator[None]:
        self._exact = True
        try:
            yield
        finally:
            self._exact = False

    def _noisy(self, logdet: Tensor) -> Tensor:
        return logdet if self._exact else logdet + 0.1 * torch.randn_like(logdet)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y, logdet = super().forward(x, context)
        return y, self._noisy(logdet)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, logdet = super().inverse(y, context)
        return x, self._noisy(logdet)


class BiasedStochastic(Stochastic):
    """Broken: its stochastic log-det averages to the exact value plus 0.2 (exact mode is right)."""

    def _noisy(self, logdet: Tensor) -> Tensor:
        return logdet if self._exact else logdet + 0.2 + 0.1 * torch.randn_like(logdet)


class StochasticWithoutExactMode(Affine):
    """Broken: a stochastic log-det and no ``exact_logdet_mode()``."""

    exact_logdet = False


class FixedPointParams(BlockParams):
    iterations: int = Field(40, ge=30)


class FixedPoint(Invertible):
    r"""Elementwise :math:`y = x + a\tanh x + t` (:math:`a = 0.5`), inverted by the fixed-point
    iteration :math:`x ← y - t - a\tanh x`, which contracts by at least :math:`a` per step."""

    analytic_inverse = False
    Params = FixedPointParams
    a = 0.5

    def __init__(self, input_shape: Shape, iterations: int = 40):
        super().__init__()
        check_rank("fixed_point", input_shape, (1, 3))
        self.shift = nn.Parameter(torch.zeros(tuple(input_shape)))
        self.iterations = iterations

    def _logdet(self, x: Tensor) -> Tensor:
        return sum_except_batch(torch.log1p(self.a / torch.cosh(x) ** 2))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x + self.a * torch.tanh(x) + self.shift, self._logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y - self.shift
        for _ in range(self.iterations):
            x = y - self.shift - self.a * torch.tanh(x)
        return x, -self._logdet(x)


class Logit(Invertible):
    r""":math:`y = \log x - \log(1-x)` on the open unit interval (declared as ``input_domain``)."""

    input_domain = (0.0, 1.0)

    def __init__(self, input_shape: Shape):
        super().__init__()
        check_rank("logit", input_shape, (1, 3))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        assert bool(((x > 0) & (x < 1)).all()), "the kit drew an input outside (0, 1)"
        return torch.logit(x), sum_except_batch(-torch.log(x) - torch.log1p(-x))

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.sigmoid(y)
        return x, -sum_except_batch(-torch.log(x) - torch.log1p(-x))


class EvenOnly(Affine):
    """Correct, but takes only vectors whose length is a multiple of 4 (ShapeError otherwise):
    of the drawn lengths 2, 4, 6, 8 half are rejected."""

    supported_ranks = (1,)

    def __init__(self, input_shape: Shape, **params: object):
        if len(input_shape) != 1 or input_shape[0] % 4:
            raise ShapeError(f"EvenOnly takes shape (4k,), got {tuple(input_shape)}")
        super().__init__(input_shape, **params)  # type: ignore[arg-type]


class Never(Affine):
    """Rejects every shape."""

    def __init__(self, input_shape: Shape, **params: object):
        raise ShapeError(f"Never takes no shape, got {tuple(input_shape)}")


# ============================================================================================
# correct blocks pass
# ============================================================================================
@pytest.mark.parametrize("block", [Affine, ActNorm, Conditional, Stochastic, FixedPoint, Logit, EvenOnly])
def test_correct_blocks_pass_every_check(block: type[Invertible]) -> None:
    check_block(block, max_examples=FEW)


# ============================================================================================
# each broken block fails exactly its check
# ============================================================================================
#: (broken block, the check that must catch it, checks it may also fail). A wrong inverse log-det
#: is also wrong against the Jacobian: cancelling is implied by both directions being exact, so
#: ``logdet_cancels`` is the cheap first line and ``jacobian`` the ground truth.
BROKEN: list[tuple[type[Invertible], str, tuple[str, ...]]] = [
    (OffInverse, "round_trip", ("memory_saving", "finite_differences")),
    (InverseLogdetWrongSign, "logdet_cancels", ("jacobian",)),
    (WrongSignLogdet, "jacobian", ()),
    (LeakyBatch, "batch_independence", ()),
    (WrongOutputShape, "output_shape", ()),
    (UnusedParameter, "gradients", ()),
    (ModeDependent, "train_eval", ()),
    (ForgetfulActNorm, "state_dict", ()),
    (LyingVolumePreserving, "volume_preserving", ()),
    (ReverseGradDropsLogdet, "memory_saving", ("finite_differences",)),
    (BiasedStochastic, "logdet_estimator", ()),
    (HalfDetachedShift, "finite_differences", ()),
    (VectorsOnlyInName, "shape_errors", ()),
]
BROKEN_IDS = [check for _, check, _ in BROKEN]


@pytest.mark.parametrize(("block", "check", "also"), BROKEN, ids=BROKEN_IDS)
def test_broken_block_fails_its_check(block: type[Invertible], check: str, also: tuple[str, ...]) -> None:
    with pytest.raises(AssertionError, match=rf"check '{check}' failed"):
        check_block(block, max_examples=FEW, checks=[check], shrink=False)


@pytest.mark.parametrize(("block", "check", "also"), BROKEN, ids=BROKEN_IDS)
def test_broken_block_passes_every_other_check(block: type[Invertible], check: str, also: tuple[str, ...]) -> None:
    check_block(block, max_examples=FEW, checks=[c for c in ALL if c != check and c not in also])


def test_a_broken_block_fails_the_full_run() -> None:
    with pytest.raises(AssertionError, match="check 'batch_independence' failed"):
        check_block(LeakyBatch, max_examples=FEW, shrink=False)


def test_every_check_has_a_broken_block_that_fails_it() -> None:
    assert set(BROKEN_IDS) == set(ALL)


def test_failure_message_names_block_shape_params_check_and_error() -> None:
    with pytest.raises(AssertionError) as info:
        check_block(OffInverse, shapes=[(4,)], params={"init_scale": 0.25}, max_examples=1, shrink=False)
    message = str(info.value)
    assert "block 'OffInverse'" in message
    assert "per-sample shape (4,)" in message
    assert "'init_scale': 0.25" in message
    assert "check 'round_trip' failed" in message
    assert re.search(r"max abs error 0\.001 > tolerance [\d.e-]+ \(atol 1e-05 × magnitude [\d.]+\)", message), message
    assert "regime " in message and "input_seed " in message
    assert "reproduce with revkit.testing.check_case(<OffInverse>, (4,), {'init_scale': 0.25}" in message


def test_parameter_noise_is_what_exposes_a_zero_initialised_sign_error() -> None:
    # at s = 0 the wrong sign is invisible; the kit's perturbation makes s ≠ 0
    check_block(WrongSignLogdet, params={"init_scale": 0.0}, checks=["jacobian"], perturb=0.0, regimes=["near"],
                max_examples=FEW)
    with pytest.raises(AssertionError, match="check 'jacobian' failed"):
        check_block(WrongSignLogdet, params={"init_scale": 0.0}, checks=["jacobian"], max_examples=FEW, shrink=False)


def test_stochastic_block_without_exact_mode_is_reported() -> None:
    with pytest.raises(AssertionError, match=r"exact_logdet = False but has no exact_logdet_mode\(\)"):
        check_block(StochasticWithoutExactMode, max_examples=FEW, shrink=False)


def test_iterative_inverse_is_held_to_inverse_atol() -> None:
    # three fixed-point steps leave errors around 1e-3: far beyond atol, within a loose inverse_atol
    def three_steps(shape: Shape) -> Invertible:
        return FixedPoint(shape, iterations=3)

    with pytest.raises(AssertionError, match="check 'round_trip' failed"):
        check_block(three_steps, checks=["round_trip"], max_examples=FEW, shrink=False)
    check_block(three_steps, checks=["round_trip"], inverse_atol=0.05, max_examples=FEW)


# ============================================================================================
# the checks as public functions
# ============================================================================================
def _vector_batch() -> Tensor:
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(1))


def _perturbed(block: Invertible) -> Invertible:
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1)
    return block


def test_checks_can_be_called_directly() -> None:
    x = _vector_batch()
    good = _perturbed(Affine((4,)))
    check_round_trip(good, x)
    check_jacobian_logdet(good, x)
    check_batch_independence(good, x)
    check_gradients(good, x)
    check_state_dict(good, x, fresh=Affine((4,)))
    with pytest.raises(AssertionError, match="round trip"):
        check_round_trip(OffInverse((4,)), x)
    with pytest.raises(AssertionError, match="Jacobian: forward logdet"):
        check_jacobian_logdet(_perturbed(WrongSignLogdet((4,))), x)
    with pytest.raises(AssertionError, match="batch independence"):
        check_batch_independence(LeakyBatch((4,)), x)
    with pytest.raises(AssertionError, match="no gradient reaches unused"):
        check_gradients(UnusedParameter((4,)), x)


def test_checks_leave_the_block_unchanged() -> None:
    x = _vector_batch()
    block = ActNorm((4,))
    block(x)  # initialise in train mode
    block = _perturbed(block).eval()
    before = {k: v.clone() for k, v in block.state_dict().items()}
    check_gradients(block, x)
    check_batch_independence(block, x)
    check_state_dict(block, x, fresh=ActNorm((4,)))
    assert not block.training
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())
    assert all(p.grad is None for p in block.parameters())


# ============================================================================================
# drawing shapes and parameters
# ============================================================================================
def test_only_the_given_shapes_and_params_are_used() -> None:
    seen: list[tuple[Shape, float]] = []

    def factory(shape: Shape, init_scale: float = 0.0) -> Invertible:
        seen.append((tuple(shape), init_scale))
        return Affine(shape, init_scale=init_scale)

    check_block(factory, shapes=[(2,), (1, 2, 2)], params={"init_scale": 0.5}, max_examples=FEW, odd_shapes=[],
                large_shapes=[])
    drawn = {s for s, _ in seen if len(s) in (1, 3)}  # (ranks 2 and 4: the shape_errors check's probes)
    assert drawn == {(2,), (1, 2, 2)}
    assert {p for _, p in seen} == {0.5}
    # by default the kit adds one odd-sized and one large example of its own, with the given params
    seen.clear()
    check_block(factory, shapes=[(2,)], params={"init_scale": 0.5}, max_examples=FEW)
    extra = {s for s, _ in seen if len(s) in (1, 3)} - {(2,)}
    assert any(math.prod(s) % 2 for s in extra) and any(math.prod(s) > 1000 for s in extra), extra
    assert {p for _, p in seen} == {0.5}


def test_given_params_are_validated_by_the_block_params_model() -> None:
    with pytest.raises(ValidationError, match="init_scale"):
        check_block(Affine, params={"init_scale": 5.0}, max_examples=1)
    with pytest.raises(ValidationError, match="hidden"):
        check_block(Affine, params={"hidden": 3}, max_examples=1)


def test_params_can_be_a_strategy() -> None:
    check_block(Affine, params=st.fixed_dictionaries({"init_scale": st.sampled_from([-0.5, 0.5])}), max_examples=FEW)


def test_shapes_the_block_rejects_are_skipped() -> None:
    check_block(EvenOnly, max_examples=FEW)  # only (4,) and (8,) of the drawn shapes build


def test_a_block_that_rejects_every_shape_is_reported() -> None:
    with pytest.raises((hypothesis.errors.Unsatisfiable, hypothesis.errors.FailedHealthCheck)):
        check_block(Never, max_examples=FEW)


def test_unknown_block_name_and_check_are_errors() -> None:
    with pytest.raises(KitError, match="did you mean 'split'"):
        check_block("splitt")
    with pytest.raises(KitError, match="unknown check 'jacobain'.*did you mean 'jacobian'"):
        check_block("split", checks=["jacobain"])


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Everything(BaseModel):
    kind: Literal["additive", "affine"] = "affine"
    flip: bool = False
    hidden: int = Field(64, ge=1)
    groups: Annotated[int, Field(gt=2, lt=6)] = 4
    levels: int = 3
    big: int = Field(32, ge=16)
    fraction: float = Field(0.5, gt=0.0, lt=1.0)
    clamp: float = Field(2.0, ge=0.5)
    widths: list[int] = [8, 8]
    pair: tuple[int, int] = (1, 2)
    colour: Colour = Colour.RED
    maybe: int | None = None
    name: str = "default"  # cannot be drawn: left to its default


@given(params_strategy(Everything))
def test_params_strategy_draws_every_supported_field_within_bounds(p: dict[str, object]) -> None:
    assert p["kind"] in ("additive", "affine")
    assert isinstance(p["flip"], bool)
    assert 1 <= p["hidden"] <= 8
    assert 3 <= p["groups"] <= 5
    assert 0 <= p["levels"] <= 8
    assert p["big"] in (16, 17)
    assert 0.0 < p["fraction"] < 1.0
    assert 0.5 <= p["clamp"] <= 8.0
    assert isinstance(p["widths"], list) and 1 <= len(p["widths"]) <= 3
    assert all(isinstance(w, int) and 0 <= w <= 8 for w in p["widths"])
    assert isinstance(p["pair"], tuple) and len(p["pair"]) == 2
    assert p["colour"] in (Colour.RED, Colour.BLUE)
    assert p["maybe"] is None or 0 <= p["maybe"] <= 8
    assert "name" not in p
    Everything.model_validate(p)


class NeedsAName(BaseModel):
    name: str


def test_params_strategy_names_a_required_field_it_cannot_draw() -> None:
    with pytest.raises(KitError, match=r"NeedsAName\.name"):
        params_strategy(NeedsAName)


# ============================================================================================
# stochastic log-det estimators
# ============================================================================================
class DeclaredBias(BiasedStochastic):
    """Correct: the same biased estimator, declaring a bound on its bias (as a truncated series does)."""

    def logdet_bias_bound(self, x: Tensor) -> Tensor:
        return torch.full((x.shape[0],), 0.25, dtype=x.dtype)


def test_a_biased_estimator_passes_only_within_its_declared_bias_bound() -> None:
    # log-scales near 1: the bound 0.25 is small against the log-volume change Σ|s| ≥ 2 it bounds
    check_block(DeclaredBias, params={"init_scale": 1.0}, checks=["logdet_estimator"], max_examples=FEW)
    # near the identity the same bound is larger than the log-volume change itself: it says nothing
    with pytest.raises(AssertionError, match=r"declared bias bound 0\.25 at sample \d is vacuous"):
        check_block(DeclaredBias, params={"init_scale": 0.0}, regimes=["near"], checks=["logdet_estimator"],
                    max_examples=FEW, shrink=False)
    with pytest.raises(AssertionError, match=r"exceeds 4 standard errors .* plus the declared bias bound 0(?![.\d])"):
        check_block(BiasedStochastic, checks=["logdet_estimator"], max_examples=FEW, shrink=False)


def test_the_estimator_check_uses_the_exact_mode_as_truth() -> None:
    x = _vector_batch()
    check_logdet_estimator(_perturbed(Stochastic((4,))), x)
    with pytest.raises(AssertionError, match=r"log-det estimator \(train mode\): at sample"):
        check_logdet_estimator(_perturbed(BiasedStochastic((4,))), x)
    check_logdet_estimator(_perturbed(Affine((4,))), x)  # exact blocks are not checked


# ============================================================================================
# reproducible by default
# ============================================================================================
def test_runs_are_derandomized_unless_exploring(monkeypatch: pytest.MonkeyPatch) -> None:
    def drawn() -> list[tuple[Shape, float]]:
        seen: list[tuple[Shape, float]] = []

        def factory(shape: Shape, init_scale: float = 0.0) -> Invertible:
            seen.append((tuple(shape), init_scale))
            return Affine(shape, init_scale=init_scale)

        check_block(factory, params=st.fixed_dictionaries({"init_scale": st.floats(-1, 1)}), max_examples=FEW,
                    checks=["output_shape"], odd_shapes=[], large_shapes=[])
        return seen

    first = drawn()
    assert drawn() == first
    monkeypatch.setenv("REVKIT_KIT_EXPLORE", "1")
    assert drawn() != first  # fresh random examples (equal only with negligible probability)


def test_the_reproduce_line_of_a_failure_reruns_that_case() -> None:
    import revkit  # noqa: F401  (the line names revkit.testing.check_case)

    with pytest.raises(AssertionError) as info:
        check_block(OffInverse, shapes=[(3,)], max_examples=1, shrink=False)
    line = str(info.value).split("reproduce with ", 1)[1].splitlines()[0]
    assert line.startswith("revkit.testing.check_case(<OffInverse>, (3,), ")
    with pytest.raises(AssertionError, match=r"check 'round_trip' failed: round trip"):
        eval(line.replace("<OffInverse>", "OffInverse"))  # noqa: S307 - the kit's own output
