"""Mutation suite: blocks broken the way plugin authors really break them, each refused by the kit.

Every block here is written against the public contract only (``revkit.Invertible``, ``ShapeError``,
``revkit.blocks.AffineCoupling``), as a third party would write it, and is wrong in exactly one way.
Each test runs the kit's *full* default ``check_block`` (every check, the kit's own shapes,
parameters and regimes) and asserts which check refuses the block: a check that no mutant fails
would prove nothing, and a mutant caught only by accident would not show that the check meant for
it works. Correct twins of the mutants pass (the last section), so the refusals are not noise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from revkit import Invertible, ShapeError
from revkit.blocks import AffineCoupling
from revkit.invertible import check_rank, sum_except_batch
from revkit.testing import check_block

FEW = 6  # hypothesis examples per run; the kit's own odd and large examples come on top


# ============================================================================================
# a correct elementwise affine map and a correct coupling, the bases of the mutants
# ============================================================================================
class Scale(Invertible):
    r"""Elementwise :math:`y = x e^{s} + t` with learned ``s, t`` of the sample's shape; log-det :math:`\sum s`."""

    def __init__(self, input_shape: tuple[int, ...]):
        super().__init__()
        check_rank("scale", input_shape, (1, 3))
        self.s = nn.Parameter(torch.zeros(input_shape))
        self.t = nn.Parameter(torch.zeros(input_shape))

    def logdet(self, x: Tensor) -> Tensor:
        return self.s.sum().expand(x.shape[0])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * self.s.exp() + self.t, self.logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (y - self.t) * (-self.s).exp()
        return x, -self.logdet(x)


class VectorCoupling(Invertible):
    r"""Real NVP coupling on vectors ``(D,)``: :math:`y_2 = x_2 e^{s(x_1)} + t(x_1)`, log-det :math:`\sum s(x_1)`."""

    supported_ranks = (1,)

    def __init__(self, input_shape: tuple[int, ...]):
        super().__init__()
        if len(input_shape) != 1 or input_shape[0] < 2:
            raise ShapeError(f"vector coupling takes vectors (D,) with D ≥ 2, got {tuple(input_shape)}")
        d = input_shape[0]
        self.half = d // 2
        self.net = nn.Sequential(nn.Linear(self.half, 8), nn.Tanh(), nn.Linear(8, 2 * (d - self.half)))

    def conditioner(self, x1: Tensor) -> Tensor:
        return x1

    def params(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(self.conditioner(x1)).chunk(2, dim=1)
        return torch.tanh(s), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.half], x[:, self.half :]
        s, t = self.params(x1)
        return torch.cat([x1, x2 * s.exp() + t], 1), s.sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y1, y2 = y[:, : self.half], y[:, self.half :]
        s, t = self.params(y1)
        return torch.cat([y1, (y2 - t) * (-s).exp()], 1), -s.sum(1)


# ============================================================================================
# the mutants
# ============================================================================================
class DetachedLogdet(Scale):
    """Log-det value right, but ``.detach()``ed: no gradient ever flows from the log-det term."""

    def logdet(self, x: Tensor) -> Tensor:
        return super().logdet(x).detach()


class DetachedInTraining(Scale):
    """Log-det detached only ``if self.training``: right in evaluation, wrong in the pass training differentiates."""

    def logdet(self, x: Tensor) -> Tensor:
        logdet = super().logdet(x)
        return logdet.detach() if self.training else logdet


class DetachedConditioner(VectorCoupling):
    """The conditioner reads ``x_1.detach()``: ∂L/∂x misses the paths through s(x_1), t(x_1)."""

    def conditioner(self, x1: Tensor) -> Tensor:
        return x1.detach()


class _ScaleFunction(torch.autograd.Function):
    """:math:`y = x e^{s} + t` with a hand-written backward whose gradient for ``t`` is 1.5 times too large."""

    @staticmethod
    def forward(ctx, x: Tensor, s: Tensor, t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, s)
        return x * s.exp() + t

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        x, s = ctx.saved_tensors
        return grad * s.exp(), (grad * x * s.exp()).sum(0), 1.5 * grad.sum(0)


class WrongBackward(Scale):
    """A custom ``autograd.Function`` whose backward for one parameter is off by a factor."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _ScaleFunction.apply(x, self.s, self.t), self.logdet(x)


class OffWhenOdd(Scale):
    """Log-det off by 0.1 only when a sample has an odd number of elements (e.g. 3 channels);
    consistently in both directions, so forward and inverse still cancel."""

    def logdet(self, x: Tensor) -> Tensor:
        return super().logdet(x) + (0.1 if self.s.numel() % 2 else 0.0)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = (y - self.t) * (-self.s).exp()
        return x, -self.logdet(x)


class OffWhenLarge(OffWhenOdd):
    """Log-det off by 0.1 only when a sample has more than 64 elements: wrong on every real image."""

    def logdet(self, x: Tensor) -> Tensor:
        return Scale.logdet(self, x) + (0.1 if self.s.numel() > 64 else 0.0)


class _Noisy(Scale):
    """A correct stochastic estimator: the exact log-det plus zero-mean noise; exact on request."""

    exact_logdet = False

    def __init__(self, input_shape: tuple[int, ...]):
        super().__init__(input_shape)
        self._exact = False

    @contextlib.contextmanager
    def exact_logdet_mode(self) -> Iterator[None]:
        self._exact, previous = True, self._exact
        try:
            yield
        finally:
            self._exact = previous

    def estimate(self, exact: Tensor) -> Tensor:
        return exact + 0.1 * torch.randn_like(exact)

    def logdet(self, x: Tensor) -> Tensor:
        exact = super().logdet(x)
        return exact if self._exact else self.estimate(exact)


class BiasedInTraining(_Noisy):
    """Unbiased in ``eval()``, biased in ``train()``: the estimator that training uses is wrong."""

    def estimate(self, exact: Tensor) -> Tensor:
        return super().estimate(exact) + (0.2 if self.training else 0.0)


class BiasedGradient(_Noisy):
    """Unbiased value, but its gradient is 1.5 times the log-det's: trains the wrong objective."""

    def estimate(self, exact: Tensor) -> Tensor:
        return super().estimate(exact + 0.5 * (exact - exact.detach()))


class VacuousBound(_Noisy):
    """Biased by 0.2 and 'covered' by a declared bias bound of 1,000: a bound that says nothing."""

    def estimate(self, exact: Tensor) -> Tensor:
        return super().estimate(exact) + 0.2

    def logdet_bias_bound(self, x: Tensor) -> Tensor:
        return x.new_full((x.shape[0],), 1000.0)


class DetachedLogScaleCoupling(AffineCoupling):
    """The built-in affine coupling with its log-scale detached inside the log-det (outputs untouched)."""

    def forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        y, log_scale = super().forward_half(active, params)
        return y, None if log_scale is None else log_scale.detach()

    def inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        x, log_scale = super().inverse_half(active, params)
        return x, None if log_scale is None else log_scale.detach()


class ValueErrorOnOdd(Scale):
    """Refuses odd element counts with a ValueError instead of revkit's ShapeError."""

    def __init__(self, input_shape: tuple[int, ...]):
        if int(torch.tensor(input_shape).prod()) % 2:
            raise ValueError("odd sizes are not supported")
        super().__init__(input_shape)


class IgnoresItsRanks(Scale):
    """Declares that it takes vectors only, yet builds silently for images."""

    supported_ranks = (1,)


# ============================================================================================
# each mutant is refused by the check meant for it
# ============================================================================================
MUTANTS: list[tuple[type[Invertible], str]] = [
    (DetachedLogdet, "finite_differences"),
    (DetachedInTraining, "finite_differences"),
    (DetachedConditioner, "finite_differences"),
    (WrongBackward, "finite_differences"),
    (DetachedLogScaleCoupling, "finite_differences"),
    (OffWhenOdd, "jacobian"),
    (OffWhenLarge, "jacobian"),
    (BiasedInTraining, "logdet_estimator"),
    (BiasedGradient, "logdet_estimator"),
    (VacuousBound, "logdet_estimator"),
    (IgnoresItsRanks, "shape_errors"),
]


@pytest.mark.parametrize(("block", "check"), MUTANTS, ids=[b.__name__ for b, _ in MUTANTS])
def test_the_full_kit_refuses_the_mutant_by_the_check_meant_for_it(block: type[Invertible], check: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_block(block, max_examples=FEW, shrink=False)
    message = str(info.value)
    assert f"check '{check}' failed" in message, message
    assert "reproduce with revkit.testing.check_case(" in message


def test_the_estimator_mutants_fail_for_their_own_reason() -> None:
    messages = {}
    for block in (BiasedInTraining, BiasedGradient, VacuousBound):
        with pytest.raises(AssertionError) as info:
            check_block(block, max_examples=FEW, checks=["logdet_estimator"], shrink=False)
        messages[block] = str(info.value)
    assert "(train mode)" in messages[BiasedInTraining] and "mean of 64 estimates" in messages[BiasedInTraining]
    assert "gradient of Σ v·logdet is biased" in messages[BiasedGradient]
    assert "vacuous" in messages[VacuousBound]


def test_the_large_mutant_passes_every_small_example() -> None:
    # only the kit's large example (> 64 elements) can see it: proof that the large example is needed
    check_block(OffWhenLarge, max_examples=FEW, large_shapes=[])
    with pytest.raises(AssertionError, match=r"per-sample shape \((1031,|3, 19, 19)\).*check 'jacobian' failed"):
        check_block(OffWhenLarge, max_examples=FEW, checks=["jacobian"], shrink=False)


def test_the_odd_mutant_is_caught_by_the_odd_example_even_when_the_given_shapes_are_even() -> None:
    with pytest.raises(AssertionError, match=r"check 'jacobian' failed"):
        check_block(OffWhenOdd, shapes=[(2,), (2, 2, 2)], max_examples=FEW, checks=["jacobian"], shrink=False)
    check_block(OffWhenOdd, shapes=[(2,), (2, 2, 2)], odd_shapes=[], large_shapes=[], max_examples=FEW,
                checks=["jacobian"])


def test_a_refusal_that_is_not_a_shape_error_fails() -> None:
    # the shape_errors check's own probes (an odd rank-2 shape) already meet the ValueError …
    with pytest.raises(AssertionError, match=r"check 'shape_errors' failed: .*raised ValueError: odd sizes"):
        check_block(ValueErrorOnOdd, max_examples=FEW, shrink=False)
    # … and building for an odd drawn shape fails whatever checks were asked for
    with pytest.raises(AssertionError, match=r"raised ValueError: odd sizes.*only ShapeError marks a shape"):
        check_block(ValueErrorOnOdd, max_examples=FEW, checks=["round_trip"], shrink=False)


# ============================================================================================
# the correct bases pass, so the refusals above are the mutations' doing
# ============================================================================================
@pytest.mark.parametrize("block", [Scale, VectorCoupling, _Noisy])
def test_the_correct_twins_pass(block: type[Invertible]) -> None:
    check_block(block, max_examples=FEW)


def test_the_built_in_affine_coupling_passes_where_its_detached_mutant_fails() -> None:
    check_block(AffineCoupling, max_examples=FEW)
