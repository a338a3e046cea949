r"""A plot of the prior's stds per component, each sorted from largest to smallest.

Line :math:`c` shows :math:`σ_{c,(1)} ≥ σ_{c,(2)} ≥ …` over the rank (log-scaled axis), so one sees
how many dimensions a class still uses (std > 0) and how fast the stds fall off. The legend gives
each class's number of active dimensions when the prior reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor


def sorted_stds(stds: Tensor) -> np.ndarray:
    """``[K, D]``: each component's stds (of ``stds [K, *latent]``) sorted in decreasing order."""
    flat = stds.detach().double().cpu().reshape(stds.shape[0], -1).numpy()
    return -np.sort(-flat, axis=1)


def write_prior_stds(stds: Tensor, path: Path, active: Sequence[int] | None = None, conditional: bool = True) -> Path:
    """Write the plot of the module docstring as a PNG (matplotlib, no display needed)."""
    values = sorted_stds(stds)
    ranks = np.arange(1, values.shape[1] + 1)
    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot()
    name = "class" if conditional else "component"
    for c, row in enumerate(values):
        label = f"{name} {c}"
        if active is not None and len(active) == values.shape[0]:
            label += f" ({active[c]} active)"
        ax.plot(ranks, row, label=label, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("rank of the dimension (sorted by std)")
    ax.set_ylabel("prior std")
    ax.set_title(f"sorted prior stds per {name} ({values.shape[1]} latent dimensions)")
    ax.set_ylim(0.0, max(float(values.max(initial=0.0)) * 1.05, 1e-6))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize="x-small", ncol=2 if values.shape[0] > 5 else 1)
    fig.tight_layout()
    fig.savefig(Path(path), format="png")
    return Path(path)
