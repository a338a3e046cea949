"""A folder of your own images, optionally one subfolder per class."""

from __future__ import annotations

import struct

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import Field
from torch import Tensor

from revkit.data.base import DataInfo, DataParams, DataSource, Split
from revkit.data.memory import InMemoryDataset
from revkit.data.torchvision_sources import check_split
from revkit.errors import DataError
from revkit.limits import SEED


class ImageFolderParams(DataParams):
    size: int = Field(
        64, ge=1, le=4096, description="side of the square images (shorter side resized, then center-cropped)"
    )
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the images held out as the test "
                                 "split when the folder has no train/ and test/ subfolders")
    seed: int = SEED.field(0, "seed of the train/test assignment")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def load_rgb(path: Path, size: int) -> Tensor:
    """Read one image as ``uint8 (3, size, size)``: shorter side resized to ``size`` (antialiased),
    then center-cropped. Raises :class:`DataError` naming the file if it is not an image."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            if (w, h) != (size, size):
                nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
                im = im.resize((nw, nh), Image.Resampling.LANCZOS)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
            array = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error,
            Image.DecompressionBombError) as exc:  # PIL's decoders raise SyntaxError for a broken PNG chunk
        raise DataError(f"image_folder: {path} is not a readable image ({exc}); remove it from the "
                        "folder (files whose names start with '.' are ignored)") from exc
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class ImageFolder(DataSource):
    r"""Every image under ``root`` (recursively), as ``(3, size, size)`` floats ``k/255``.

    Layout: when ``root`` holds ``train/`` and ``test/`` folders, they are the two splits;
    otherwise all images are split at random (seeded) with ``test_fraction`` of them in ``test``.
    Class labels come from the first level of subfolders (of the split folder, or of ``root``),
    sorted by name: ``cats/…`` → 0, ``dogs/…`` → 1; without subfolders every label is 0 and
    ``info.classes`` is 0. With subfolders every image must lie inside one of them. Hidden
    files (``.name``) are ignored; any other file that is not an image is a :class:`DataError`.

    Construction reads nothing; ``info`` lists the subfolder names on first use (to count the
    classes) and :meth:`dataset` decodes the split's images once and keeps them in memory as
    ``uint8`` — meant for pre-resized images.

    Args:
        root: the image folder.
        size: side of the output images.
        test_fraction: share held out for ``test`` when there are no ``train/``/``test/`` folders.
        seed: seed of that random assignment.
    """

    Params = ImageFolderParams
    name = "image_folder"

    def __init__(self, root: str | Path, size: int = 64, test_fraction: float = 0.1, seed: int = 0):
        if size < 1:
            raise DataError(f"image_folder: size must be ≥ 1, got {size}")
        if not 0.0 <= test_fraction < 1.0:
            raise DataError(f"image_folder: test_fraction must lie in [0, 1), got {test_fraction}")
        self.root = Path(root).expanduser()
        self.size = int(size)
        self.test_fraction = float(test_fraction)
        self.seed = int(seed)
        self._info: DataInfo | None = None
        self._cache: dict[str, InMemoryDataset] = {}

    # -- layout --------------------------------------------------------------------------------
    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"image_folder: {self.root} is not a folder; set data.root to the folder "
                            "that holds the images")

    def _has_split_folders(self) -> bool:
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    def _class_folder(self) -> Path:
        return self.root / "train" if self._has_split_folders() else self.root

    def class_names(self) -> list[str]:
        """The class subfolder names, sorted (empty when the images are not in class folders)."""
        self._check_root()
        return sorted(p.name for p in self._class_folder().iterdir() if p.is_dir() and _visible(p))

    @property
    def info(self) -> DataInfo:  # type: ignore[override]  # computed lazily: construction reads nothing
        if self._info is None:
            self._info = DataInfo(shape=(3, self.size, self.size), classes=len(self.class_names()),
                                  levels=256, name=self.name)
        return self._info

    def _files(self, folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
        """``(file, label)`` for every visible file under ``folder``, sorted by path."""
        index = {name: i for i, name in enumerate(classes)}
        found: list[tuple[Path, int]] = []
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if not path.is_file() or not all(_visible(Path(part)) for part in rel.parts):
                continue
            if not classes:
                found.append((path, 0))
            elif len(rel.parts) > 1 and rel.parts[0] in index:
                found.append((path, index[rel.parts[0]]))
            else:
                raise DataError(f"image_folder: {path} is not inside a class folder; with class subfolders "
                                f"({', '.join(classes)}) every image must lie in one of them")
        return found

    def split_files(self, split: Split) -> list[tuple[Path, int]]:
        """The ``(file, label)`` pairs of one split (lists files, reads none)."""
        check_split(self.name, split)
        classes = self.class_names()
        if self._has_split_folders():
            files = self._files(self.root / split, classes)
        else:
            every = self._files(self.root, classes)
            order = torch.randperm(len(every), generator=torch.Generator().manual_seed(self.seed)).tolist()
            n_test = round(self.test_fraction * len(every))
            chosen = sorted(order[:n_test]) if split == "test" else sorted(order[n_test:])
            files = [every[i] for i in chosen]
        if not files and (split == "train" or self.test_fraction > 0 or self._has_split_folders()):
            raise DataError(f"image_folder: no images for the {split} split in {self.root}")
        return files

    def dataset(self, split: Split) -> InMemoryDataset:
        if split not in self._cache:
            files = self.split_files(split)
            images = torch.stack([load_rgb(path, self.size) for path, _ in files]) if files else \
                torch.empty(0, 3, self.size, self.size, dtype=torch.uint8)
            labels = torch.tensor([label for _, label in files], dtype=torch.long)
            self._cache[split] = InMemoryDataset(images, labels)
        return self._cache[split]
