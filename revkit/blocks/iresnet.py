r"""Invertible residual block (i-ResNet, Behrmann et al., 2019; Residual Flows, Chen et al., 2019).

.. math:: F(x) = x + g(x), \qquad g = W_3 ∘ φ ∘ W_2 ∘ φ ∘ W_1,

with each :math:`W_i` spectrally normalised to operator norm :math:`≤ c < 1`
(:mod:`revkit.blocks.spectral`; for images the convolutions ``3×3 → 1×1 → 3×3`` with ``hidden``
channels inside, normalised as the linear maps they compute) and a 1-Lipschitz activation
:math:`φ` (ELU, :mod:`revkit.blocks.activations`, or LipSwish :math:`x\,σ(βx)/1.1`). Then :math:`\mathrm{Lip}(g) ≤ c^3 < 1`, so
:math:`F` is invertible and

* the **inverse** is the fixed point of :math:`x ← y - g(x)`, a contraction: starting from
  :math:`x_0 = y`, iterate per sample until the largest change is ``≤ inverse_tol`` or
  ``inverse_max_iter`` evaluations of :math:`g` were spent, by Anderson-accelerated iteration
  (``inverse_method = "anderson"``, the default) or the plain one (``"plain"``); see
  :mod:`revkit.blocks.fixed_point`. The iterations used and whether each sample converged
  are kept in :attr:`IResNet.last_inverse` (:class:`FixedPointStats`); in evaluation mode an
  unconverged sample raises an :class:`InverseNotConverged` warning naming the layer. The
  iterations are not differentiated: gradients flow through one final step :math:`y - g(x^*)`.
* the **log-det** :math:`\log|\det(I + J_g)|` is estimated (:mod:`revkit.blocks.logdet_estimators`):
  ``"series"`` (truncated power series, ``series_terms`` terms, Hutchinson probes),
  ``"roulette"`` (unbiased Russian roulette: ``series_terms`` terms always, then a geometric
  number more) or ``"exact"`` (brute-force Jacobian; small inputs). Hence ``exact_logdet = False``;
  :meth:`IResNet.exact_logdet_mode` switches to the brute-force Jacobian.

With ``actnorm = True`` an :class:`~revkit.blocks.actnorm.ActNorm` follows the residual map:
:math:`y = \mathrm{actnorm}(x + g(x))`, its exact log-det added.

With ``jacobian_penalty = γ > 0`` each training-mode forward pass records the penalty
(:mod:`revkit.penalties`)

.. math:: γ\,\frac{‖v^⊤ J_g(x)‖_2^2}{d}, \qquad v \sim \mathcal N(0, I), \qquad
          E_v = γ\,\frac{‖J_g(x)‖_F^2}{d} = γ\,\overline{σ^2},

averaged over the first ``jacobian_penalty_samples`` samples of the batch (0: all), :math:`d` the
per-sample dimension: the mean squared singular value of :math:`J_g`. The inverse's iteration is a
Krylov method on :math:`(I + J_g)x = y` (:mod:`revkit.blocks.fixed_point`), so shrinking
:math:`J_g`'s spectrum speeds it up (Bai et al., 2021, "Stabilizing Equilibrium Models by Jacobian
Regularization", for the same reason in deep equilibrium models); the price is some likelihood.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from revkit.blocks.actnorm import ActNorm
from revkit.blocks.activations import ELU
from revkit.blocks.fixed_point import FixedPointStats, SolverKind, solve_fixed_point
from revkit.blocks.logdet_estimators import (
    ProbeKind,
    draw_probe,
    exact_logdet,
    power_series_logdet,
    roulette_weights,
    series_bias_bound,
    series_weights,
)
from revkit.blocks.spectral import SpectralNormalized
from revkit.invertible import BlockParams, Invertible, Shape, numel, sum_except_batch

LogdetKind = Literal["series", "roulette", "exact"]


class IResNetParams(BlockParams):
    hidden: int = Field(64, gt=0, description="channels (features) inside g")
    coeff: float = Field(0.9, gt=0.0, lt=1.0, description="bound c < 1 on each layer's operator norm")
    activation: Literal["elu", "lipswish"] = Field("elu", description="the 1-Lipschitz nonlinearity φ")
    actnorm: bool = Field(False, description="follow the residual map with an actnorm")
    n_power_iterations: int = Field(5, ge=1, description="power iterations per pass for each spectral norm")
    inverse_tol: float = Field(1e-5, gt=0.0, description="fixed-point inverse: stop when max |Δx| ≤ this")
    inverse_max_iter: int = Field(100, ge=1, description="fixed-point inverse: iteration cap (evaluations of g)")
    inverse_method: SolverKind = Field("anderson", description="fixed-point inverse: 'anderson' (accelerated) or "
                                                               "'plain' (x ← y − g(x))")
    anderson_memory: int = Field(5, ge=1, description="fixed-point inverse: steps Anderson acceleration remembers")
    logdet: LogdetKind = Field("series", description="'series' (truncated), 'roulette' (unbiased) or 'exact'")
    series_terms: int = Field(5, ge=1, description="power-series terms (roulette: terms always computed)")
    eval_series_terms: int = Field(0, ge=0, description="terms in evaluation mode (0: series_terms)")
    probe: ProbeKind = Field("gaussian", description="Hutchinson probes: 'gaussian' or 'rademacher'")
    n_probes: int = Field(1, ge=1, description="Hutchinson probes per sample")
    neumann_gradient: bool = Field(False, description="differentiate the log-det via the Neumann series")
    roulette_p: float = Field(0.5, gt=0.0, lt=1.0, description="roulette: success probability of the geometric draw")
    jacobian_penalty: float = Field(0.0, ge=0.0, description="γ: add γ·‖J_g‖_F²/d (one Gaussian probe) to the "
                                                            "training loss, for a faster inverse (0: off)")
    jacobian_penalty_samples: int = Field(16, ge=0, description="samples of each batch the penalty is estimated "
                                                                "on (0: all)")


class InverseNotConverged(UserWarning):
    """A fixed-point inverse stopped at its iteration cap before reaching its tolerance."""


class LipSwish(nn.Module):
    r""":math:`φ(x) = x\,σ(βx)/1.1` with :math:`β = \mathrm{softplus}(b) > 0` learned; 1-Lipschitz
    (the derivative of :math:`x\,σ(βx)` never exceeds 1.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw_beta = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(F.softplus(self.raw_beta) * x) / 1.1


class IResNet(Invertible):
    r"""Invertible residual block :math:`y = x + g(x)` (see the module docstring).

    Args:
        input_shape: ``(C, H, W)`` or ``(D,)``.
        hidden, coeff, activation, actnorm, n_power_iterations, inverse_tol, inverse_max_iter,
            inverse_method, anderson_memory, logdet, series_terms, eval_series_terms, probe, n_probes, neumann_gradient,
            roulette_p, jacobian_penalty, jacobian_penalty_samples: see :class:`IResNetParams`.

    Example:
        >>> block = IResNet((2, 8, 8), hidden=16, coeff=0.9)
        >>> y, logdet = block(torch.randn(4, 2, 8, 8))       # logdet: a stochastic estimate, [4]
        >>> x, _ = block.eval().inverse(y)                   # fixed point; block.last_inverse says how
    """

    Params = IResNetParams
    exact_logdet = False
    analytic_inverse = False
    supported_ranks = (1, 3)
    block_name = "iresnet"
    #: the conformance kit's finite-difference tolerance: the spectral norms' backward holds the
    #: power iteration's vector constant, exact only once that iteration has converged.
    gradient_rtol = 1e-2

    def __init__(
        self,
        input_shape: Shape,
        *,
        hidden: int = 64,
        coeff: float = 0.9,
        activation: Literal["elu", "lipswish"] = "elu",
        actnorm: bool = False,
        n_power_iterations: int = 5,
        inverse_tol: float = 1e-5,
        inverse_max_iter: int = 100,
        inverse_method: SolverKind = "anderson",
        anderson_memory: int = 5,
        logdet: LogdetKind = "series",
        series_terms: int = 5,
        eval_series_terms: int = 0,
        probe: ProbeKind = "gaussian",
        n_probes: int = 1,
        neumann_gradient: bool = False,
        roulette_p: float = 0.5,
        jacobian_penalty: float = 0.0,
        jacobian_penalty_samples: int = 16,
    ):
        super().__init__(input_shape, rank_hint="put a flatten or reshape before it")
        IResNetParams(hidden=hidden, coeff=coeff, activation=activation, actnorm=actnorm,
                      n_power_iterations=n_power_iterations, inverse_tol=inverse_tol,
                      inverse_max_iter=inverse_max_iter, inverse_method=inverse_method,
                      anderson_memory=anderson_memory, logdet=logdet, series_terms=series_terms,
                      eval_series_terms=eval_series_terms, probe=probe, n_probes=n_probes,
                      neumann_gradient=neumann_gradient, roulette_p=roulette_p,
                      jacobian_penalty=jacobian_penalty, jacobian_penalty_samples=jacobian_penalty_samples)
        self.hidden, self.coeff = int(hidden), float(coeff)
        self.inverse_tol, self.inverse_max_iter = float(inverse_tol), int(inverse_max_iter)
        self.inverse_method: SolverKind = inverse_method
        self.anderson_memory = int(anderson_memory)
        self.logdet_kind: LogdetKind = logdet
        self.series_terms, self.eval_series_terms = int(series_terms), int(eval_series_terms)
        self.probe: ProbeKind = probe
        self.n_probes, self.neumann_gradient, self.roulette_p = int(n_probes), bool(neumann_gradient), float(roulette_p)
        self.jacobian_penalty, self.jacobian_penalty_samples = float(jacobian_penalty), int(jacobian_penalty_samples)
        self.layers = nn.ModuleList(_residual_layers(self.input_shape, self.hidden, self.coeff, n_power_iterations))
        self.acts = nn.ModuleList(LipSwish() if activation == "lipswish" else ELU() for _ in range(2))
        self.norm = ActNorm(self.input_shape) if actnorm else None
        #: what the last inverse did (None before the first).
        self.last_inverse: FixedPointStats | None = None
        #: how warnings name this block; :class:`~revkit.Flow` sets it to the module's path.
        self.layer_name = "iresnet"
        #: return NaN log-dets without estimating them (for callers that use only the outputs,
        #: see :func:`revkit.objectives.classifier.skipping_logdet_estimates`).
        self.skip_logdet = False
        self._exact = False

    # -- g ------------------------------------------------------------------------------------
    def weights(self) -> list[Tensor]:
        """The spectrally normalised weights, computed once per pass."""
        return [layer.weight() for layer in self.layers]

    def g(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        """The residual branch ``g(x)`` with the given normalised weights; same shape as ``x``."""
        h = x
        for i, layer in enumerate(self.layers):
            h = layer.apply(h, weights[i])
            if i < len(self.acts):
                h = self.acts[i](h)
        return h

    def jacobian_frobenius(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        r"""One-probe estimate of :math:`‖J_g‖_F^2/d`, averaged over the first
        ``jacobian_penalty_samples`` samples of ``x``: :math:`‖v^⊤ J_g‖^2/d` with
        :math:`v \sim \mathcal N(0, I)`; differentiable in the weights (a scalar)."""
        n = self.jacobian_penalty_samples or x.shape[0]
        xs = x[:n].detach().requires_grad_(True)
        with torch.enable_grad():
            gx = self.g(xs, weights)
            (w,) = torch.autograd.grad(gx, xs, draw_probe(gx, "gaussian"), create_graph=True)
        return sum_except_batch(w * w).mean() / numel(self.input_shape)

    def lipschitz_bound(self) -> float:
        r"""The estimated bound :math:`\prod_i \min(\hat σ_i, c)` on :math:`\mathrm{Lip}(g)`."""
        with torch.no_grad():
            return math.prod(min(float(layer.sigma(store=False)), self.coeff) for layer in self.layers)

    # -- the contract -------------------------------------------------------------------------
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        weights = self.weights()
        y, logdet = self._residual(x, weights)
        if self.jacobian_penalty > 0 and self.training and torch.is_grad_enabled():
            self.penalty = self.jacobian_penalty * self.jacobian_frobenius(x, weights)
        if self.norm is not None:
            y, ld = self.norm(y)
            logdet = logdet + ld
        return y, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = self.zero_logdet(y)
        if self.norm is not None:
            y, logdet = self.norm.inverse(y)
        weights = self.weights()
        x = self.fixed_point(y, weights)
        if torch.is_grad_enabled():  # one differentiable step from the fixed point
            x = y - self.g(x, weights)
        _, ld = self._residual(x, weights)
        return x, logdet - ld

    def fixed_point(self, y: Tensor, weights: list[Tensor]) -> Tensor:
        """Solve ``x + g(x) = y``, i.e. ``x = y − g(x)``, from ``x = y`` with ``inverse_method``
        (:func:`~revkit.blocks.fixed_point.solve_fixed_point`), each sample until its residual
        ``max |y − g(x) − x|`` is ``≤ inverse_tol`` (then frozen) or for ``inverse_max_iter``
        evaluations of ``g``; records :attr:`last_inverse` and warns (eval mode) about samples that
        did not converge."""
        y = y.detach()
        weights = [w.detach() for w in weights]
        x, stats = solve_fixed_point(lambda v: y - self.g(v, weights), y, tol=self.inverse_tol,
                                     max_iter=self.inverse_max_iter, method=self.inverse_method,
                                     memory=self.anderson_memory)
        self.last_inverse = stats
        if not self.training and not stats.all_converged:
            unconverged = int((~stats.converged).sum())
            warnings.warn(
                f"{self.layer_name}: the fixed-point inverse did not converge for {unconverged} of {y.shape[0]} "
                f"samples in inverse_max_iter = {self.inverse_max_iter} iterations (largest last change "
                f"{stats.max_change:.3g} > inverse_tol = {self.inverse_tol:g}); raise inverse_max_iter or "
                "lower coeff", InverseNotConverged, stacklevel=2)
        return x

    def describe(self) -> str:
        return f"IResNet({self.hidden})"

    # -- the log-det ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def exact_logdet_mode(self) -> Iterator[None]:
        """Within it, the log-det is the brute-force :func:`exact_logdet` (small inputs only)."""
        previous, self._exact = self._exact, True
        try:
            yield
        finally:
            self._exact = previous

    @property
    def terms(self) -> int:
        """Power-series terms of the current mode."""
        return self.eval_series_terms if (not self.training and self.eval_series_terms) else self.series_terms

    def logdet_bias_bound(self, x: Tensor) -> Tensor:
        """Per-sample bound ``[B]`` on ``|E[logdet] − log|det J||`` of the current mode: the
        truncation bound for ``"series"`` (:func:`series_bias_bound` with :meth:`lipschitz_bound`),
        0 for ``"roulette"`` (unbiased) and ``"exact"``."""
        bound = 0.0
        if self.logdet_kind == "series" and not self._exact:
            bound = series_bias_bound(numel(self.input_shape), self.lipschitz_bound(), self.terms)
        return x.new_full((x.shape[0],), bound)

    def _residual(self, x: Tensor, weights: list[Tensor]) -> tuple[Tensor, Tensor]:
        """``(x + g(x), log|det(I + J_g(x))|)`` with the log-det of the current mode."""
        if self.skip_logdet and not self._exact:
            return x + self.g(x, weights), torch.full_like(self.zero_logdet(x), float("nan"))
        if self._exact or self.logdet_kind == "exact":
            return x + self.g(x, weights), exact_logdet(lambda v: self.g(v, weights), x)
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            xin = x if x.requires_grad else x.detach().requires_grad_(True)
            gx = self.g(xin, weights)
            if self.logdet_kind == "roulette":
                coefficients = roulette_weights(self.terms, self.roulette_p)
            else:
                coefficients = series_weights(self.terms)
            probes = [draw_probe(x, self.probe) for _ in range(self.n_probes)]
            logdet = power_series_logdet(gx, xin, coefficients, probes, create_graph=differentiable,
                                         neumann_gradient=self.neumann_gradient)
        if not differentiable:
            return x + gx.detach(), logdet.detach()
        return x + gx, logdet


def _residual_layers(shape: Shape, hidden: int, coeff: float, iterations: int) -> list[SpectralNormalized]:
    """``W1, W2, W3`` of ``g``: convolutions ``3×3 (C→h), 1×1 (h→h), 3×3 (h→C)`` for images,
    linear layers ``D→h→h→D`` for vectors, each spectrally normalised on its input shape."""
    if len(shape) == 3:
        c, h, w = shape
        layers: list[tuple[nn.Linear | nn.Conv2d, Shape]] = [
            (nn.Conv2d(c, hidden, 3, padding=1), (c, h, w)),
            (nn.Conv2d(hidden, hidden, 1), (hidden, h, w)),
            (nn.Conv2d(hidden, c, 3, padding=1), (hidden, h, w)),
        ]
    else:
        d = shape[0]
        layers = [(nn.Linear(d, hidden), (d,)), (nn.Linear(hidden, hidden), (hidden,)), (nn.Linear(hidden, d), (hidden,))]
    return [SpectralNormalized(layer, s, coeff, iterations) for layer, s in layers]


__all__ = ["FixedPointStats", "IResNet", "IResNetParams", "InverseNotConverged", "LipSwish"]
