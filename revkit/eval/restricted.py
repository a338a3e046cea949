r"""Reconstructions through the prior's active dimensions.

For a test image :math:`x` with label :math:`y` and latent :math:`z = f(x)`:

* full reconstruction :math:`\hat x = f^{-1}(z)` (equals :math:`x` up to float error);
* restricted reconstruction :math:`\tilde x = f^{-1}(r(z, y))`, where
  :math:`r` = :meth:`revkit.priors.base.Prior.restrict` clamps every inactive latent dimension
  (zero std in class :math:`y`) to the class mean — the image the prior can actually produce.

``reconstructions.png`` shows originals / restricted / full in three rows when the prior restricts
(:func:`revkit.eval.prior_components.restricts`), else originals over full reconstructions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from revkit.eval.labelled_grid import write_labelled_rows
from revkit.model import Model


def flow_labels(flow: Model, y: Tensor | None) -> Tensor | None:
    """The labels the flow's blocks need (``y`` for a class-conditional network, else None)."""
    return y if flow.conditional else None


def prior_labels(flow: Model, y: Tensor | None) -> Tensor | None:
    """The labels the prior needs (``y`` for a class-conditional prior, else None)."""
    return y if flow.prior is not None and flow.prior.conditional else None


def restrict(flow: Model, z: Tensor, y: Tensor | None) -> Tensor:
    """``flow.prior.restrict(z, y)`` (identity without a prior)."""
    return z if flow.prior is None else flow.prior.restrict(z, prior_labels(flow, y))


@torch.no_grad()
def restricted_reconstructions(flow: Model, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(decode(restrict(encode(x), y)), decode(encode(x)))``, both ``[B, *input_shape]``, in eval mode."""
    was_training = flow.training
    flow.eval()
    try:
        labels = flow_labels(flow, y)
        z = flow.encode(x, labels)
        return flow.decode(restrict(flow, z, y), labels), flow.decode(z, labels)
    finally:
        flow.train(was_training)


def write_restricted_reconstructions(x: Tensor, restricted: Tensor, full: Tensor, path: Path) -> Path:
    """A PNG with three labelled rows: ``x``, the restricted and the full reconstructions."""
    return write_labelled_rows([x, restricted, full], ["original", "restricted", "full"], path,
                               title="reconstructions from the restricted and the full latent")
