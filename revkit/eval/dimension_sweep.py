r"""Sweeps along the latent dimensions the prior lets vary most.

For each component (class) :math:`c` with mean :math:`μ_c` and std :math:`σ_c` (flattened over the
latent), take the ``dims`` dimensions :math:`d` of largest :math:`σ_{c,d}` and decode

.. math:: z = μ_c + α\,σ_{c,d}\,e_d, \qquad α \in \{-2, …, +2\}\ (\text{``steps'' evenly spaced values})

(all other dimensions at the class mean). The picture has a row per class and dimension, labelled
with the class, the flat dimension index and its std.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from revkit.eval.labelled_grid import write_labelled_rows
from revkit.eval.prior_components import component_labels
from revkit.eval.restricted import flow_labels
from revkit.model import Model

#: the sweep covers mean ± RANGE · std.
RANGE = 2.0


def top_dims(stds: Tensor, dims: int) -> tuple[Tensor, Tensor]:
    """Indices ``[K, k]`` (flat) and values ``[K, k]`` of the ``k = min(dims, D)`` largest stds per
    component of ``stds [K, *latent]``, largest first."""
    flat = stds.reshape(stds.shape[0], -1)
    values, index = torch.topk(flat, min(int(dims), flat.shape[1]), dim=1)
    return index, values


def sweep_latents(means: Tensor, stds: Tensor, dims: int, steps: int) -> tuple[Tensor, Tensor]:
    """Latents ``[K, k, steps, *latent]`` of the sweeps and their dimension indices ``[K, k]``."""
    if steps < 2:
        raise ValueError(f"a sweep needs at least 2 steps, got {steps}")
    k_components, shape = means.shape[0], means.shape[1:]
    index, values = top_dims(stds, dims)
    k = index.shape[1]
    alphas = torch.linspace(-RANGE, RANGE, steps, dtype=means.dtype, device=means.device)
    z = means.reshape(k_components, 1, 1, -1).repeat(1, k, steps, 1)  # [K, k, steps, D]
    offsets = alphas.view(1, 1, steps) * values.unsqueeze(2)  # [K, k, steps]
    target = index.unsqueeze(2).expand(k_components, k, steps).unsqueeze(3)
    z.scatter_add_(3, target, offsets.unsqueeze(3))
    return z.reshape(k_components, k, steps, *shape), index


@torch.no_grad()
def decode_sweeps(flow: Model, means: Tensor, stds: Tensor, dims: int, steps: int) -> tuple[Tensor, Tensor]:
    """Decoded sweeps ``[K, k, steps, *input_shape]`` (eval mode) and the dimension indices ``[K, k]``."""
    z, index = sweep_latents(means, stds, dims, steps)
    k_components, k = z.shape[:2]
    assert flow.prior is not None
    labels = component_labels(flow.prior, k_components)
    was_training = flow.training
    flow.eval()
    try:
        y = labels.repeat_interleave(k * steps) if labels is not None else None
        x = flow.decode(z.reshape(-1, *z.shape[3:]), flow_labels(flow, y))
    finally:
        flow.train(was_training)
    return x.reshape(k_components, k, steps, *x.shape[1:]), index


def write_dimension_sweeps(flow: Model, means: Tensor, stds: Tensor, dims: int, steps: int, path: Path) -> Path:
    """The PNG of the module docstring: a row per component and dimension, from −2σ to +2σ."""
    x, index = decode_sweeps(flow, means, stds, dims, steps)
    _, values = top_dims(stds, dims)
    assert flow.prior is not None
    name = "class" if flow.prior.conditional else "component"
    rows, labels = [], []
    for c in range(x.shape[0]):
        for j in range(x.shape[1]):
            rows.append(x[c, j].cpu())
            labels.append(f"{name} {c}, dim {int(index[c, j])}, std {float(values[c, j]):.3g}")
    title = f"dimensions of largest std, from mean - {RANGE:g} std to mean + {RANGE:g} std"
    return write_labelled_rows(rows, labels, path, title=title)
