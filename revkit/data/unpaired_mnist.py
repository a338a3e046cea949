r"""Two unpaired image domains made offline from MNIST, for translation (``unpaired_mnist``).

Each split's images are cut in two halves by a seeded permutation: domain A is the first half as it is,
domain B the second half transformed by ``transform``:

* ``"invert"``: :math:`x \mapsto 1 - x` (white digits on black become black on white);
* ``"rotate90"``: a quarter turn counter-clockwise;
* ``"thicken"``: a 3×3 grey-scale dilation (the maximum over each pixel's neighbourhood), thicker strokes.

Every transform maps the grid :math:`k/255` to itself, so the data stay 8-bit (``levels = 256``). No
image appears in both domains, and no B image is the transform of an A image: the domains are unpaired.
Item ``i`` is ``(x_A, y_A, x_B, y_B)``: A's ``i``-th image and B's image at a second seeded permutation
of ``i`` (so which B image comes with which A image carries no information either); the split's length
is the smaller half's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.utils.data import Dataset

from revkit.data.base import DataInfo, DataSource, Split
from revkit.data.memory import InMemoryDataset
from revkit.data.torchvision_sources import DownloadParams, Mnist
from revkit.limits import SEED

Transform = Literal["invert", "rotate90", "thicken"]


class UnpairedMnistParams(DownloadParams):
    transform: Transform = Field("invert", description="what makes domain B: 'invert', 'rotate90' or 'thicken'")
    seed: int = SEED.field(0, "seed of the split into halves and of the B order")


def transform_images(images: Tensor, transform: str) -> Tensor:
    """``images`` ``uint8 [N, 1, H, W]`` (or float) under the domain-B transform (same dtype)."""
    if transform == "invert":
        return 255 - images if images.dtype == torch.uint8 else 1.0 - images
    if transform == "rotate90":
        return torch.rot90(images, 1, dims=(-2, -1)).contiguous()
    if transform == "thicken":
        dilated = F.max_pool2d(images.float(), kernel_size=3, stride=1, padding=1)
        return dilated.to(images.dtype)
    raise ValueError(f"unknown transform {transform!r}; allowed: invert, rotate90, thicken")


class TwoDomainDataset(Dataset[tuple[Tensor, int, Tensor, int]]):
    """Items ``(x_A, y_A, x_B, y_B)`` from two datasets of ``(x, y)`` and a fixed pairing order ``b_index``."""

    def __init__(self, a: InMemoryDataset, b: InMemoryDataset, b_index: Tensor):
        self.a, self.b, self.b_index = a, b, b_index.long()

    def __len__(self) -> int:
        return min(len(self.a), len(self.b))

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor, int]:
        x_a, y_a = self.a[index]
        x_b, y_b = self.b[int(self.b_index[index])]
        return x_a, y_a, x_b, y_b

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int, Tensor, int]]:
        a = self.a.__getitems__(indices)
        b = self.b.__getitems__([int(self.b_index[i]) for i in indices])
        return [(xa, ya, xb, yb) for (xa, ya), (xb, yb) in zip(a, b)]


class UnpairedMnist(DataSource):
    """MNIST as two unpaired domains A (as is) and B (transformed); see the module. Items ``(x_A, y_A, x_B, y_B)``,
    images ``(1, 28, 28)`` with values ``k/255``, 10 classes."""

    Params = UnpairedMnistParams

    def __init__(self, root: str | Path, download: bool = True, transform: Transform = "invert", seed: int = 0):
        self.mnist = Mnist(root, download=download)
        self.transform, self.seed = str(transform), int(seed)
        transform_images(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), self.transform)  # an unknown name fails here
        self.info = DataInfo(shape=(1, 28, 28), classes=10, levels=256, name="unpaired_mnist")
        self._cache: dict[str, TwoDomainDataset] = {}

    def dataset(self, split: Split) -> TwoDomainDataset:
        if split not in self._cache:
            whole = self.mnist.dataset(split)
            n = len(whole)
            g = torch.Generator().manual_seed(self.seed + (0 if split == "train" else 1))
            order = torch.randperm(n, generator=g)
            half_a, half_b = order[: n // 2], order[n // 2:]
            a = InMemoryDataset(whole.data[half_a], whole.labels[half_a])
            b = InMemoryDataset(transform_images(whole.data[half_b], self.transform), whole.labels[half_b])
            pairing = torch.randperm(len(b), generator=g)[: len(a)]
            self._cache[split] = TwoDomainDataset(a, b, pairing)
        return self._cache[split]
