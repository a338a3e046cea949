"""A chain of invertible blocks, itself invertible."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from revkit.invertible import Invertible, Shape
from revkit.memory_saving import run_memory_saving


class Sequential(Invertible):
    r"""Composition :math:`f = f_n ∘ … ∘ f_1`; log-dets add.

    ``forward`` applies the blocks in order (data → latent) and returns
    ``(f(x), Σ_i log|det J_{f_i}|)``; ``inverse`` applies their inverses in reverse order.
    Consecutive blocks marked by :meth:`set_memory_saving` run as one memory-saving segment
    (:func:`revkit.memory_saving.run_memory_saving`) when gradients are being recorded.

    Args:
        layers: the blocks, each taking the previous block's output shape.
        input_shape: per-sample input shape of the first block (checked against the chain).
    """

    def __init__(self, layers: Iterable[Invertible], input_shape: Shape):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(input_shape)
        self._shapes = [self.input_shape]
        for layer in self.layers:
            self._shapes.append(tuple(layer.output_shape(self._shapes[-1])))
        # a chain is only as exact, analytic and volume-preserving as its least member
        blocks = [layer for layer in self.layers if isinstance(layer, Invertible)]
        self.exact_logdet = all(b.exact_logdet for b in blocks)
        self.analytic_inverse = all(b.analytic_inverse for b in blocks)
        self.volume_preserving = all(b.volume_preserving for b in blocks)
        self._memory_saving = [False] * len(self.layers)

    def set_memory_saving(self, flags: Sequence[bool] | bool) -> None:
        """Mark blocks for memory-saving execution: one flag per block, or one for all.

        Raises:
            ValueError: a marked block has no analytic inverse.
        """
        marks = [bool(flags)] * len(self.layers) if isinstance(flags, bool) else [bool(f) for f in flags]
        if len(marks) != len(self.layers):
            raise ValueError(f"set_memory_saving needs {len(self.layers)} flags, got {len(marks)}")
        for layer, mark in zip(self.layers, marks):
            if mark and not getattr(layer, "analytic_inverse", False):
                raise ValueError(f"{type(layer).__name__} has no analytic inverse, so it cannot run with "
                                 f"memory-saving execution")
        self._memory_saving = marks

    @property
    def memory_saving(self) -> list[bool]:
        """Per block: whether it runs with memory-saving execution."""
        return list(self._memory_saving)

    def _segments(self) -> Iterator[tuple[bool, list[Invertible]]]:
        """Runs of consecutive blocks with the same memory-saving mark, in order."""
        run: list[Invertible] = []
        mark = False
        for layer, flag in zip(self.layers, self._memory_saving):
            if run and flag != mark:
                yield mark, run
                run = []
            mark = flag
            run.append(layer)
        if run:
            yield mark, run

    def exact_logdet_mode(self) -> contextlib.AbstractContextManager[object]:
        """Every member's exact mode at once."""
        stack = contextlib.ExitStack()
        for layer in self.layers:
            stack.enter_context(layer.exact_logdet_mode())
        return stack

    @property
    def shapes(self) -> list[Shape]:
        """Per-sample shapes before the first block and after each block."""
        return list(self._shapes)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
        return shape

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = self.zero_logdet(x)
        for saving, run in self._segments():
            if saving and torch.is_grad_enabled():
                x, ld = run_memory_saving(run, x, context)
                logdet = logdet + ld
                continue
            for layer in run:
                x, ld = layer(x, context)
                logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = self.zero_logdet(y)
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y, context)
            logdet = logdet + ld
        return y, logdet

    def plain_members(self) -> list[Invertible] | None:
        """The member blocks when this chain's ``forward`` is exactly their composition (so memory-saving
        execution may run them one by one, :func:`revkit.memory_saving.leaf_blocks`); None for a
        subclass with a ``forward`` of its own."""
        return list(self.layers) if type(self).forward is Sequential.forward else None

    def __iter__(self) -> Iterator[Invertible]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Invertible:
        return self.layers[i]
