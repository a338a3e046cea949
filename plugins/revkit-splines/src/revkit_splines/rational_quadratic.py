r"""Monotone rational-quadratic splines with linear tails (Durkan et al., 2019, "Neural Spline Flows").

An elementwise bijection :math:`g: ℝ → ℝ` that is a monotone rational-quadratic spline with ``K`` bins on
:math:`[-B, B]` and the identity outside it. Its ``K + 1`` knots :math:`(x_k, y_k)` run from
:math:`(-B, -B)` to :math:`(B, B)`; the derivatives :math:`δ_k > 0` at the knots are free inside and
:math:`δ_0 = δ_K = 1` at the ends, so :math:`g` and :math:`g'` are continuous where the spline meets the
identity tails. In bin :math:`k`, with :math:`w_k = x_{k+1} - x_k`, :math:`h_k = y_{k+1} - y_k`,
:math:`s_k = h_k / w_k` and :math:`ξ = (x - x_k) / w_k ∈ [0, 1]`:

.. math::

    g(x) = y_k + \frac{h_k \,[s_k ξ^2 + δ_k ξ(1-ξ)]}{s_k + (δ_{k+1} + δ_k - 2 s_k)\, ξ(1-ξ)},
    \qquad
    g'(x) = \frac{s_k^2\,[δ_{k+1} ξ^2 + 2 s_k ξ(1-ξ) + δ_k (1-ξ)^2]}
                 {[s_k + (δ_{k+1} + δ_k - 2 s_k)\, ξ(1-ξ)]^2}.

The inverse solves the quadratic :math:`a ξ^2 + b ξ + c = 0` for the bin found on the ``y`` knots, with
:math:`Δ = δ_{k+1} + δ_k - 2 s_k`, :math:`a = h_k (s_k - δ_k) + (y - y_k) Δ`, :math:`b = h_k δ_k - (y - y_k) Δ`,
:math:`c = -s_k (y - y_k)`, taking the root :math:`ξ = 2c / (-b - \sqrt{b^2 - 4ac})`, which has no
cancellation when :math:`a ≈ 0`.

Parameters come unconstrained from a network, ``3K - 1`` per entry (:func:`parameter_count`): ``K`` width
logits, ``K`` height logits and ``K - 1`` interior derivative pre-activations.
:func:`spline_knots` maps them to knots with every bin at least ``min_bin_width·2B`` wide and
``min_bin_height·2B`` high and every derivative at least ``min_derivative``; all-zero parameters give
equal bins and unit derivatives, i.e. the identity.

Float32 care: the outer knots are set to exactly :math:`±B` (no cumulative-sum drift), bins are located with
:func:`torch.searchsorted` on the interior knots (so :math:`x = B` lands in the last bin, not past it),
:math:`ξ` and the discriminant are clamped to their valid ranges, and the log-derivative is computed as a
sum of logs.

Example:
    >>> raw = torch.zeros(5, 3 * 4 - 1)                       # 4 bins, 5 entries
    >>> knots = spline_knots(raw, bound=2.0)
    >>> x = torch.linspace(-3, 3, 5)
    >>> y, log_d = rq_spline(x, knots)                         # zero parameters: y == x, log_d == 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def parameter_count(bins: int) -> int:
    """Unconstrained parameters per transformed entry for ``bins`` bins: ``3·bins − 1``."""
    return 3 * bins - 1


@dataclass(frozen=True)
class SplineKnots:
    """The knots of one spline per entry; every tensor has the entries' shape ``[...]`` plus a last
    dimension of ``K + 1`` (knots) — ``x``: abscissae, ``y``: ordinates, ``derivative``: :math:`δ_k`.
    ``bound`` is :math:`B`: ``x[..., 0] = y[..., 0] = −B`` and ``x[..., K] = y[..., K] = B``."""

    x: Tensor
    y: Tensor
    derivative: Tensor
    bound: float

    @property
    def bins(self) -> int:
        return self.x.shape[-1] - 1


def spline_knots(
    raw: Tensor,
    bound: float,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> SplineKnots:
    r"""Knots from unconstrained parameters ``raw`` of shape ``[..., 3K − 1]``.

    Widths (heights likewise): :math:`w = 2B\,[m + (1 - Km)\,\mathrm{softmax}(raw_w)]` with
    :math:`m` = ``min_bin_width``; interior derivatives:
    :math:`δ = m_δ + \mathrm{softplus}(raw_δ + c)` with :math:`c` chosen so that :math:`raw_δ = 0`
    gives :math:`δ = 1`.

    Raises:
        ValueError: ``raw``'s last dimension is not ``3K − 1`` for some ``K ≥ 1``, or the minima leave
            no room (``K·min_bin_width ≥ 1``, ``min_derivative ≥ 1``).
    """
    p = raw.shape[-1]
    if p < 2 or (p + 1) % 3:
        raise ValueError(f"spline parameters come in groups of 3K − 1 (K ≥ 1 bins), got {p}")
    bins = (p + 1) // 3
    if bins * min_bin_width >= 1 or bins * min_bin_height >= 1:
        raise ValueError(f"{bins} bins of minimum size {max(min_bin_width, min_bin_height)} exceed the interval")
    if not 0 < min_derivative < 1:
        raise ValueError(f"min_derivative must lie in (0, 1), got {min_derivative}")
    raw_w, raw_h, raw_d = raw[..., :bins], raw[..., bins : 2 * bins], raw[..., 2 * bins :]
    xs = _knot_positions(raw_w, bound, min_bin_width)
    ys = _knot_positions(raw_h, bound, min_bin_height)
    unit_shift = math.log(math.expm1(1.0 - min_derivative))  # softplus(unit_shift) = 1 − min_derivative
    inner = min_derivative + F.softplus(raw_d + unit_shift)
    ends = torch.ones_like(raw[..., :1])
    return SplineKnots(xs, ys, torch.cat([ends, inner, ends], dim=-1), float(bound))


def _knot_positions(logits: Tensor, bound: float, min_size: float) -> Tensor:
    """``K + 1`` increasing positions from ``−bound`` to exactly ``bound``."""
    bins = logits.shape[-1]
    sizes = min_size + (1 - min_size * bins) * torch.softmax(logits, dim=-1)
    cum = torch.cumsum(sizes, dim=-1)
    inner = 2 * bound * cum[..., :-1] - bound
    lo = torch.full_like(logits[..., :1], -bound)
    return torch.cat([lo, inner, -lo], dim=-1)


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    return t.gather(-1, idx).squeeze(-1)


def _locate(knots: Tensor, v: Tensor) -> Tensor:
    """Index ``[..., 1]`` of the bin that holds ``v`` (in ``[0, K − 1]``; ``v`` inside the bound)."""
    interior = knots[..., 1:-1].contiguous()
    return torch.searchsorted(interior, v.unsqueeze(-1).contiguous(), right=True)


@dataclass(frozen=True)
class _Bin:
    """The quantities of the bin each entry lies in (each shaped like the entries)."""

    x0: Tensor
    y0: Tensor
    width: Tensor
    height: Tensor
    slope: Tensor  # s_k = h_k / w_k
    d0: Tensor  # δ_k
    d1: Tensor  # δ_{k+1}

    @classmethod
    def at(cls, knots: SplineKnots, idx: Tensor) -> _Bin:
        x0, x1 = _gather(knots.x, idx), _gather(knots.x, idx + 1)
        y0, y1 = _gather(knots.y, idx), _gather(knots.y, idx + 1)
        width, height = x1 - x0, y1 - y0
        return cls(x0, y0, width, height, height / width,
                   _gather(knots.derivative, idx), _gather(knots.derivative, idx + 1))

    def denominator(self, xi: Tensor) -> Tensor:
        """:math:`s_k + (δ_{k+1} + δ_k - 2 s_k)\\, ξ(1-ξ)`, the rational function's denominator."""
        return self.slope + (self.d1 + self.d0 - 2 * self.slope) * xi * (1 - xi)

    def log_derivative(self, xi: Tensor) -> Tensor:
        """:math:`\\log g'` at relative position ``ξ``."""
        one_minus = 1 - xi
        denom = self.denominator(xi)
        numer = self.d1 * xi.square() + 2 * self.slope * xi * one_minus + self.d0 * one_minus.square()
        return 2 * torch.log(self.slope) + torch.log(numer) - 2 * torch.log(denom)


def _inside(v: Tensor, bound: float) -> Tensor:
    return (v >= -bound) & (v <= bound)


def rq_spline(x: Tensor, knots: SplineKnots) -> tuple[Tensor, Tensor]:
    r"""``(g(x), log g'(x))`` elementwise; ``x`` has the entries' shape ``[...]``.

    Outside :math:`[-B, B]` the map is the identity and the log-derivative is 0.
    """
    inside = _inside(x, knots.bound)
    xc = x.clamp(-knots.bound, knots.bound)
    b = _Bin.at(knots, _locate(knots.x, xc))
    xi = ((xc - b.x0) / b.width).clamp(0, 1)
    y = b.y0 + b.height * (b.slope * xi.square() + b.d0 * xi * (1 - xi)) / b.denominator(xi)
    log_d = b.log_derivative(xi)
    return torch.where(inside, y, x), torch.where(inside, log_d, torch.zeros_like(log_d))


def rq_spline_inverse(y: Tensor, knots: SplineKnots) -> tuple[Tensor, Tensor]:
    r"""``(g⁻¹(y), log (g⁻¹)'(y))`` elementwise; the log-derivative is :math:`-\log g'(g^{-1}(y))`."""
    inside = _inside(y, knots.bound)
    yc = y.clamp(-knots.bound, knots.bound)
    b = _Bin.at(knots, _locate(knots.y, yc))
    dy = yc - b.y0
    curvature = b.d1 + b.d0 - 2 * b.slope
    qa = b.height * (b.slope - b.d0) + dy * curvature
    qb = b.height * b.d0 - dy * curvature
    qc = -b.slope * dy
    disc = (qb.square() - 4 * qa * qc).clamp_min(0)
    xi = (2 * qc / (-qb - torch.sqrt(disc))).clamp(0, 1)
    x = b.x0 + xi * b.width
    log_d = -b.log_derivative(xi)
    return torch.where(inside, x, y), torch.where(inside, log_d, torch.zeros_like(log_d))


__all__ = [
    "DEFAULT_MIN_BIN_HEIGHT",
    "DEFAULT_MIN_BIN_WIDTH",
    "DEFAULT_MIN_DERIVATIVE",
    "SplineKnots",
    "parameter_count",
    "rq_spline",
    "rq_spline_inverse",
    "spline_knots",
]
