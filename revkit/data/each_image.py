"""A dataset wrapper that maps every image of every item: the shared mechanism of padding
(:class:`revkit.data.loaders.PaddedDataset`) and augmentation (:class:`revkit.data.augment.ShiftedDataset`)."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.utils.data import Dataset


class EachImage(Dataset[tuple[Tensor, int]]):
    """Wraps a dataset and applies :meth:`image` to each image ``(C, H, W)`` of an item (``(x, y)``, or
    ``(x_A, y_A, x_B, y_B)`` of a two-domain source); labels and other values pass through. Batched reads
    (``__getitems__``) go to the wrapped dataset's own when it has one."""

    def __init__(self, dataset: Dataset[tuple[Tensor, int]]):
        self.dataset = dataset

    def image(self, x: Tensor) -> Tensor:
        """The image as read; subclasses transform it."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _item(self, item: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(self.image(v) if isinstance(v, Tensor) and v.dim() == 3 else v for v in item)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._item(self.dataset[index])  # type: ignore[return-value]

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        return [self._item(item) for item in items]  # type: ignore[misc]


__all__ = ["EachImage"]
