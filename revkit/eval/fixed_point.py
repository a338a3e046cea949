r"""How well the iterative inverses of a flow work: reconstruction error and iterations used.

Blocks without a closed-form inverse (``analytic_inverse = False``, e.g. ``iresnet``) solve
:math:`F(x) = y` by fixed-point iteration and record what they did after each inverse in
``last_inverse`` (:class:`~revkit.blocks.iresnet.FixedPointStats`: per-sample ``iterations`` and
``converged``). :func:`inverse_report` decodes the encodings of a batch of test images, so each such
block inverts once per image, and summarises:

* ``images``: the number of images; ``max_error``: :math:`\max_i \|\hat x_i - x_i\|_∞` with
  :math:`\hat x = f^{-1}(f(x))` in evaluation mode; ``images_over_threshold``: how many images have
  :math:`\|\hat x_i - x_i\|_∞` above ``threshold`` (default 1e-4);
* ``iterations_histogram``: how many (block, image) inversions took each number of iterations
  (keys are iteration counts as strings, for JSON); ``max_iterations``, ``mean_iterations``;
* ``unconverged``: (block, image) inversions that stopped at their cap; ``blocks``: iterative blocks;
* ``per_block_max_iterations``: the largest count of each block, in decoding order.

:func:`merge_inverse_reports` combines the reports of several batches into the report of their union
(e.g. the whole test set, ``bench/iresnet_inverse.py --all``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from revkit.model import Model


def iterative_blocks(flow: nn.Module) -> list[nn.Module]:
    """The modules of ``flow`` that record fixed-point statistics (``last_inverse``), in module order."""
    return [m for m in flow.modules() if hasattr(m, "last_inverse")]


@torch.no_grad()
def inverse_report(flow: Model, x: Tensor, y: Tensor | None = None, *, threshold: float = 1e-4) -> dict[str, Any]:
    """Round trip ``x → f(x) → f⁻¹(f(x))`` in evaluation mode and the statistics above.

    Args:
        x: a batch of data ``[B, *input_shape]``.
        y: its labels (used when the flow is conditional).
        threshold: the per-image error counted in ``images_over_threshold``.
    """
    was_training = flow.training
    flow.eval()
    blocks = iterative_blocks(flow)
    try:
        labels = y if flow.conditional else None
        for block in blocks:
            block.last_inverse = None
        x_hat = flow.decode(flow.encode(x, labels), labels)
    finally:
        flow.train(was_training)
    errors = (x_hat - x).abs().reshape(x.shape[0], -1).amax(dim=1)
    counts: Counter[int] = Counter()
    per_block, unconverged = [], 0
    for block in reversed(blocks):  # decoding visits them last to first
        stats = block.last_inverse
        if stats is None:
            continue
        iterations = stats.iterations.reshape(-1).tolist()
        counts.update(int(i) for i in iterations)
        per_block.append(max(iterations) if iterations else 0)
        unconverged += int((~stats.converged).sum())
    return {
        "images": int(x.shape[0]),
        "max_error": float(errors.max()) if errors.numel() else 0.0,
        "threshold": threshold,
        "images_over_threshold": int((errors > threshold).sum()),
        **_iteration_summary(counts),
        "unconverged": unconverged,
        "blocks": len(per_block),
        "per_block_max_iterations": per_block,
    }


def _iteration_summary(counts: Counter[int]) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "iterations_histogram": {str(k): counts[k] for k in sorted(counts)},
        "max_iterations": max(counts) if counts else 0,
        "mean_iterations": sum(k * v for k, v in counts.items()) / total if total else 0.0,
    }


def merge_inverse_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The :func:`inverse_report` of the union of the batches behind ``reports`` (same flow, same
    ``threshold``): counts add up, maxima are taken, the mean is recomputed from the merged histogram."""
    if not reports:
        raise ValueError("merge_inverse_reports needs at least one report")
    thresholds = {r["threshold"] for r in reports}
    if len(thresholds) > 1:
        raise ValueError(f"reports with different thresholds cannot be merged: {sorted(thresholds)}")
    counts: Counter[int] = Counter()
    for r in reports:
        counts.update({int(k): v for k, v in r["iterations_histogram"].items()})
    per_block = [max(column) for column in zip(*(r["per_block_max_iterations"] for r in reports), strict=True)]
    return {
        "images": sum(r["images"] for r in reports),
        "max_error": max(r["max_error"] for r in reports),
        "threshold": reports[0]["threshold"],
        "images_over_threshold": sum(r["images_over_threshold"] for r in reports),
        **_iteration_summary(counts),
        "unconverged": sum(r["unconverged"] for r in reports),
        "blocks": reports[0]["blocks"],
        "per_block_max_iterations": per_block,
    }


__all__ = ["inverse_report", "iterative_blocks", "merge_inverse_reports"]
