r"""Latent interpolations between pairs of test images.

For a pair :math:`(x_a, y_a), (x_b, y_b)` with latents :math:`z_a = f(x_a)`, :math:`z_b = f(x_b)`
and ``steps`` points :math:`t_i = i / (\text{steps} - 1)`:

.. math:: x(t) = f^{-1}\bigl((1 - t)\, z_a + t\, z_b\bigr)

("full"), and the same between the restricted latents :math:`r(z_a, y_a)`, :math:`r(z_b, y_b)`
("restricted", :meth:`revkit.priors.base.Prior.restrict`). So :math:`x(0)` and :math:`x(1)` are
the (restricted or full) reconstructions of the endpoints. A class-conditional network decodes
with label :math:`y_a` for :math:`t < 1/2` and :math:`y_b` from there on.

Pairs (:func:`choose_pairs`) come from one test batch: same-class pairs first, then pairs of
different classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from revkit.eval.labelled_grid import write_labelled_rows
from revkit.eval.prior_components import restricts
from revkit.eval.restricted import flow_labels, restrict
from revkit.model import Model


@dataclass(frozen=True)
class Pair:
    """Indices of two images in a batch and whether they share a class."""

    a: int
    b: int
    same_class: bool


def choose_pairs(y: Tensor, count: int) -> list[Pair]:
    """Up to ``count`` same-class pairs and ``count`` different-class pairs from labels ``y [B]``.

    Same-class pairs take, class by class in order of first appearance, the first two images of
    that class; different-class pairs join the first images of classes 1st & 2nd, 3rd & 4th, … (in
    order of first appearance). With unlabelled data (one class) only same-class pairs exist.
    """
    labels = [int(v) for v in y.reshape(-1).tolist()]
    first: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        first.setdefault(label, []).append(i)
    same = [Pair(ix[0], ix[1], True) for ix in first.values() if len(ix) >= 2][:count]
    heads = [ix[0] for ix in first.values()]
    different = [Pair(heads[k], heads[k + 1], False) for k in range(0, len(heads) - 1, 2)][:count]
    return same + different


@torch.no_grad()
def interpolate(
    flow: Model, xa: Tensor, xb: Tensor, ya: Tensor | None, yb: Tensor | None, steps: int, restricted: bool
) -> Tensor:
    """Decoded interpolations ``[P, steps, *input_shape]`` between ``xa [P, …]`` and ``xb [P, …]`` (eval mode).

    ``ya``/``yb`` are the labels ``[P]`` (None for unlabelled data); ``restricted`` interpolates
    between the restricted latents.
    """
    if steps < 2:
        raise ValueError(f"interpolation needs at least 2 steps, got {steps}")
    was_training = flow.training
    flow.eval()
    try:
        za, zb = flow.encode(xa, flow_labels(flow, ya)), flow.encode(xb, flow_labels(flow, yb))
        if restricted:
            za, zb = restrict(flow, za, ya), restrict(flow, zb, yb)
        p = za.shape[0]
        t = torch.linspace(0.0, 1.0, steps, device=za.device, dtype=za.dtype)
        shape = (1, steps) + (1,) * (za.dim() - 1)
        z = (1 - t.view(shape)) * za.unsqueeze(1) + t.view(shape) * zb.unsqueeze(1)  # [P, steps, *latent]
        labels = None
        if flow.conditional and ya is not None and yb is not None:
            labels = torch.where(t.view(1, steps) < 0.5, ya.view(p, 1), yb.view(p, 1)).reshape(-1)
        x = flow.decode(z.reshape(p * steps, *za.shape[1:]), labels)
        return x.reshape(p, steps, *x.shape[1:])
    finally:
        flow.train(was_training)


def write_interpolations(flow: Model, x: Tensor, y: Tensor | None, pairs: list[Pair], steps: int,
                         path: Path) -> Path:
    """A PNG with a row per pair and kind (restricted, full): ``x_a``, ``steps`` decodings, ``x_b``.

    Priors that do not restrict (:func:`revkit.eval.prior_components.restricts`) get the full rows only.
    """
    if not pairs:
        raise ValueError("no pairs to interpolate")
    ia = torch.tensor([p.a for p in pairs], device=x.device)
    ib = torch.tensor([p.b for p in pairs], device=x.device)
    ya, yb = (y[ia], y[ib]) if y is not None else (None, None)
    kinds = [True, False] if restricts(flow.prior) else [False]
    decoded = {kind: interpolate(flow, x[ia], x[ib], ya, yb, steps, kind).cpu() for kind in kinds}
    rows, labels = [], []
    for k, pair in enumerate(pairs):
        name = f"{int(ya[k])} to {int(yb[k])}" if ya is not None and yb is not None else f"#{pair.a} to #{pair.b}"
        for kind in kinds:
            rows.append(torch.cat([x[pair.a : pair.a + 1].cpu(), decoded[kind][k], x[pair.b : pair.b + 1].cpu()]))
            labels.append(f"{name} {'restricted' if kind else 'full'}")
    title = f"interpolations (original, {steps} steps, original)"
    return write_labelled_rows(rows, labels, path, title=title)
