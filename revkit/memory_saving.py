r"""Memory-saving execution: back-propagate through invertible blocks without storing activations.

Plain autograd keeps every intermediate tensor of every block until the backward pass, so training
memory grows linearly with depth. An invertible block does not need them: its input can be rebuilt
from its output. :func:`run_memory_saving` runs a chain of blocks ``f_n ∘ … ∘ f_1`` under one
:class:`torch.autograd.Function` that, in the forward pass, keeps only the chain's output ``y_n``
(and the blocks' RNG states); in the backward pass it walks the blocks in reverse, and for each
block :math:`f_i` with output :math:`y_i` and incoming gradients :math:`(∂L/∂y_i, ∂L/∂\ell)`
(:math:`\ell = \sum_i \log|\det J_{f_i}|`, so every block sees the same :math:`∂L/∂\ell`) calls
:func:`reverse_grad`, which

1. rebuilds :math:`y_{i-1} = f_i^{-1}(y_i)`,
2. returns :math:`∂L/∂y_{i-1}` and the gradients of the block's parameters (and of ``context``).

This module is the only place that knows about freeing and rebuilding activations; the blocks are
pure maths. :func:`reverse_grad` dispatches on what a block offers: a block with the optional
``inverse_and_vjp`` method (:class:`revkit.invertible.InverseAndVJP`: couplings, RevBlocks, actnorm,
the 1×1 convolution) rebuilds its input and back-propagates in one step, evaluating each of its
networks once — a coupling's inverse evaluates the very network the backward needs, at the very
input. Any other block goes through :func:`recompute_reverse_grad`: invert without a graph, re-run
``forward`` with one (two evaluations of its networks). Peak memory is then one block's graph plus
a few tensors of the chain's width, whatever the depth.

Gradients equal plain autograd's up to the round-off of the reconstruction (the conformance kit's
``memory_saving`` check: 1e-5 in float32, 1e-10 in float64). The state of the random number
generators before each block's forward is restored (in a forked RNG, so the caller's stream is
untouched) while that block is rebuilt, so stochastic sub-networks (dropout) see the same draws.

Imports: :mod:`revkit.invertible` only. A chain (:class:`~revkit.Sequential`) is recognised by
duck typing: a block whose ``plain_members()`` returns its members (rather than None) is expanded
into them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from revkit.invertible import InverseVJP, context_leaf, leaf, trainable_parameters, vjp

__all__ = [
    "leaf_blocks",
    "recompute_reverse_grad",
    "reverse_grad",
    "run_memory_saving",
]


def _zero_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def reverse_grad(
    block: nn.Module,
    y: Tensor,
    grad_y: Tensor,
    grad_logdet: Tensor | None,
    context: Tensor | None = None,
) -> InverseVJP:
    r"""One step of the memory-saving backward pass through ``block`` (``f``) with output ``y``.

    Returns :math:`x = f^{-1}(y)` and the vector–Jacobian product of ``f`` at ``x`` with
    :math:`(∂L/∂y, ∂L/∂\ell)` (:class:`~revkit.invertible.InverseVJP`). Uses the block's own
    ``inverse_and_vjp`` when it has one (one evaluation of its networks), else
    :func:`recompute_reverse_grad` (two). Only called for blocks with ``analytic_inverse = True``.
    """
    own = getattr(block, "inverse_and_vjp", None)
    if callable(own):
        return own(y, grad_y, grad_logdet, context)
    return recompute_reverse_grad(block, y, grad_y, grad_logdet, context)


def recompute_reverse_grad(
    block: nn.Module,
    y: Tensor,
    grad_y: Tensor,
    grad_logdet: Tensor | None,
    context: Tensor | None = None,
) -> InverseVJP:
    """The generic :func:`reverse_grad` for any block: ``x = f⁻¹(y)`` without a graph, then
    ``f(x)`` again with one and its vector–Jacobian product. Two evaluations of ``f``'s networks;
    blocks whose inverse already computes what the backward needs offer ``inverse_and_vjp``."""
    with torch.no_grad():
        x, _ = block.inverse(y, context)
    x_leaf = leaf(x)
    ctx_leaf = context_leaf(context)
    with torch.enable_grad():
        y_re, logdet = block(x_leaf, ctx_leaf)
    (grad_x,), grad_context, grad_params = vjp(
        block, [y_re, logdet], [grad_y, grad_logdet], [x_leaf], ctx_leaf
    )
    return InverseVJP(x.detach(), _zero_if_none(grad_x, x), grad_context, grad_params)


def leaf_blocks(blocks: Sequence[nn.Module]) -> list[nn.Module]:
    """``blocks`` with every plain chain (a :class:`~revkit.Sequential` such as ``glow_step``)
    expanded into its members, recursively, so each member takes its own :func:`reverse_grad`.

    A plain chain is a block whose ``plain_members()`` returns its members (a chain with a forward
    of its own returns None and stays whole)."""
    out: list[nn.Module] = []
    for block in blocks:
        members_of = getattr(block, "plain_members", None)
        members = members_of() if callable(members_of) else None
        if members is None:
            out.append(block)
        else:
            out.extend(leaf_blocks(list(members)))
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
                step = reverse_grad(block, y, grad, grad_logdet, context)
            per_block.append(step.grad_params)
            if step.grad_context is not None:
                grad_context = step.grad_context if grad_context is None else grad_context + step.grad_context
            y = step.x
            if step.grad_x is None:
                if i > 0 or needs_x:
                    raise RuntimeError(f"the memory-saving backward of {type(block).__name__} returned no input gradient")
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
