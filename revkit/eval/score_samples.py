r"""The samples that scores are computed on: balanced over the classes of a class-conditional model.

``n`` samples at ``temperature``; a class-conditional model (prior or network) gets the intended
labels :math:`y_i = i \bmod C`, so every class has :math:`\lfloor n/C \rfloor` or one more samples.
Sampling runs in eval mode, in chunks, and returns CPU tensors with intensities clamped to [0, 1]
(as the pictures show them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from revkit.eval.prior_components import module_device
from revkit.eval.samples import class_count
from revkit.model import Model

CHUNK = 500


@torch.no_grad()
def draw_score_samples(flow: Model, n: int, temperature: float = 1.0) -> tuple[Tensor, Tensor | None]:
    """``(samples [n, *input_shape], intended labels [n] or None for an unconditional model)``."""
    if n < 1:
        raise ValueError(f"the number of samples to score must be ≥ 1, got {n}")
    classes = class_count(flow)
    device = module_device(flow)
    labels = torch.arange(n, device=device) % classes if classes else None
    was_training = flow.training
    flow.eval()
    try:
        chunks = []
        for start in range(0, n, CHUNK):
            k = min(CHUNK, n - start)
            y = labels[start : start + k] if labels is not None else None
            chunks.append(flow.sample(k, y=y, temperature=temperature).clamp(0.0, 1.0).cpu())
    finally:
        flow.train(was_training)
    return torch.cat(chunks), None if labels is None else labels.cpu()
