r"""Plots for 2-D data (per-sample shape ``(2,)``, e.g. ``toy2d``): sample scatter and density map.

The density map shows :math:`p(x) = \exp \log p(x)` on a regular grid covering the data; for a
flow whose blocks are class-conditional it is the mixture :math:`\frac1K \sum_k p(x \mid k)`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from revkit.model import Model

GRID = 160
CHUNK = 4096


def plot_bounds(points: Tensor, margin: float = 0.15) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` covering ``points [N, 2]`` (1st–99th percentile) with a margin."""
    p = points.detach().float().cpu()
    lo = torch.quantile(p, 0.005, dim=0)
    hi = torch.quantile(p, 0.995, dim=0)
    span = (hi - lo).clamp_min(1e-3)
    lo, hi = lo - margin * span, hi + margin * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def scatter_samples(samples: Tensor, path: Path, data: Tensor | None = None, title: str = "samples") -> Path:
    """Scatter ``samples [N, 2]`` (orange) over ``data [M, 2]`` (grey) into a PNG."""
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    if data is not None and data.numel():
        d = data.detach().float().cpu()
        ax.scatter(d[:, 0], d[:, 1], s=4, c="0.6", alpha=0.5, label="data", linewidths=0)
    s = samples.detach().float().cpu()
    ax.scatter(s[:, 0], s[:, 1], s=6, c="tab:orange", alpha=0.8, label="samples", linewidths=0)
    bounds = plot_bounds(torch.cat([s, d]) if data is not None and data.numel() else s)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=3)
    fig.tight_layout()
    fig.savefig(Path(path), format="png")
    return Path(path)


@torch.no_grad()
def density_grid(flow: Model, bounds: tuple[float, float, float, float], size: int = GRID) -> Tensor:
    """``p(x)`` on a ``size × size`` grid over ``bounds`` (rows: y from low to high)."""
    x0, x1, y0, y1 = bounds
    was_training = flow.training
    flow.eval()
    try:
        device = next(iter(flow.parameters()), torch.empty(0)).device
        xs = torch.linspace(x0, x1, size, device=device)
        ys = torch.linspace(y0, y1, size, device=device)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
        logp = torch.cat([_log_density(flow, points[i : i + CHUNK]) for i in range(0, points.shape[0], CHUNK)])
    finally:
        flow.train(was_training)
    return logp.exp().reshape(size, size).cpu()


def _log_density(flow: Model, x: Tensor) -> Tensor:
    if not flow.conditional:
        return flow.log_prob(x)
    per_class = [flow.log_prob(x, torch.full((x.shape[0],), k, device=x.device)) for k in range(flow.classes)]
    return torch.logsumexp(torch.stack(per_class), dim=0) - math.log(flow.classes)


def write_density(flow: Model, path: Path, data: Tensor) -> Path:
    """A PNG heat map of the model density over the region the ``data [M, 2]`` covers."""
    bounds = plot_bounds(data)
    density = density_grid(flow, bounds)
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(density.numpy(), origin="lower", extent=bounds, cmap="viridis", aspect="equal")
    fig.colorbar(image, ax=ax, shrink=0.8, label="p(x)")
    ax.set_title("model density")
    fig.tight_layout()
    fig.savefig(Path(path), format="png")
    return Path(path)
