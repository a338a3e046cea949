r"""Gradients checked against central finite differences in float64: the only ground truth for a graph.

Autograd compared with autograd proves nothing about a wrong graph (a ``.detach()``, a custom
:class:`torch.autograd.Function` with a wrong backward): both sides share it. This module compares
autograd's gradient of a random scalar functional of a block's outputs with central differences
of the *values*, which never touch the graph.

For a direction (``forward``: :math:`y, \ell = f(x; θ, c)`; ``inverse``: :math:`x, \ell = f^{-1}(y; θ, c)`)
the functional is

.. math:: L(u, c, θ) = \sum w ⊙ \mathrm{out}(u) + \sum_i v_i\,\ell_i(u),

with fixed standard-normal weights ``w`` (shaped like the output) and ``v`` (``[batch]``), so every
output entry and every log-det counts. For each *leaf* :math:`q` (the input, the context, each
trainable parameter tensor) and each unit direction :math:`d` of that leaf, the directional
derivative :math:`∇_q L · d` from autograd must match

.. math:: \frac{L(q + h d) - L(q - h d)}{2h}

within ``rtol`` of :math:`\max(|∇_q L|, |∇_q L·d|, |\mathrm{fd}|)` plus the round-off of the
difference quotient, :math:`10^3 ε_{64} \sum|\text{terms of } L| / h`. The directions are
:math:`∇_q L / |∇_q L|` (so a gradient off by a factor is caught whatever its direction) and
``random_directions`` standard-normal ones (so a gradient that misses a component is caught). A
mismatch is retried with ``h / 100`` before it fails, since a difference across a kink of a ReLU
is not a gradient error; a wrong gradient does not go away with a smaller step. Cost: two
evaluations of the block per leaf and direction, far below a full ``gradcheck``'s two per
parameter *entry*.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from revkit.invertible import Invertible

#: central-difference step (directions have unit norm) and the fallback step of a retry.
STEP = 1e-5
RETRY_STEP = 1e-7
#: relative tolerance of a directional derivative.
RTOL = 1e-5


@dataclass(frozen=True)
class Mismatch:
    """One directional derivative where autograd and finite differences disagree."""

    leaf: str
    direction: str
    autograd: float
    finite_difference: float
    tolerance: float

    def __str__(self) -> str:
        return (f"∂L/∂{self.leaf} · d ({self.direction} direction): autograd {self.autograd:.6g}, "
                f"finite differences {self.finite_difference:.6g} (|difference| "
                f"{abs(self.autograd - self.finite_difference):.3g} > tolerance {self.tolerance:.3g})")


Evaluate = Callable[[], tuple[Tensor, Tensor]]


def leaves_of(block: Invertible, points: Tensor, context: Tensor | None) -> dict[str, Tensor]:
    """The tensors a gradient is checked for: ``input``, ``context`` (if any) and every trainable
    parameter with at least one entry, by name."""
    out = {"input": points}
    if context is not None:
        out["context"] = context
    out.update({n: p for n, p in block.named_parameters() if p.requires_grad and p.numel() > 0})
    return out


def directional_mismatches(
    block: Invertible,
    points: Tensor,
    context: Tensor | None,
    *,
    inverse: bool,
    memory_saving: bool = False,
    random_directions: int = 1,
    rtol: float = RTOL,
    seed: int = 0,
    joint_parameters: bool = False,
    enter: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> list[Mismatch]:
    r"""Directional derivatives of :math:`L` (module docstring) where autograd and finite differences disagree.

    Args:
        block: a float64 block in the mode to check (its parameters are perturbed in place and
            restored exactly; its buffers are restored before every evaluation).
        points: ``[batch, *shape]`` float64 inputs of the direction checked.
        context: ``[batch, K]`` float64 or None.
        inverse: check ``block.inverse`` instead of ``block.forward``.
        memory_saving: take autograd's gradient through :func:`revkit.memory_saving.run_memory_saving`
            (forward only) instead of plain autograd; the finite differences are the same.
        random_directions: random unit directions per leaf, besides the gradient's own direction.
        rtol: relative tolerance.
        seed: seeds ``w``, ``v`` and the directions.
        joint_parameters: treat all parameters as one leaf (cheaper for large shapes).
        enter: a context every evaluation runs in (the exact-log-det mode, a seeded RNG).
    """
    from revkit.memory_saving import run_memory_saving

    gen = torch.Generator().manual_seed(seed)
    points = points.detach().clone()
    context = None if context is None else context.detach().clone()
    call = block.inverse if inverse else block

    buffers = {n: b.detach().clone() for n, b in block.named_buffers()}

    def restore_buffers() -> None:
        """Undo what a pass wrote into buffers (a power iteration's vector, in training mode), so
        every evaluation computes the same function."""
        with torch.no_grad():
            for n, b in block.named_buffers():
                if n in buffers and b.shape == buffers[n].shape:
                    b.copy_(buffers[n])

    def run(grad: bool, saving: bool = False) -> tuple[Tensor, Tensor]:
        restore_buffers()
        with enter(), torch.set_grad_enabled(grad):
            if saving:
                return run_memory_saving([block], points, context)
            return call(points, context)

    with torch.no_grad():
        out0, ld0 = run(False)
    w = torch.randn(out0.shape, generator=gen, dtype=out0.dtype)
    v = torch.randn(ld0.shape, generator=gen, dtype=ld0.dtype)

    def functional(out: Tensor, ld: Tensor) -> tuple[Tensor, float]:
        terms = (w * out).sum() + (v * ld).sum()
        magnitude = float((w * out).detach().abs().sum() + (v * ld).detach().abs().sum())
        return terms, magnitude

    leaves = leaves_of(block, points, context)
    for name in ("input", "context"):
        if name in leaves:
            leaves[name].requires_grad_(True)
    targets = list(leaves.values())
    restore_buffers()
    with enter(), torch.enable_grad():  # the backward too: memory saving re-runs the block in it
        out, ld = (run_memory_saving([block], points, context) if memory_saving else call(points, context))
        loss, _ = functional(out, ld)
        grads = (torch.autograd.grad(loss, targets, allow_unused=True) if loss.requires_grad
                 else (None,) * len(targets))
    gradient = {n: torch.zeros_like(t) if g is None else g.detach() for (n, t), g in zip(leaves.items(), grads)}
    for name in ("input", "context"):
        if name in leaves:
            leaves[name].requires_grad_(False)

    groups: dict[str, list[str]] = {n: [n] for n in leaves}
    if joint_parameters:
        params = [n for n in leaves if n not in ("input", "context")]
        groups = {n: [n] for n in leaves if n in ("input", "context")}
        if params:
            groups["parameters"] = params

    mismatches: list[Mismatch] = []
    for group, names in groups.items():
        g_flat = torch.cat([gradient[n].reshape(-1) for n in names])
        g_norm = float(g_flat.norm())
        directions: list[tuple[str, Tensor]] = []
        if g_norm > 0:
            directions.append(("gradient", g_flat / g_norm))
        for k in range(random_directions):
            d = torch.randn(g_flat.shape, generator=gen, dtype=g_flat.dtype)
            directions.append((f"random #{k + 1}", d / d.norm()))
        for label, d in directions:
            ad = float(g_flat @ d)
            for step in (STEP, RETRY_STEP):
                fd, magnitude = _central_difference(run, functional, [leaves[n] for n in names], d, step)
                tol = rtol * max(g_norm, abs(ad), abs(fd)) + 1e3 * torch.finfo(torch.float64).eps * magnitude / step
                if abs(ad - fd) <= tol:
                    break
            else:
                mismatches.append(Mismatch(group, label, ad, fd, tol))
    return mismatches


@contextlib.contextmanager
def _displaced(tensors: list[Tensor], direction: Tensor, amount: float) -> Iterator[None]:
    """Add ``amount · direction`` (split over ``tensors``) in place, and restore the exact values."""
    saved = [t.detach().clone() for t in tensors]
    offset = 0
    with torch.no_grad():
        for t in tensors:
            n = t.numel()
            t.add_(direction[offset:offset + n].reshape(t.shape).to(t.dtype), alpha=amount)
            offset += n
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)


def _central_difference(
    run: Callable[[bool], tuple[Tensor, Tensor]],
    functional: Callable[[Tensor, Tensor], tuple[Tensor, float]],
    tensors: list[Tensor],
    direction: Tensor,
    step: float,
) -> tuple[float, float]:
    values = []
    magnitude = 0.0
    for sign in (1.0, -1.0):
        with _displaced(tensors, direction, sign * step), torch.no_grad():
            value, size = functional(*run(False))
        values.append(float(value))
        magnitude = max(magnitude, size)
    return (values[0] - values[1]) / (2 * step), magnitude


__all__ = ["Mismatch", "directional_mismatches", "leaves_of"]
