"""Where the tests find data: ``$REVKIT_DATA`` when set, else ``<repo>/../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("REVKIT_DATA") or REPO.parent / "shared" / "data")
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"]
needs_mnist = pytest.mark.skipif(
    not all((DATA_ROOT / "MNIST" / "raw" / f).exists() for f in MNIST_FILES),
    reason=f"MNIST is not in {DATA_ROOT} (set REVKIT_DATA)",
)
