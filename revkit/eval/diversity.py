r"""How varied samples are: within-class spread against real data, and precision and recall of the
sample distribution in a feature space.

* **Within-class spread** — the mean pairwise Euclidean distance between images of one class,

  .. math:: s_k = \frac{2}{n_k(n_k-1)} \sum_{i<j,\ y_i=y_j=k} \lVert x_i - x_j \rVert_2 ,

  averaged over the classes (one class for an unconditional model). Reported for the samples and for
  real images of the same classes; their ratio is 1 when samples vary as much as real digits and near 0
  when every sample of a class is the same picture (mode collapse within a class).
* **Precision and recall** (Kynkäänniemi et al., 2019) — each set of feature vectors is a union of
  balls, one per point, of radius its distance to its ``k``-th nearest neighbour in its own set.
  *Precision* is the share of sample features that fall in the real set's balls (samples look real);
  *recall* the share of real features that fall in the samples' balls (the real variety is covered).
  Collapsed samples keep a high precision and lose recall.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: rows of a distance matrix computed at once (bounds memory: CHUNK × N floats).
CHUNK = 1024


def mean_pairwise_distance(points: Tensor, limit: int = 1000) -> float:
    r"""Mean Euclidean distance over pairs of distinct rows of ``points [N, ...]`` (the first ``limit``)."""
    x = points[:limit].reshape(min(points.shape[0], limit), -1).double()
    n = x.shape[0]
    if n < 2:
        return float("nan")
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def within_class_spread(images: Tensor, labels: Tensor, per_class: int = 500) -> float:
    """The within-class spread :math:`s_k` averaged over the classes present (at most ``per_class``
    images of each)."""
    values = [mean_pairwise_distance(images[labels == k], per_class) for k in torch.unique(labels).tolist()]
    values = [v for v in values if v == v]  # a class with one image has no pairs
    return float(sum(values) / len(values)) if values else float("nan")


def _kth_neighbour_radii(features: Tensor, k: int) -> Tensor:
    """Distance of each row to its ``k``-th nearest other row."""
    radii = []
    for start in range(0, features.shape[0], CHUNK):
        d = torch.cdist(features[start:start + CHUNK], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st smallest is the point itself (0)
    return torch.cat(radii)


def _covered(points: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """For each row of ``points``: does it lie in some ball (``centres``, ``radii``)?"""
    out = []
    for start in range(0, points.shape[0], CHUNK):
        d = torch.cdist(points[start:start + CHUNK], centres)
        out.append((d <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(out)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake [N, D]`` against ``real [M, D]`` feature vectors."""
    if real.shape[0] <= k or fake.shape[0] <= k:
        raise ValueError(f"precision and recall with k = {k} need more than {k} points in each set")
    real, fake = real.double(), fake.double()
    precision = _covered(fake, real, _kth_neighbour_radii(real, k)).double().mean()
    recall = _covered(real, fake, _kth_neighbour_radii(fake, k)).double().mean()
    return float(precision), float(recall)
