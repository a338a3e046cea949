r"""The data-source contract.

A registered data source yields ``(x, y)`` pairs: ``x`` a float tensor of per-sample shape
:attr:`DataInfo.shape` (images as ``(C, H, W)`` with intensities in ``[0, 1]``, i.e. ``k/255``
for 8-bit data), ``y`` an integer class label (0 for a source without labels, whose
:attr:`DataInfo.classes` is 0).

Semi-supervised training (``data.labels_per_class``, :mod:`revkit.data.semisupervised`) withholds the
labels of most training images of a labelled source: such an image's ``y`` is :data:`UNLABELLED`
(−1), never a class. Only the loaders mark images so; a source itself always yields its labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from torch.utils.data import Dataset

from revkit.invertible import Shape

Split = Literal["train", "test"]

ENV_DATA = "REVKIT_DATA"

#: the label of a training image whose label was withheld (semi-supervised data): not a class.
UNLABELLED = -1


class DataParams(BaseModel):
    """Base of every data source's own parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class DataInfo:
    """What the model and objective need to know about the data.

    Attributes:
        shape: per-sample shape after the source's transforms (``(C, H, W)`` or ``(D,)``).
        classes: number of classes (0 when there are no labels).
        levels: number of discrete intensity levels (256 for 8-bit images), or None for
            continuous data; the likelihood objective dequantizes and counts bits/dim from it.
        name: the registered name of the source.
    """

    shape: Shape
    classes: int
    levels: int | None
    name: str


class DataSource:
    """Base class of registered data sources.

    Subclasses take ``root`` (a folder, already resolved) and their own parameters as keywords,
    declare them as ``Params``, set :attr:`info`, and implement :meth:`dataset`.
    """

    Params: ClassVar[type[DataParams]] = DataParams
    #: the source reads files (so it needs a root folder).
    needs_root: ClassVar[bool] = True

    info: DataInfo

    def dataset(self, split: Split) -> Dataset:
        """The ``train`` or ``test`` split as a map-style dataset of ``(x, y)`` pairs."""
        raise NotImplementedError


def default_root() -> Path:
    """The data root when the spec names none: ``$REVKIT_DATA``, else a per-user cache folder."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "revkit" / "data"
