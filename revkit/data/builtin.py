"""Internal plugin: registers the built-in data sources."""

from __future__ import annotations

from revkit.data.binarized_mnist import BinarizedMnist
from revkit.data.celeba import CelebA
from revkit.data.image_folder import ImageFolder
from revkit.data.toy2d import Toy2d
from revkit.data.torchvision_sources import Cifar10, FashionMnist, Mnist
from revkit.data.unpaired_mnist import UnpairedMnist
from revkit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_datasets(register: Register) -> None:
    register("mnist", Mnist)
    register("binarized_mnist", BinarizedMnist)
    register("fashion_mnist", FashionMnist)
    register("cifar10", Cifar10)
    register("celeba", CelebA)
    register("image_folder", ImageFolder)
    register("toy2d", Toy2d)
    register("unpaired_mnist", UnpairedMnist)
