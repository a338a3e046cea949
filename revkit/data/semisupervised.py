r"""Semi-supervised training data: the labels of only ``n`` training images per class are kept.

From a labelled training split of :math:`N` images with labels :math:`y_i ∈ \{0, …, K-1\}`,
:func:`labelled_indices` chooses, for every class :math:`k`, exactly ``n`` of its images: the first
``n`` of class :math:`k` in one seeded random permutation :math:`π` of :math:`\{0, …, N-1\}`
(``torch.randperm`` with a generator seeded by ``data.labels_seed``). So the labelled set
:math:`L` (:math:`|L| = nK`) is balanced, depends only on the labels and the seed (not on
``train.seed``, so runs that differ in their training seed see the same labels), and growing ``n``
keeps the images already chosen.

:class:`SemiSupervised` wraps the split; its items are ``(x_i, y_i)`` for :math:`i ∈ L` and
``(x_i, UNLABELLED)`` (−1) otherwise. Three views of the same choice (``data.*`` keys):

* default: every image, the unlabelled ones marked −1 (hybrid and other semi-supervised objectives);
* ``labelled_only = true``: only the :math:`nK` labelled images (the supervised baseline on the
  same labels);
* ``labelled_repeat = r``: every image, each labelled one listed :math:`r` times per epoch, so a
  batch holds a labelled share of about :math:`rnK / (N + (r-1)nK)` rather than :math:`nK/N`.

The test split is never wrapped: evaluation always sees every label.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from revkit.data.base import UNLABELLED
from revkit.errors import DataError


def split_labels(dataset: Dataset[Any]) -> Tensor:
    """The labels ``int64 [N]`` of a dataset of ``(x, y)`` items: its ``labels`` tensor when it holds
    one (the in-memory sources), else read item by item.

    Raises:
        DataError: an item is not an ``(x, y)`` pair (a two-domain source yields four entries).
    """
    n = len(dataset)  # type: ignore[arg-type]
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, Tensor) and labels.dim() == 1 and labels.shape[0] == n:
        return labels.long()
    out = []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            size = len(item) if isinstance(item, tuple | list) else 1
            raise DataError(f"data.labels_per_class needs a source of (x, y) items; this one yields {size} "
                            "entries per item (a two-domain source); leave data.labels_per_class out")
        out.append(int(item[1]))
    return torch.tensor(out, dtype=torch.long)


def labelled_indices(labels: Tensor, per_class: int, classes: int, seed: int = 0) -> Tensor:
    """The sorted indices ``int64 [per_class · classes]`` of the images whose labels are kept:
    for each class, the first ``per_class`` of its images in a random permutation seeded by ``seed``.

    Raises:
        DataError: ``per_class < 1``, ``classes < 1``, or a class with fewer than ``per_class`` images.
    """
    if per_class < 1:
        raise DataError(f"data.labels_per_class must be ≥ 1, got {per_class}")
    if classes < 1:
        raise DataError("data.labels_per_class needs labelled data, but the source has no classes")
    labels = labels.long().reshape(-1)
    order = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(int(seed)))
    shuffled = labels[order]
    chosen = []
    for k in range(classes):
        members = order[shuffled == k]
        if members.shape[0] < per_class:
            raise DataError(f"data.labels_per_class = {per_class}, but class {k} has only {members.shape[0]} "
                            f"training images; allowed: 1 … {members.shape[0]} for these data")
        chosen.append(members[:per_class])
    return torch.sort(torch.cat(chosen)).values


class SemiSupervised(Dataset[tuple[Tensor, int]]):
    """A training split whose labels outside ``labelled`` are withheld (see the module).

    Args:
        dataset: the split, ``(x, y)`` items.
        labelled: indices (into ``dataset``) of the images that keep their labels.
        labelled_only: list only the labelled images.
        repeat: list each labelled image this many times (≥ 1; with ``labelled_only`` it must be 1).
        labels: the split's labels, when the caller has read them already (else :func:`split_labels`).

    Attributes:
        labels: ``int64 [len(self)]``, the label of each item (:data:`~revkit.data.base.UNLABELLED`
            where withheld).
    """

    def __init__(self, dataset: Dataset[Any], labelled: Tensor, labelled_only: bool = False, repeat: int = 1,
                 labels: Tensor | None = None):
        if repeat < 1:
            raise DataError(f"data.labelled_repeat must be ≥ 1, got {repeat}")
        if labelled_only and repeat != 1:
            raise DataError("data.labelled_repeat oversamples the labelled images among the unlabelled ones; "
                            "with data.labelled_only = true there are none: leave labelled_repeat out")
        self.dataset = dataset
        n = len(dataset)  # type: ignore[arg-type]
        labelled = labelled.long().reshape(-1)
        keep = torch.zeros(n, dtype=torch.bool)
        keep[labelled] = True
        full = split_labels(dataset) if labels is None else labels.long().reshape(-1)
        if full.shape[0] != n:
            raise DataError(f"{full.shape[0]} labels for a split of {n} images")
        masked = torch.where(keep, full, torch.full_like(full, UNLABELLED))
        if labelled_only:
            self.index = labelled.clone()
        else:
            self.index = torch.cat([torch.arange(n), labelled.repeat(repeat - 1)])
        self.labels = masked[self.index]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = self.dataset[int(self.index[index])][0]
        return x, int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        inner = self.index[torch.as_tensor(indices, dtype=torch.long)].tolist()
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(inner) if getitems is not None else [self.dataset[i] for i in inner]
        return [(item[0], int(self.labels[i])) for item, i in zip(items, indices)]


def semi_supervised(dataset: Dataset[Any], classes: int, per_class: int, seed: int = 0,
                    labelled_only: bool = False, repeat: int = 1) -> SemiSupervised:
    """``dataset`` with the labels of ``per_class`` images per class kept (:func:`labelled_indices`)."""
    labels = split_labels(dataset)
    return SemiSupervised(dataset, labelled_indices(labels, per_class, classes, seed),
                          labelled_only=labelled_only, repeat=repeat, labels=labels)


__all__ = ["SemiSupervised", "labelled_indices", "semi_supervised", "split_labels"]
