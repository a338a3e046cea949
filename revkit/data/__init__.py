"""Data sources (``(x, y)`` pairs plus :class:`DataInfo`) and the loaders built from the spec."""

from revkit.data.base import DataInfo, DataParams, DataSource, default_root
from revkit.data.binarized_mnist import BinarizedMnist
from revkit.data.celeba import CelebA
from revkit.data.image_folder import ImageFolder
from revkit.data.loaders import make_loaders, padded_info
from revkit.data.memory import InMemoryDataset
from revkit.data.toy2d import Toy2d
from revkit.data.torchvision_sources import Cifar10, FashionMnist, Mnist

__all__ = [
    "BinarizedMnist",
    "CelebA",
    "Cifar10",
    "DataInfo",
    "DataParams",
    "DataSource",
    "FashionMnist",
    "ImageFolder",
    "InMemoryDataset",
    "Mnist",
    "Toy2d",
    "default_root",
    "make_loaders",
    "padded_info",
]
