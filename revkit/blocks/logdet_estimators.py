r"""Log-determinants of residual maps :math:`F(x) = x + g(x)` with :math:`\mathrm{Lip}(g) < 1`.

Because :math:`‖J_g‖ < 1`, the matrix logarithm series converges (Behrmann et al., 2019):

.. math:: \log|\det(I + J_g)| = \operatorname{tr}\log(I + J_g)
          = \sum_{k=1}^{∞} \frac{(-1)^{k+1}}{k} \operatorname{tr}(J_g^k).

Each trace is estimated with Hutchinson's estimator :math:`\operatorname{tr}(A) = E[v^⊤ A v]` for
probes :math:`v` with :math:`E[vv^⊤] = I` (Gaussian or Rademacher), using vector–Jacobian products
:math:`w_k^⊤ = v^⊤ J_g^k` (one backward pass each) and :math:`\operatorname{tr}(J_g^k) ≈ w_k^⊤ v`.

* **Truncated power series** (:func:`series_weights`): the first :math:`n` terms. Biased; with
  :math:`L = \mathrm{Lip}(g)` and :math:`d` dimensions the truncation error is at most
  :func:`series_bias_bound` :math:`= d\,L^{n+1} / ((n+1)(1-L))`.
* **Russian roulette** (:func:`roulette_weights`, Chen et al., 2019): draw
  :math:`N = m + G` with :math:`G \sim \mathrm{Geometric}(p)` (failures before the first success,
  :math:`P(G ≥ j) = (1-p)^j`) and weight term :math:`k` by :math:`1/P(N ≥ k)`; then
  :math:`E[\sum_{k ≤ N} a_k / P(N≥k)] = \sum_k a_k`, an unbiased estimate.
* **Neumann-series gradient** (Chen et al., 2019): instead of back-propagating through all the
  vector–Jacobian products, use :math:`∂_θ \log\det(I+J_g) = \operatorname{tr}((I+J_g)^{-1} ∂_θ J_g)
  = \sum_{k≥0} (-1)^k \operatorname{tr}(J_g^k ∂_θ J_g)`, estimated with the same weights through the
  surrogate :math:`a^⊤ J_g v` where :math:`a^⊤ = \sum_{k=0}^{n-1} (-1)^k w_{k+1} v^⊤ J_g^k` is held
  constant: one differentiable backward pass instead of :math:`n`.
* **Exact** (:func:`exact_logdet`): the full Jacobian per sample (``torch.func``) and ``slogdet``:
  :math:`O(d)` backward passes and :math:`O(d^3)`, for small inputs and tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from revkit.invertible import sum_except_batch

ProbeKind = Literal["gaussian", "rademacher"]


def draw_probe(like: Tensor, kind: ProbeKind) -> Tensor:
    """A probe ``v`` shaped like ``like`` with ``E[v vᵀ] = I``: standard normal or ±1 entries."""
    if kind == "gaussian":
        return torch.randn_like(like)
    if kind == "rademacher":
        return torch.randint(0, 2, like.shape, device=like.device).to(like.dtype).mul_(2).sub_(1)
    raise ValueError(f"probe must be 'gaussian' or 'rademacher', got {kind!r}")


def series_weights(terms: int) -> list[float]:
    """Weights of the truncated power series: ``terms`` ones."""
    return [1.0] * int(terms)


def roulette_weights(exact_terms: int, p: float) -> list[float]:
    r"""Weights :math:`1/P(N ≥ k)`, :math:`k = 1…N`, for one draw :math:`N = m + G` of the
    Russian-roulette length (``m = exact_terms``, :math:`G \sim \mathrm{Geometric}(p)` from torch's
    global generator)."""
    extra = int(torch.distributions.Geometric(probs=torch.tensor(float(p))).sample())
    return [1.0] * int(exact_terms) + [(1.0 - p) ** -j for j in range(1, extra + 1)]


def series_bias_bound(dims: int, lip: float, terms: int) -> float:
    r"""Bound on the truncation error of ``terms`` terms: :math:`d L^{n+1}/((n+1)(1-L))`
    (:math:`|\operatorname{tr}(J^k)| ≤ d‖J‖^k`); infinite when :math:`L ≥ 1`."""
    if lip >= 1.0:
        return math.inf
    return dims * lip ** (terms + 1) / ((terms + 1) * (1.0 - lip))


def _vjp(gx: Tensor, x: Tensor, w: Tensor, create_graph: bool) -> Tensor:
    """``wᵀ J_g`` at ``x`` (``gx = g(x)``), keeping the graph of ``gx`` for further products."""
    (out,) = torch.autograd.grad(gx, x, w, create_graph=create_graph, retain_graph=True)
    return out


def power_series_logdet(
    gx: Tensor,
    x: Tensor,
    weights: list[float],
    probes: list[Tensor],
    *,
    create_graph: bool,
    neumann_gradient: bool = False,
) -> Tensor:
    r"""Hutchinson estimate of :math:`\sum_{k=1}^{n} \frac{(-1)^{k+1}}{k} w_k \operatorname{tr}(J_g^k)`
    per sample, ``[B]``, averaged over ``probes``.

    Args:
        gx: ``g(x)`` with its graph; ``x`` must require grad.
        weights: :math:`w_1 … w_n` (:func:`series_weights` or :func:`roulette_weights`).
        probes: tensors shaped like ``x``.
        create_graph: make the estimate differentiable (training).
        neumann_gradient: with ``create_graph``, differentiate through the Neumann surrogate (one
            differentiable backward pass) instead of through every product.
    """
    n = len(weights)
    total = gx.new_zeros(gx.shape[0])
    for v in probes:
        w, estimate = v, gx.new_zeros(gx.shape[0])
        neumann = v * weights[0] if neumann_gradient else None
        for k in range(1, n + 1):
            w = _vjp(gx, x, w, create_graph and not neumann_gradient)  # vᵀ J^k
            estimate = estimate + ((-1) ** (k + 1) / k * weights[k - 1]) * sum_except_batch(w * v)
            if neumann is not None and k < n:
                neumann = neumann + ((-1) ** k * weights[k]) * w
        if neumann is not None and create_graph:
            surrogate = sum_except_batch(_vjp(gx, x, neumann.detach(), True) * v)
            estimate = estimate.detach() + surrogate - surrogate.detach()
        total = total + estimate
    return total / len(probes)


def exact_logdet(g: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    r""":math:`\log|\det(I + J_g(x_i))|` per sample, ``[B]``, from the full Jacobian.

    ``g`` maps a batch ``[b, *shape]`` to ``[b, *shape]`` sample by sample. Differentiable in
    whatever ``g`` closes over (weights), so it can be trained on small inputs.
    """
    shape, b = x.shape[1:], x.shape[0]
    d = int(math.prod(shape))

    def flat(v: Tensor) -> Tensor:
        return g(v.reshape(1, *shape)).reshape(-1)

    jac = torch.func.vmap(torch.func.jacrev(flat))(x.reshape(b, d))
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    return torch.linalg.slogdet(eye + jac)[1]


__all__ = [
    "ProbeKind",
    "draw_probe",
    "exact_logdet",
    "power_series_logdet",
    "roulette_weights",
    "series_bias_bound",
    "series_weights",
]
