"""Generated two-dimensional data sets for quick experiments and tests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from revkit.data.base import DataInfo, DataParams, DataSource, Split
from revkit.data.memory import InMemoryDataset
from revkit.data.torchvision_sources import check_split
from revkit.errors import DataError
from revkit.limits import MAX_GENERATED_POINTS, SEED, check_memory

ToyName = Literal["moons", "circles", "checkerboard", "8gaussians"]
TOY_NAMES: tuple[str, ...] = ("moons", "circles", "checkerboard", "8gaussians")


class Toy2dParams(DataParams):
    name: ToyName = Field("moons", description="which generator")
    n_train: int = Field(10000, ge=1, le=MAX_GENERATED_POINTS, description="number of training points")
    n_test: int = Field(2000, ge=1, le=MAX_GENERATED_POINTS, description="number of test points")
    noise: float = Field(0.05, ge=0.0, description="std of the Gaussian noise added to every point")
    seed: int = SEED.field(0, "seed of the generator (train and test points differ)")


def moons(n: int, g: torch.Generator) -> Tensor:
    """Two interleaved half circles of radius 1: ``(cos t, sin t)`` and ``(1 - cos t, 1/2 - sin t)``,
    ``t ~ U[0, π]``, half the points each."""
    upper = n // 2
    t = math.pi * torch.rand(n, generator=g)
    x = torch.stack([t.cos(), t.sin()], dim=1)
    x[upper:] = torch.tensor([1.0, 0.5]) - x[upper:]
    return x


def circles(n: int, g: torch.Generator) -> Tensor:
    """Two concentric circles of radii 1 and 1/2, uniform angle, half the points each."""
    t = 2 * math.pi * torch.rand(n, generator=g)
    radius = torch.where(torch.arange(n) < n // 2, 1.0, 0.5)
    return radius[:, None] * torch.stack([t.cos(), t.sin()], dim=1)


def checkerboard(n: int, g: torch.Generator) -> Tensor:
    """Uniform on the 8 "black" unit squares of a 4×4 board on ``[-2, 2]²`` (those whose
    integer corner ``(i, j)`` has ``i + j`` even)."""
    cells = torch.tensor([(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0],
                         dtype=torch.get_default_dtype())
    which = torch.randint(0, len(cells), (n,), generator=g)
    return cells[which] + torch.rand(n, 2, generator=g)


def eight_gaussians(n: int, g: torch.Generator) -> Tensor:
    """Points at one of 8 centres ``2·(cos kπ/4, sin kπ/4)``, chosen uniformly (the spread is the
    ``noise`` added by the caller)."""
    k = torch.randint(0, 8, (n,), generator=g).to(torch.get_default_dtype())
    angle = k * math.pi / 4
    return 2.0 * torch.stack([angle.cos(), angle.sin()], dim=1)


GENERATORS = {"moons": moons, "circles": circles, "checkerboard": checkerboard, "8gaussians": eight_gaussians}


class Toy2d(DataSource):
    r"""A generated 2-D point cloud: ``x`` of shape ``(2,)``, labels 0, continuous (``levels=None``).

    Every generator's points get isotropic Gaussian noise of std ``noise``; points are shuffled.
    Train and test points come from one seeded generator (train first), so they differ and are
    reproducible. Nothing is read from disk.

    Args:
        root: ignored (``needs_root`` is False).
        name: ``"moons"``, ``"circles"``, ``"checkerboard"`` or ``"8gaussians"``.
        n_train, n_test: number of points per split.
        noise: std of the added noise.
        seed: generator seed.
    """

    Params = Toy2dParams
    needs_root = False

    def __init__(self, root: str | Path | None = None, name: str = "moons", n_train: int = 10000,
                 n_test: int = 2000, noise: float = 0.05, seed: int = 0):
        if name not in GENERATORS:
            raise DataError(f"toy2d: name must be one of {', '.join(TOY_NAMES)}, got {name!r}")
        if n_train < 1 or n_test < 1:
            raise DataError(f"toy2d: n_train and n_test must be ≥ 1, got {n_train} and {n_test}")
        if noise < 0:
            raise DataError(f"toy2d: noise must be ≥ 0, got {noise}")
        self.generator_name, self.n_train, self.n_test = name, int(n_train), int(n_test)
        self.noise, self.seed = float(noise), int(seed)
        self.info = DataInfo(shape=(2,), classes=0, levels=None, name="toy2d")
        self._cache: dict[str, InMemoryDataset] = {}

    def _generate(self) -> None:
        # the points, their noise, a permutation and labels: about 6 numbers of 4–8 bytes per point
        check_memory(48.0 * (self.n_train + self.n_test), "data.n_train, data.n_test",
                     f"generating {self.n_train:,} + {self.n_test:,} toy2d points")
        g = torch.Generator().manual_seed(self.seed)
        for split, n in (("train", self.n_train), ("test", self.n_test)):
            x = GENERATORS[self.generator_name](n, g)
            x = x + self.noise * torch.randn(x.shape, generator=g)
            x = x[torch.randperm(n, generator=g)]
            self._cache[split] = InMemoryDataset(x, torch.zeros(n, dtype=torch.long))

    def dataset(self, split: Split) -> InMemoryDataset:
        check_split("toy2d", split)
        if not self._cache:
            self._generate()
        return self._cache[split]
