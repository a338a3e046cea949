"""Shared test configuration: hypothesis profiles and the data folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from mnist_paths import DATA_ROOT

# CI runs are reproducible (derandomize) and print a blob to replay any failure locally.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def float64() -> Iterator[None]:
    """Run the test with float64 as torch's default dtype and a seeded generator, then restore."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def data_root() -> Path:
    """Where data sets live: ``$REVKIT_DATA`` when set, else ``<repo>/../shared/data``."""
    return DATA_ROOT
