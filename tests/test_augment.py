"""Training-time augmentation (``data.shift``): random translations of the training images only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from revkit.data import InMemoryDataset, make_loaders
from revkit.data.augment import ShiftedDataset, check_shift, random_shift
from revkit.data.base import DataInfo, DataSource
from revkit.data.toy2d import Toy2d
from revkit.errors import DataError


def spec(**fields):
    base = {"batch_size": 8, "test_batch_size": 8, "num_workers": 0, "pad": 0}
    return SimpleNamespace(**{**base, **fields})


class Squares(DataSource):
    """Images of one bright pixel at a known place, so a shift can be read off the output."""

    info = DataInfo(shape=(1, 9, 9), classes=2, levels=256, name="squares")

    def __init__(self, n: int = 32):
        x = torch.zeros(n, 1, 9, 9)
        x[:, 0, 4, 4] = 1.0
        self.x, self.y = x, torch.arange(n) % 2

    def dataset(self, split):
        return InMemoryDataset(self.x.clone(), self.y.clone())


def _brightest(img: torch.Tensor) -> tuple[int, int]:
    flat = int(img[0].flatten().argmax())
    return divmod(flat, img.shape[-1])


@settings(max_examples=50, deadline=None)
@given(k=st.integers(0, 3), seed=st.integers(0, 2**31 - 1))
def test_a_shift_moves_the_whole_image_by_at_most_k_pixels_and_fills_zeros(k: int, seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.rand(2, 7, 8) + 1.0                     # no zero inside the image
    y = random_shift(x, k)
    assert y.shape == x.shape
    # find the offset: exactly one (dy, dx) in [-k, k]² reproduces y from x with zero fill
    matches = []
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            expect = torch.zeros_like(x)
            src = x[:, max(0, -dy):x.shape[1] - max(0, dy), max(0, -dx):x.shape[2] - max(0, dx)]
            expect[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
            if torch.equal(expect, y):
                matches.append((dy, dx))
    assert len(matches) == 1


def test_shifts_cover_every_offset_and_only_those() -> None:
    torch.manual_seed(0)
    ds = ShiftedDataset(Squares().dataset("train"), 2)
    seen = {_brightest(ds[0][0]) for _ in range(400)}
    assert seen == {(4 + dy, 4 + dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_only_the_training_split_is_shifted_and_a_seeded_run_repeats_its_shifts() -> None:
    source = Squares()

    def first_epoch(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        torch.manual_seed(seed)
        train, test, info = make_loaders(spec(shift=2), source, seed=0)
        assert info.shape == (1, 9, 9)
        return [b[0] for b in train], [b[0] for b in test]

    train_a, test_a = first_epoch(5)
    train_b, _ = first_epoch(5)
    train_c, _ = first_epoch(6)
    assert all(torch.equal(p, q) for p, q in zip(train_a, train_b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(train_a, train_c, strict=True))
    assert len({_brightest(img) for batch in train_a for img in batch}) > 1
    assert {_brightest(img) for batch in test_a for img in batch} == {(4, 4)}
    # labels travel with their (shifted) images
    labels = torch.cat([b[1] for b in make_loaders(spec(shift=2), source, seed=0)[0]])
    plain = torch.cat([b[1] for b in make_loaders(spec(), source, seed=0)[0]])
    assert torch.equal(labels, plain)


def test_shift_after_pad_keeps_the_padded_shape() -> None:
    train, _, info = make_loaders(spec(pad=2, shift=2), Squares(), seed=0)
    assert info.shape == (1, 13, 13)
    assert next(iter(train))[0].shape == (8, 1, 13, 13)


def test_bad_shifts_are_data_errors_that_say_what_is_allowed() -> None:
    with pytest.raises(DataError, match=r"translates images \(C, H, W\), but 'toy2d' gives per-sample shape \(2,\)"):
        make_loaders(spec(shift=1), Toy2d(n_train=16, n_test=8))
    with pytest.raises(DataError, match="entirely out of view; use a shift smaller than 9"):
        check_shift(9, (1, 9, 9), "squares")
    with pytest.raises(DataError, match="data.shift must be ≥ 0, got -1"):
        ShiftedDataset(Squares().dataset("train"), -1)
    check_shift(0, (2,), "toy2d")                      # no shift: nothing to check
