"""A map-style dataset over tensors held in memory (the whole split, loaded once)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from revkit.errors import DataError


class InMemoryDataset(Dataset[tuple[Tensor, int]]):
    r"""``(x, y)`` pairs from a data tensor ``[N, *shape]`` and labels ``[N]``.

    8-bit data are kept as ``uint8`` (4× less memory than float) and converted per access to
    :math:`x = k/255` in the default float dtype; float data are returned as they are. Batched
    access (``__getitems__``, which :class:`torch.utils.data.DataLoader` uses) converts a whole
    batch at once, which is much faster than per-item transforms.
    """

    def __init__(self, data: Tensor, labels: Tensor):
        if data.shape[0] != labels.shape[0]:
            raise DataError(f"{data.shape[0]} data items but {labels.shape[0]} labels")
        self.data = data
        self.labels = labels.long()

    def _convert(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            return x.to(torch.get_default_dtype()) / 255.0
        return x

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._convert(self.data[index]), int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        xs = self._convert(self.data[idx])
        return list(zip(xs.unbind(0), self.labels[idx].tolist()))
