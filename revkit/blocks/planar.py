r"""The planar flow of Rezende & Mohamed (2015), "Variational Inference with Normalizing Flows".

On vectors :math:`z \in \mathbb R^D`, with parameters :math:`u, w \in \mathbb R^D`, :math:`b \in \mathbb R`:

.. math::

    f(z) = z + \hat u \tanh(w^\top z + b), \qquad
    \log\left|\det \frac{∂f}{∂z}\right| = \log\left|1 + \hat u^\top ψ(z)\right|,
    \quad ψ(z) = \tanh'(w^\top z + b)\, w .

**Invertibility.** :math:`f` is invertible iff :math:`w^\top \hat u \ge -1`. The free parameter
:math:`u` is mapped to

.. math:: \hat u = u + \big(m(w^\top u) - w^\top u\big) \frac{w}{\lVert w\rVert^2},
          \qquad m(a) = -1 + \operatorname{softplus}(a),

so :math:`w^\top \hat u = m(w^\top u) > -1` for every :math:`u` (and :math:`\hat u = u` up to a
small change where :math:`w^\top u` is large and positive). Then
:math:`1 + \hat u^\top ψ = 1 + \tanh'(\cdot)\, w^\top \hat u > 0`. In floating point softplus
underflows for very negative arguments, so the block floors it at ``MIN_SLOPE`` (:math:`m \ge -1 +
10^{-4}`, hence :math:`1 + \hat u^\top ψ \ge 10^{-4}`) and uses :math:`m` itself, not the rounded
:math:`w^\top \hat u`, in the log-det and the inverse.

**Inverse** (no closed form). Write :math:`α = w^\top z`. Projecting :math:`y = f(z)` on :math:`w`
gives the scalar equation

.. math:: w^\top y = g(α) := α + (w^\top \hat u) \tanh(α + b),

whose left side is known and whose :math:`g` is strictly increasing (:math:`g' = 1 + w^\top \hat u
\tanh' > 0`). Its root lies in :math:`[w^\top y - |w^\top\hat u|,\ w^\top y + |w^\top\hat u|]`
(because :math:`|\tanh| < 1`), so bisection on that bracket, in float64, finds it to rounding
error; then :math:`z = y - \hat u \tanh(α + b)`. The inverse's log-det is minus the forward
log-det at that :math:`z`.

**Context** (``context_size = K > 0``): :math:`u, w, b` become amortised, per sample,
:math:`(u, w, b) = (u_0, w_0, b_0) + A c` with a linear map :math:`A` of the context ``c [B, K]``
that starts at zero (as in Sylvester / amortised planar flows), so a VAE's encoder can steer each
sample's flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import RevkitError
from revkit.invertible import BlockParams, Invertible, Shape

#: floor of softplus(wᵀu) in m(wᵀu) = −1 + softplus(wᵀu): keeps 1 + ûᵀψ ≥ MIN_SLOPE after rounding.
MIN_SLOPE = 1e-4
#: bisection steps of the inverse; each halves the bracket of width ``2·|wᵀû|`` (float64).
BISECTION_STEPS = 80


class PlanarParams(BlockParams):
    init_scale: float = Field(
        0.1, gt=0.0, le=1.0,
        description="standard deviation of the initial u and w (times 1/sqrt(D) for w)",
    )


class Planar(Invertible):
    r"""Planar flow :math:`f(z) = z + \hat u \tanh(w^\top z + b)` on vectors ``(D,)``.

    ``forward(z) -> (f(z), log|1 + ûᵀψ(z)|)``; ``inverse`` solves the scalar monotone equation for
    :math:`w^\top z` by bisection (see the module docstring), so it is accurate to float64 rounding
    but not closed-form (``analytic_inverse = False``).

    Args:
        input_shape: ``(D,)``.
        init_scale: standard deviation of the initial ``u`` (and ``init_scale/sqrt(D)`` for ``w``).
        context_size: size ``K`` of an optional context ``[B, K]`` that shifts ``u, w, b`` per sample.

    Example:
        >>> block = Planar((3,))
        >>> z = torch.randn(4, 3)
        >>> y, logdet = block(z)
        >>> torch.allclose(block.inverse(y)[0], z, atol=1e-5)
        True
    """

    Params = PlanarParams
    analytic_inverse = False
    conditional = True
    supported_ranks = (1,)
    block_name = "planar"

    def __init__(self, input_shape: Shape, *, init_scale: float = 0.1, context_size: int = 0):
        super().__init__(input_shape, rank_hint="put a flatten before it")
        d = self.input_shape[0]
        self.context_size = int(context_size)
        self.u = nn.Parameter(torch.randn(d) * init_scale)
        self.w = nn.Parameter(torch.randn(d) * init_scale / math.sqrt(d))
        self.b = nn.Parameter(torch.zeros(()))
        self.amortize: nn.Linear | None = None
        if self.context_size:
            self.amortize = nn.Linear(self.context_size, 2 * d + 1)
            nn.init.zeros_(self.amortize.weight)
            nn.init.zeros_(self.amortize.bias)

    # -- parameters ---------------------------------------------------------------------------
    def parameters_for(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(û [B, D], w [B, D], b [B], m [B])`` for a batch, with ``m = wᵀû ≥ −1 + MIN_SLOPE`` per
        sample (``m`` exactly, where the dot product of the returned ``û`` and ``w`` is rounded)."""
        n, d = x.shape[0], self.input_shape[0]
        u = self.u.expand(n, d)
        w = self.w.expand(n, d)
        b = self.b.expand(n)
        if self.amortize is not None:
            if context is None or tuple(context.shape) != (n, self.context_size):
                got = None if context is None else tuple(context.shape)
                raise RevkitError(f"planar was built with context_size={self.context_size}: pass a context of "
                                  f"shape {(n, self.context_size)}, got {got}")
            shift = self.amortize(context.to(x.dtype))
            u, w, b = u + shift[:, :d], w + shift[:, d : 2 * d], b + shift[:, 2 * d]
        wu = (w * u).sum(dim=1, keepdim=True)
        w_norm2 = (w * w).sum(dim=1, keepdim=True).clamp_min(1e-12)
        m = F.softplus(wu).clamp_min(MIN_SLOPE) - 1.0
        u_hat = u + (m - wu) * w / w_norm2
        return u_hat, w, b, m[:, 0]

    # -- the map ------------------------------------------------------------------------------
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u_hat, w, b, m = self.parameters_for(x, context)
        return self._map(x, u_hat, w, b, m)

    @staticmethod
    def _map(z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        a = (w * z).sum(dim=1) + b
        h = torch.tanh(a)
        dh = 1.0 - h * h  # tanh'(a)
        return z + u_hat * h[:, None], torch.log(torch.abs(1.0 + dh * m))

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u_hat, w, b, m = self.parameters_for(y, context)
        alpha = self._solve_alpha(y, w, b, m)
        # z from the root; with gradients on, α carries the implicit-function gradient (_solve_alpha)
        z = y - u_hat * torch.tanh(alpha + b)[:, None]
        _, logdet = self._map(z, u_hat, w, b, m)
        return z, -logdet

    @staticmethod
    def _solve_alpha(y: Tensor, w: Tensor, b: Tensor, m: Tensor) -> Tensor:
        r"""The root :math:`α` of :math:`α + m\tanh(α + b) = w^\top y` (:math:`m = w^\top\hat u`), per sample
        ``[B]``, by float64 bisection on the bracket :math:`w^\top y ± |m|`."""
        with torch.no_grad():
            wy = (w * y).sum(dim=1).double()
            wu = m.double()
            bb = b.double()
            lo, hi = wy - wu.abs(), wy + wu.abs()
            for _ in range(BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                above = mid + wu * torch.tanh(mid + bb) > wy
                hi = torch.where(above, mid, hi)
                lo = torch.where(above, lo, mid)
            alpha = 0.5 * (lo + hi)
        if torch.is_grad_enabled() and (y.requires_grad or m.requires_grad):
            # one Newton step with the graph attached: the value stays the root (to rounding), and
            # dα/d(y, û, w, b) follow the implicit function theorem
            a = alpha.to(y.dtype)
            wy_t = (w * y).sum(dim=1)
            wu_t = m
            g = a + wu_t * torch.tanh(a + b) - wy_t
            dg = 1.0 + wu_t * (1.0 - torch.tanh(a + b) ** 2)
            return a - g / dg
        return alpha.to(y.dtype)

    def describe(self) -> str:
        return "Planar" + ("(amortised)" if self.amortize is not None else "")
