"""Data loaders from the ``[data]`` spec: padding, batch sizes, seeded shuffling, and the labels kept
for semi-supervised training (:mod:`revkit.data.semisupervised`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from revkit.data.augment import ShiftedDataset, check_shift
from revkit.data.base import DataInfo, DataSource
from revkit.data.each_image import EachImage
from revkit.data.semisupervised import semi_supervised
from revkit.errors import DataError


def padded_info(info: DataInfo, pad: int) -> DataInfo:
    """``info`` after zero-padding images by ``pad`` pixels on each side: ``(C, H, W)`` →
    ``(C, H + 2·pad, W + 2·pad)``. ``pad = 0`` returns ``info`` unchanged."""
    if pad < 0:
        raise DataError(f"data.pad must be ≥ 0, got {pad}")
    if pad == 0:
        return info
    if len(info.shape) != 3:
        raise DataError(f"data.pad = {pad} pads images (C, H, W), but '{info.name}' gives per-sample "
                        f"shape {tuple(info.shape)}; set data.pad = 0")
    c, h, w = info.shape
    return dataclasses.replace(info, shape=(c, h + 2 * pad, w + 2 * pad))


class PaddedDataset(EachImage):
    """Wraps a dataset of images ``(C, H, W)`` and zero-pads each by ``pad`` pixels on every side."""

    def __init__(self, dataset: Dataset[tuple[Tensor, int]], pad: int):
        super().__init__(dataset)
        self.pad = int(pad)

    def image(self, x: Tensor) -> Tensor:
        return F.pad(x, (self.pad,) * 4)


def _field(spec: Any, name: str) -> Any:
    try:
        return getattr(spec, name)
    except AttributeError:
        raise DataError(f"the data spec has no field '{name}'") from None


def make_loaders(
    data_spec: Any, source: DataSource, seed: int = 0
) -> tuple[DataLoader, DataLoader, DataInfo]:
    """``(train_loader, test_loader, info)`` for a data source and the ``[data]`` spec.

    Reads ``data_spec.batch_size``, ``test_batch_size``, ``num_workers`` and ``pad``. The train
    loader shuffles with a generator seeded by ``seed`` and drops the last incomplete batch (so
    every step sees ``batch_size`` samples); the test loader keeps the order and every sample.
    Images are zero-padded by ``pad`` pixels on each side; ``info`` is the padded shape's. With
    ``data_spec.shift = k`` (optional) each training image is then translated at random by up to ``k``
    pixels (:mod:`revkit.data.augment`); the test split is never augmented.

    With ``data_spec.labels_per_class = n`` (optional, like ``labels_seed``, ``labelled_only`` and
    ``labelled_repeat``) the training split keeps the labels of ``n`` images per class and marks the
    others :data:`~revkit.data.base.UNLABELLED` (:func:`~revkit.data.semisupervised.semi_supervised`);
    the test split keeps every label.
    """
    batch_size = int(_field(data_spec, "batch_size"))
    test_batch_size = int(_field(data_spec, "test_batch_size"))
    num_workers, pad = int(_field(data_spec, "num_workers")), int(_field(data_spec, "pad"))
    if batch_size < 1 or test_batch_size < 1:
        raise DataError(f"data.batch_size and data.test_batch_size must be ≥ 1, got {batch_size} "
                        f"and {test_batch_size}")
    if num_workers < 0:
        raise DataError(f"data.num_workers must be ≥ 0, got {num_workers}")
    info = padded_info(source.info, pad)
    train, test = source.dataset("train"), source.dataset("test")
    per_class = getattr(data_spec, "labels_per_class", None)
    if per_class is not None:
        train = semi_supervised(train, source.info.classes, int(per_class), int(getattr(data_spec, "labels_seed", 0)),
                                labelled_only=bool(getattr(data_spec, "labelled_only", False)),
                                repeat=int(getattr(data_spec, "labelled_repeat", 1)))
    elif getattr(data_spec, "labelled_only", False) or int(getattr(data_spec, "labelled_repeat", 1)) != 1:
        raise DataError("data.labelled_only and data.labelled_repeat choose among the labelled images of "
                        "data.labels_per_class; set labels_per_class (e.g. 100) or leave them out")
    if pad:
        train, test = PaddedDataset(train, pad), PaddedDataset(test, pad)
    shift = int(getattr(data_spec, "shift", 0))
    check_shift(shift, info.shape, info.name)
    if shift:
        train = ShiftedDataset(train, shift)
    n_train = len(train)  # type: ignore[arg-type]
    if n_train < batch_size:
        only = " labelled (data.labelled_only)" if getattr(data_spec, "labelled_only", False) else ""
        raise DataError(f"data.batch_size = {batch_size} is larger than the {n_train}{only} training samples of "
                        f"'{info.name}'; with the last incomplete batch dropped no batch would remain")
    common: dict[str, Any] = {"num_workers": num_workers, "persistent_workers": num_workers > 0}
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True,
                              generator=torch.Generator().manual_seed(seed), **common)
    test_loader = DataLoader(test, batch_size=test_batch_size, shuffle=False, drop_last=False, **common)
    return train_loader, test_loader, info
