r"""Binarized MNIST: each pixel intensity :math:`p = k/255` becomes a Bernoulli draw :math:`x \sim
\mathrm{Bernoulli}(p)`, the data of VAE likelihood papers (modelled with Bernoulli decoders).

Two binarizations, both read through the ``mnist`` source's files:

* ``"dynamic"`` (default): the training split draws a fresh :math:`x` every time a sample is read,
  so each epoch sees a new binarization (a data augmentation; Salakhutdinov & Murray's protocol).
  The draws use torch's global generator, so a seeded run (and a resumed one, whose checkpoint holds
  the generator's state) sees the same draws.
* ``"fixed"``: one draw per image, made once from ``seed``; every read returns the same bits.

The **test split is always fixed** (a draw from ``seed + 1``), so every evaluation of a run — and
every run with the same ``seed`` — scores the same binary test images.

Items are ``(x, y)`` with ``x`` float ``(1, 28, 28)`` in ``{0, 1}`` and ``y`` the digit label;
:attr:`DataInfo.levels` is 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor
from torch.utils.data import Dataset

from revkit.data.base import DataInfo, Split
from revkit.data.memory import InMemoryDataset
from revkit.data.torchvision_sources import DownloadParams, Mnist, check_split
from revkit.limits import SEED

Binarization = Literal["dynamic", "fixed"]


class BinarizedMnistParams(DownloadParams):
    binarization: Binarization = Field(
        "dynamic",
        description="'dynamic': a fresh Bernoulli draw of the training images at every read (per epoch); "
                    "'fixed': one draw from seed. The test split is always a fixed draw (seed + 1)",
    )
    seed: int = SEED.field(0, "seed of the fixed draws (training split when fixed, test split always)")


def bernoulli_fixed(intensities: Tensor, seed: int) -> Tensor:
    """One seeded Bernoulli draw of ``uint8`` intensities ``k`` with ``P(1) = k/255``, as ``uint8`` 0/1."""
    gen = torch.Generator().manual_seed(seed)
    p = intensities.to(torch.float32) / 255.0
    return torch.bernoulli(p, generator=gen).to(torch.uint8)


class DynamicBinarized(Dataset[tuple[Tensor, int]]):
    r"""``(x, y)`` with :math:`x \sim \mathrm{Bernoulli}(k/255)` drawn anew at every read."""

    def __init__(self, source: InMemoryDataset):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    @property
    def labels(self) -> Tensor:
        """``int64 [N]``, the labels (read without drawing any image)."""
        return self.source.labels

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        p, y = self.source[index]
        return torch.bernoulli(p), y

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        items = self.source.__getitems__(indices)
        p = torch.stack([x for x, _ in items])
        bits = torch.bernoulli(p)
        return list(zip(bits.unbind(0), [y for _, y in items]))


class BinarizedMnist(Mnist):
    """MNIST with binary pixels (see the module docstring): 60,000 train / 10,000 test, ``(1, 28, 28)``."""

    name = "binarized_mnist"
    Params = BinarizedMnistParams

    def __init__(self, root: str | Path, download: bool = True, binarization: Binarization = "dynamic",
                 seed: int = 0):
        super().__init__(root, download)
        self.binarization = binarization
        self.seed = int(seed)
        self.info = DataInfo(shape=self.shape, classes=self.num_classes, levels=2, name=self.name)
        self._binary: dict[str, Dataset[tuple[Tensor, int]]] = {}

    def dataset(self, split: Split) -> Dataset[tuple[Tensor, int]]:  # type: ignore[override]
        check_split(self.name, split)
        if split not in self._binary:
            grey = super().dataset(split)
            if split == "train" and self.binarization == "dynamic":
                self._binary[split] = DynamicBinarized(grey)
            else:
                seed = self.seed if split == "train" else self.seed + 1
                self._binary[split] = InMemoryDataset(bernoulli_fixed(grey.data, seed) * 255, grey.labels)
        return self._binary[split]
