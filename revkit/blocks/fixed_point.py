r"""Solvers for :math:`x = G(x)` with :math:`G` a contraction, batched per sample.

An invertible residual block :math:`y = x + g(x)` with :math:`\mathrm{Lip}(g) < 1` is inverted by
finding the fixed point of :math:`G(x) = y - g(x)` (:mod:`revkit.blocks.iresnet`). Two solvers, both
counting *iterations* as evaluations of :math:`G` (one pass of :math:`g` each), both starting from a
given :math:`x_0` and both returning :math:`G(x_k)` at the first :math:`x_k` whose residual
:math:`r_k = \|G(x_k) - x_k\|_∞` is ``≤ tol`` (per sample: a converged sample is frozen while the
rest of the batch goes on) or after ``max_iter`` evaluations:

* ``"plain"`` — Banach iteration :math:`x_{k+1} = G(x_k)`. The error falls by the contraction factor
  per step, which for a trained block is close to its Lipschitz bound (:math:`c^3 ≈ 0.73` at
  :math:`c = 0.9`): about 25–35 iterations from an error of order 1 to 1e-5.
* ``"anderson"`` — Anderson acceleration (type II, Walker & Ni 2011) with the last ``memory``
  steps: with :math:`ΔF, ΔG` the differences of the stored residuals :math:`f_i = G(x_i) - x_i` and
  values :math:`G(x_i)`,

  .. math:: γ = \arg\min_γ \|f_k - ΔF\,γ\|_2, \qquad x_{k+1} = G(x_k) - ΔG\,γ,

  solved per sample in float64 with a small Tikhonov term. On a linear map it is a Krylov method
  (GMRES on :math:`(I + J_g)x = y` while the memory lasts), so its rate depends on the spread of
  :math:`J_g`'s spectrum rather than its radius alone; on trained MNIST blocks it needs 40–60% fewer
  iterations than ``"plain"`` (``bench/iresnet_inverse.py``). A sample whose residual grows drops its
  history and takes a plain step (a restart), which keeps the iteration safe far from the solution.

Returned with :class:`FixedPointStats`: per-sample iterations and convergence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

SolverKind = Literal["plain", "anderson"]


@dataclass
class FixedPointStats:
    """What a fixed-point solve did: per sample ``iterations`` ``[B]`` (evaluations of ``G``) and
    ``converged`` ``[B]``; ``max_change`` is the largest last residual ``‖G(x) − x‖_∞`` over the batch."""

    iterations: Tensor
    converged: Tensor
    max_change: float
    tol: float
    max_iter: int

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())


def solve_fixed_point(
    step: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    tol: float,
    max_iter: int,
    method: SolverKind = "anderson",
    memory: int = 5,
) -> tuple[Tensor, FixedPointStats]:
    """Solve ``x = step(x)`` from ``x0`` ``[B, ...]`` per sample (see the module docstring).

    ``step`` must act on each sample independently. Returns ``(step(x_k) [B, ...], stats)``; no
    autograd graph is recorded.
    """
    if method not in ("plain", "anderson"):
        raise ValueError(f"unknown fixed-point method {method!r}; choose 'plain' or 'anderson'")
    with torch.no_grad():
        if method == "plain" or memory < 1:
            return _plain(step, x0.detach(), tol, max_iter)
        return _anderson(step, x0.detach(), tol, max_iter, memory)


def _residual(gx: Tensor, x: Tensor) -> Tensor:
    return (gx - x).abs().reshape(x.shape[0], -1).amax(dim=1)


def _unconverged(residual: Tensor, tol: float) -> Tensor:
    """``residual > tol`` per sample, with a NaN residual counted as not converged."""
    return ~(residual <= tol)


def _stats(iterations: Tensor, active: Tensor, change: Tensor, tol: float, max_iter: int) -> FixedPointStats:
    return FixedPointStats(iterations, ~active, float(change.max()) if change.numel() else 0.0, tol, max_iter)


def _plain(step: Callable[[Tensor], Tensor], x: Tensor, tol: float, max_iter: int) -> tuple[Tensor, FixedPointStats]:
    b = x.shape[0]
    mask_shape = (b,) + (1,) * (x.dim() - 1)
    iterations = torch.zeros(b, dtype=torch.long, device=x.device)
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    change = torch.zeros(b, dtype=x.dtype, device=x.device)
    for _ in range(max_iter):
        new = step(x)
        residual = _residual(new, x)
        change = torch.where(active, residual, change)
        x = torch.where(active.view(mask_shape), new, x)
        iterations += active.long()
        active = active & _unconverged(residual, tol)
        if not bool(active.any()):
            break
    return x, _stats(iterations, active, change, tol, max_iter)


def _anderson(
    step: Callable[[Tensor], Tensor], x: Tensor, tol: float, max_iter: int, memory: int
) -> tuple[Tensor, FixedPointStats]:
    b, shape = x.shape[0], x.shape
    column = (b, 1)
    gx = step(x)
    f = (gx - x).reshape(b, -1)
    change = f.abs().amax(dim=1)
    iterations = torch.ones(b, dtype=torch.long, device=x.device)
    active = _unconverged(change, tol)
    solution = gx.clone()
    # history of differences ΔF (residuals) and ΔG (values), [B, D] each, oldest first
    delta_f: list[Tensor] = []
    delta_g: list[Tensor] = []
    for _ in range(max_iter - 1):
        if not bool(active.any()):
            break
        g_flat = gx.reshape(b, -1)
        if delta_f:
            dF = torch.stack(delta_f, dim=2).double()  # [B, D, m]
            dG = torch.stack(delta_g, dim=2).double()
            gram = dF.transpose(1, 2) @ dF  # [B, m, m]
            # a sample whose history was all reset (a restart) has a zero Gram matrix: the floor keeps
            # the ridge a normal float (1e-10 · 1e-300 would be subnormal, the solve would give NaN),
            # so its γ is 0 and its step is plain
            scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-30)
            eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
            gram = gram + (1e-10 * scale)[:, None, None] * eye
            gamma = torch.linalg.solve(gram, dF.transpose(1, 2) @ f.double().unsqueeze(2))
            candidate = (g_flat.double() - (dG @ gamma).squeeze(2)).to(x.dtype)
        else:
            candidate = g_flat
        x_new = torch.where(active.view(column), candidate, x.reshape(b, -1)).reshape(shape)
        g_new = step(x_new)
        f_new = (g_new - x_new).reshape(b, -1)
        iterations += active.long()
        residual = f_new.abs().amax(dim=1)
        # a sample whose residual grew forgets its history (its next step is plain)
        grew = (f_new.norm(dim=1) > f.norm(dim=1)) & active
        keep = (~grew).to(x.dtype).view(column)
        delta_f = [d * keep for d in delta_f]
        delta_g = [d * keep for d in delta_g]
        live = (active & ~grew).to(x.dtype).view(column)
        delta_f.append((f_new - f) * live)
        delta_g.append((g_new.reshape(b, -1) - g_flat) * live)
        if len(delta_f) > memory:
            delta_f.pop(0)
            delta_g.pop(0)
        moving = active.view((b,) + (1,) * (x.dim() - 1))
        x = torch.where(moving, x_new, x)
        gx = torch.where(moving, g_new, gx)
        f = torch.where(active.view(column), f_new, f)
        change = torch.where(active, residual, change)
        solution = torch.where(moving, g_new, solution)
        active = active & _unconverged(residual, tol)
    return solution, _stats(iterations, active, change, tol, max_iter)


__all__ = ["FixedPointStats", "SolverKind", "solve_fixed_point"]
