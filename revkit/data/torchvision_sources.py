"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's readers, held in memory as ``uint8``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from revkit.data.base import DataInfo, DataParams, DataSource, Split
from revkit.data.fetch import open_or_download
from revkit.data.memory import InMemoryDataset
from revkit.errors import DataError

SPLITS = ("train", "test")


class DownloadParams(DataParams):
    download: bool = Field(
        True, description="when the files are missing, let torchvision try to download them"
    )


def check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"{name}: split must be 'train' or 'test', got {split!r}")


def torchvision_dataset(class_name: str) -> Any:
    """The class ``torchvision.datasets.<class_name>``, imported on first use."""
    return getattr(importlib.import_module("torchvision.datasets"), class_name)


class TorchvisionImages(DataSource):
    """Base of the sources read with a torchvision dataset class that holds the whole split.

    Construction reads nothing. :meth:`dataset` reads the split once (torchvision, with
    ``download=False``); when files are missing and ``download`` is true it tries torchvision's
    download, and when that fails too it raises :class:`DataError` naming the folder and files.
    Items are ``(x, y)``: ``x`` float ``(C, H, W)`` with values ``k/255``, ``y`` the class label.
    """

    Params = DownloadParams
    #: registered name, the class in ``torchvision.datasets`` (imported only when data are read:
    #: torchvision takes seconds to import), per-sample shape, number of classes.
    name: ClassVar[str]
    torchvision_class: ClassVar[str]
    shape: ClassVar[tuple[int, int, int]]
    num_classes: ClassVar[int] = 10

    def __init__(self, root: str | Path, download: bool = True):
        self.root = Path(root).expanduser()
        self.download = bool(download)
        self.info = DataInfo(shape=self.shape, classes=self.num_classes, levels=256, name=self.name)
        self._cache: dict[str, InMemoryDataset] = {}

    def expected_files(self) -> list[str]:
        """The files (relative to ``root``) that the torchvision reader needs."""
        raise NotImplementedError

    def _tensors(self, ds: Any) -> tuple[Tensor, Tensor]:
        """``uint8 [N, C, H, W]`` images and ``int64 [N]`` labels of a torchvision dataset."""
        raise NotImplementedError

    def split_files(self, train: bool) -> list[str]:
        """The files (relative to ``root``) a split is read from, named when they do not match."""
        return self.expected_files()

    def dataset(self, split: Split) -> InMemoryDataset:
        check_split(self.name, split)
        if split not in self._cache:
            images, labels = self._tensors(self._open(split == "train"))
            if len(images) != len(labels):
                files = self.split_files(split == "train")
                raise DataError(
                    f"{self.name}: the {split} split's files do not match: {' and '.join(str(self.root / f) for f in files)} "
                    f"hold {len(images):,} images and {len(labels):,} labels; each image needs one label (replace "
                    "the damaged file, or delete both so they are fetched again)")
            self._cache[split] = InMemoryDataset(images, labels)
        return self._cache[split]

    def _open(self, train: bool) -> Any:
        return open_or_download(
            self.name, self.root, self.expected_files(), self.download,
            lambda download: torchvision_dataset(self.torchvision_class)(
                str(self.root), train=train, download=download),
        )


class _IdxImages(TorchvisionImages):
    """The MNIST family: IDX files under ``<root>/<Class>/raw``."""

    def expected_files(self) -> list[str]:
        folder = f"{self.torchvision_class}/raw"
        names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        return [f"{folder}/{n}" for n in names]

    def split_files(self, train: bool) -> list[str]:
        files = self.expected_files()
        return files[:2] if train else files[2:]

    def _tensors(self, ds: Any) -> tuple[Tensor, Tensor]:
        return ds.data.unsqueeze(1).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)


class Mnist(_IdxImages):
    """MNIST handwritten digits: 60,000 train / 10,000 test images ``(1, 28, 28)``, 10 classes."""

    name = "mnist"
    torchvision_class = "MNIST"
    shape = (1, 28, 28)


class FashionMnist(_IdxImages):
    """Fashion-MNIST: 60,000 train / 10,000 test clothing images ``(1, 28, 28)``, 10 classes."""

    name = "fashion_mnist"
    torchvision_class = "FashionMNIST"
    shape = (1, 28, 28)


class Cifar10(TorchvisionImages):
    """CIFAR-10: 50,000 train / 10,000 test colour images ``(3, 32, 32)``, 10 classes."""

    name = "cifar10"
    torchvision_class = "CIFAR10"
    shape = (3, 32, 32)

    def expected_files(self) -> list[str]:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        return [f"cifar-10-batches-py/{n}" for n in names]

    def _tensors(self, ds: Any) -> tuple[Tensor, Tensor]:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC → NCHW
        return images, torch.as_tensor(ds.targets, dtype=torch.long)
