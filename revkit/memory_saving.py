r"""Memory-saving execution: back-propagate through invertible blocks without storing activations.

Plain autograd keeps every intermediate tensor of every block until the backward pass, so training
memory grows linearly with depth. An invertible block does not need them: its input can be rebuilt
from its output. :func:`run_memory_saving` runs a chain of blocks ``f_n ∘ … ∘ f_1`` under one
:class:`torch.autograd.Function` that, in the forward pass, keeps only the chain's output ``y_n``
(and the blocks' RNG states); in the backward pass it walks the blocks in reverse, and for each
block :math:`f_i` with output :math:`y_i` and incoming gradients :math:`(∂L/∂y_i, ∂L/∂\ell)`
(:math:`\ell = \sum_i \log|\det J_{f_i}|`, so every block sees the same :math:`∂L/∂\ell`) calls
:meth:`~revkit.Invertible.reverse_grad`, which

1. rebuilds :math:`y_{i-1} = f_i^{-1}(y_i)`,
2. returns :math:`∂L/∂y_{i-1}` and the gradients of the block's parameters (and of ``context``).

The generic :meth:`~revkit.Invertible.reverse_grad` inverts without a graph and re-runs the forward
with one (two forward evaluations of the block's networks per backward). Couplings and RevBlocks
override it: their inverse evaluates the very networks the backward needs, at the very inputs, so
they evaluate each network once, with a graph, and reuse it (:func:`backprop`). Peak memory is then
one block's graph plus a few tensors of the chain's width, whatever the depth.

Gradients equal plain autograd's up to the round-off of the reconstruction (the conformance kit's
``memory_saving`` check: 1e-5 in float32, 1e-10 in float64). The state of the random number
generators before each block's forward is restored (in a forked RNG, so the caller's stream is
untouched) while that block is rebuilt, so stochastic sub-networks (dropout) see the same draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "ReverseGrad",
    "backprop",
    "context_leaf",
    "leaf",
    "leaf_blocks",
    "recompute_reverse_grad",
    "run_memory_saving",
    "trainable_parameters",
]


@dataclass
class ReverseGrad:
    """What :meth:`~revkit.Invertible.reverse_grad` returns for a block ``f`` with output ``y``.

    Attributes:
        x: the rebuilt input :math:`f^{-1}(y)`, detached.
        grad_x: :math:`∂L/∂x`, or None when not asked for.
        grad_context: :math:`∂L/∂c` through this block, or None (no context, or it needs none).
        grad_params: gradients of :func:`trainable_parameters` of the block, in that order (None for
            a parameter the block's output does not depend on).
    """

    x: Tensor
    grad_x: Tensor | None
    grad_context: Tensor | None
    grad_params: tuple[Tensor | None, ...]


def trainable_parameters(block: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``block`` that require gradients, in ``block.parameters()`` order."""
    return [p for p in block.parameters() if p.requires_grad]


def _zero_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def backprop(
    block: nn.Module,
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor | None],
    inputs: Sequence[Tensor],
    context: Tensor | None,
) -> tuple[list[Tensor | None], Tensor | None, tuple[Tensor | None, ...]]:
    """Vector–Jacobian product of a recomputed local graph.

    ``outputs`` were computed with a graph from the leaves ``inputs`` (detached tensors with
    ``requires_grad``), ``context`` and the block's parameters. Returns ``(grads of inputs, grad of
    context or None, grads of trainable_parameters(block))``; outputs whose gradient is None are
    skipped, and leaves they do not reach get None.
    """
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None and o.requires_grad]
    params = trainable_parameters(block)
    wants_context = context is not None and context.requires_grad
    targets: list[Tensor] = [*inputs, *params, *([context] if wants_context else [])]
    if not pairs:
        return [None] * len(inputs), None, (None,) * len(params)
    grads = torch.autograd.grad(
        [o for o, _ in pairs], targets, [g for _, g in pairs], allow_unused=True
    )
    n = len(inputs)
    grad_context = grads[-1] if wants_context else None
    return list(grads[:n]), grad_context, tuple(grads[n:n + len(params)])


def leaf(t: Tensor) -> Tensor:
    """``t`` detached from its graph as a new leaf that requires gradients."""
    return t.detach().requires_grad_(True)


def context_leaf(context: Tensor | None) -> Tensor | None:
    """The context as a graph leaf when gradients must reach it, else detached."""
    if context is None:
        return None
    return leaf(context) if context.requires_grad else context.detach()


def recompute_reverse_grad(
    block: nn.Module,
    y: Tensor,
    grad_y: Tensor,
    grad_logdet: Tensor | None,
    context: Tensor | None = None,
) -> ReverseGrad:
    """The generic :meth:`~revkit.Invertible.reverse_grad`: ``x = f⁻¹(y)`` without a graph, then
    ``f(x)`` again with one and its vector–Jacobian product. Two evaluations of ``f``'s networks;
    blocks whose inverse already computes what the backward needs override it."""
    with torch.no_grad():
        x, _ = block.inverse(y, context)
    x_leaf = leaf(x)
    ctx_leaf = context_leaf(context)
    with torch.enable_grad():
        y_re, logdet = block(x_leaf, ctx_leaf)
    (grad_x,), grad_context, grad_params = backprop(
        block, [y_re, logdet], [grad_y, grad_logdet], [x_leaf], ctx_leaf
    )
    return ReverseGrad(x.detach(), _zero_if_none(grad_x, x), grad_context, grad_params)


def leaf_blocks(blocks: Sequence[nn.Module]) -> list[nn.Module]:
    """``blocks`` with every plain chain (a :class:`~revkit.Sequential` such as ``glow_step``)
    expanded into its members, recursively, so each member can use its own ``reverse_grad``."""
    from revkit.sequential import Sequential

    out: list[nn.Module] = []
    for block in blocks:
        if type(block).forward is Sequential.forward and isinstance(block, Sequential):
            out.extend(leaf_blocks(list(block.layers)))
        else:
            out.append(block)
    return out


class _RngStates:
    """The CPU (and, for CUDA tensors, the device's) generator state before a block's forward."""

    def __init__(self, device: torch.device):
        self.cpu = torch.get_rng_state()
        self.device = device if device.type == "cuda" else None
        self.cuda = torch.cuda.get_rng_state(device) if self.device is not None else None

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        """The generators as they were, in a fork that leaves the caller's stream alone."""
        with torch.random.fork_rng(devices=[self.device] if self.device is not None else []):
            torch.set_rng_state(self.cpu)
            if self.device is not None and self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield


class _MemorySavingChain(torch.autograd.Function):
    """``(x, context, *params) -> (y, logdet)`` through ``blocks``, storing only ``y``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, blocks: list[nn.Module], x: Tensor, context: Tensor | None, *params: Tensor
    ) -> tuple[Tensor, Tensor]:
        rng: list[_RngStates] = []
        logdet = x.new_zeros(x.shape[0])
        with torch.no_grad():
            y = x
            for block in blocks:
                rng.append(_RngStates(y.device))
                y, ld = block(y, context)
                logdet = logdet + ld
        ctx.blocks = blocks
        ctx.rng = rng
        ctx.has_context = context is not None
        ctx.save_for_backward(y, *([context] if context is not None else []))
        return y, logdet

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor | None, grad_logdet: Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        saved = ctx.saved_tensors
        y = saved[0].detach()
        context = saved[1] if ctx.has_context else None
        needs_x = ctx.needs_input_grad[1]
        grad = torch.zeros_like(y) if grad_y is None else grad_y
        grad_context: Tensor | None = None
        per_block: list[tuple[Tensor | None, ...]] = []
        for i in range(len(ctx.blocks) - 1, -1, -1):
            block = ctx.blocks[i]
            with ctx.rng[i].restored():
                step = block.reverse_grad(y, grad, grad_logdet, context)
            per_block.append(step.grad_params)
            if step.grad_context is not None:
                grad_context = step.grad_context if grad_context is None else grad_context + step.grad_context
            y = step.x
            if step.grad_x is None:
                if i > 0 or needs_x:
                    raise RuntimeError(f"{type(block).__name__}.reverse_grad returned no input gradient")
            else:
                grad = step.grad_x
        param_grads = [g for grads in reversed(per_block) for g in grads]
        return (None, grad if needs_x else None, grad_context, *param_grads)


def _params_of(blocks: Sequence[nn.Module]) -> Iterator[Tensor]:
    for block in blocks:
        yield from trainable_parameters(block)


def run_memory_saving(
    blocks: Sequence[nn.Module], x: Tensor, context: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(f_n ∘ … ∘ f_1)(x)`` and the summed log-det, keeping only the output for the backward pass.

    Every block must have an analytic inverse (``block.analytic_inverse``). Without gradients
    (``torch.no_grad()``, evaluation) the chain just runs plainly.

    Args:
        blocks: invertible blocks in data → latent order; plain chains are expanded.
        x: input ``[B, *input_shape]``.
        context: ``[B, K]`` or None, passed to every block.

    Returns:
        ``(y, logdet)`` with ``logdet`` of shape ``[B]``.
    """
    leaves = leaf_blocks(list(blocks))
    if not torch.is_grad_enabled():
        logdet = x.new_zeros(x.shape[0])
        for block in leaves:
            x, ld = block(x, context)
            logdet = logdet + ld
        return x, logdet
    for block in leaves:
        if not getattr(block, "analytic_inverse", False):
            raise ValueError(f"{type(block).__name__} has no analytic inverse: memory-saving execution "
                             f"cannot rebuild its input")
    y, logdet = _MemorySavingChain.apply(leaves, x, context, *_params_of(leaves))
    return y, logdet
