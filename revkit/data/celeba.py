"""CelebA faces through torchvision's reader, center-cropped to 148 and resized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor
from torch.utils.data import Dataset

from revkit.data.base import DataInfo, DataSource, Split
from revkit.data.fetch import open_or_download
from revkit.data.torchvision_sources import DownloadParams, check_split, torchvision_dataset
from revkit.errors import DataError

CROP = 148
CELEBA_FILES = (
    "img_align_celeba",
    "list_eval_partition.txt",
    "identity_CelebA.txt",
    "list_attr_celeba.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
)


class CelebAParams(DownloadParams):
    size: int = Field(64, ge=1, le=4096, description="side of the square images after the 148×148 center crop")


class CelebAFaces(Dataset[tuple[Tensor, int]]):
    """Items ``(x, 0)`` of a torchvision CelebA split: ``x`` float ``(3, size, size)`` = ``k/255``."""

    def __init__(self, celeba: Any, size: int):
        self.celeba = celeba
        self.size = size

    def __len__(self) -> int:
        return len(self.celeba)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from torchvision.transforms import functional as TF  # torchvision is slow to import

        image, _ = self.celeba[index]  # a PIL image 178×218 (target_type=[] gives no target)
        image = TF.resize(TF.center_crop(image, [CROP, CROP]), [self.size, self.size], antialias=True)
        return TF.pil_to_tensor(image).to(torch.get_default_dtype()) / 255.0, 0


class CelebA(DataSource):
    r"""CelebA aligned faces (162,770 train / 19,962 test), unlabelled, ``(3, size, size)``.

    Each image (178×218) is center-cropped to 148×148 and resized to ``size × size``
    (antialiased), as in the seed paper's 64×64 setting. Images are decoded per item (a JPEG
    each), so use ``data.num_workers`` > 0 for speed. The files live under ``<root>/celeba/``
    in torchvision's layout.

    Args:
        root: the data root (holding ``celeba/``).
        size: output side length.
        download: when files are missing, let torchvision try to download them (needs ``gdown``
            and Google Drive access).
    """

    Params = CelebAParams
    name = "celeba"

    def __init__(self, root: str | Path, size: int = 64, download: bool = True):
        if size < 1:
            raise DataError(f"celeba: size must be ≥ 1, got {size}")
        self.root = Path(root).expanduser()
        self.size = int(size)
        self.download = bool(download)
        self.info = DataInfo(shape=(3, self.size, self.size), classes=0, levels=256, name=self.name)

    def expected_files(self) -> list[str]:
        return [f"celeba/{n}" for n in CELEBA_FILES]

    def dataset(self, split: Split) -> CelebAFaces:
        check_split(self.name, split)
        return CelebAFaces(self._open(split), self.size)

    def _open(self, split: str) -> Any:
        return open_or_download(
            self.name, self.root, self.expected_files(), self.download,
            lambda download: torchvision_dataset("CelebA")(
                str(self.root), split=split, target_type=[], download=download),
        )
