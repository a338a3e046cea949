"""binarized_mnist: binary pixels drawn with P(1) = k/255; dynamic draws change between reads (epochs),
fixed draws are reproducible from the seed; the test split is always fixed."""

from __future__ import annotations

import pytest
import torch
from mnist_paths import DATA_ROOT, needs_mnist
from torch.utils.data import DataLoader

from revkit.data import BinarizedMnist, DataInfo, InMemoryDataset
from revkit.data.binarized_mnist import DynamicBinarized, bernoulli_fixed
from revkit.plugins import get_registries


def test_registered_with_binary_levels():
    assert get_registries().datasets.get("binarized_mnist") is BinarizedMnist
    assert BinarizedMnist(root=DATA_ROOT).info == DataInfo(shape=(1, 28, 28), classes=10, levels=2,
                                                           name="binarized_mnist")


def test_fixed_draw_follows_the_intensities_and_the_seed():
    k = torch.tensor([0, 255, 128] * 20_000, dtype=torch.uint8)
    bits = bernoulli_fixed(k, seed=3)
    assert bits[k == 0].sum() == 0 and (bits[k == 255] == 1).all()
    assert abs(bits[k == 128].float().mean().item() - 128 / 255) < 0.01
    assert torch.equal(bits, bernoulli_fixed(k, seed=3))
    assert not torch.equal(bits, bernoulli_fixed(k, seed=4))


def _first(ds, n=64):
    return torch.stack([x for x, _ in ds.__getitems__(list(range(n)))])


@pytest.fixture(scope="module")
def dynamic() -> BinarizedMnist:
    return BinarizedMnist(root=DATA_ROOT, download=False, binarization="dynamic", seed=7)


@pytest.fixture(scope="module")
def fixed() -> BinarizedMnist:
    return BinarizedMnist(root=DATA_ROOT, download=False, binarization="fixed", seed=7)


@needs_mnist
def test_dynamic_training_images_change_between_reads_and_stay_binary(dynamic):
    train = dynamic.dataset("train")
    a, b = _first(train), _first(train)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)  # a new draw at every read, so every epoch differs
    grey = _first(train.source)
    assert (a[grey == 0] == 0).all() and (a[grey == 1] == 1).all()
    single, label = train[0]
    assert single.shape == (1, 28, 28) and label == 5


@needs_mnist
def test_fixed_binarization_is_the_seeded_draw_and_the_test_split_always_fixed(fixed, dynamic):
    train = fixed.dataset("train")
    assert torch.equal(_first(train), _first(train))
    grey = dynamic.dataset("train").source.data  # the same MNIST intensities
    assert torch.equal(train.data, bernoulli_fixed(grey, seed=7) * 255)
    test = dynamic.dataset("test")
    assert torch.equal(_first(test), _first(test))
    assert torch.equal(_first(test), _first(fixed.dataset("test")))  # seed + 1, whatever the binarization
    assert not torch.equal(test.data[:64], train.data[:64])


def test_dynamic_epochs_of_a_loader_see_different_bits_of_the_same_images():
    greys = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    data = DynamicBinarized(InMemoryDataset(greys, torch.arange(40)))  # label = index
    loader = DataLoader(data, batch_size=40, shuffle=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    epochs = []
    for _ in range(2):
        x, index = next(iter(loader))
        epochs.append(x[index.argsort()])
    assert not torch.equal(epochs[0], epochs[1])
    certain = (greys == 0) | (greys == 255)
    assert torch.equal(epochs[0][certain], epochs[1][certain])  # only the uncertain pixels change
