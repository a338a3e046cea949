"""The data sources and loaders: real MNIST, padding, missing data, image folders, toy data."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from urllib.error import URLError

import numpy as np
import pytest
import torch
from mnist_paths import DATA_ROOT, MNIST_FILES, needs_mnist
from PIL import Image

from revkit.data import (
    BinarizedMnist,
    CelebA,
    Cifar10,
    DataInfo,
    FashionMnist,
    ImageFolder,
    InMemoryDataset,
    Mnist,
    Toy2d,
    make_loaders,
    padded_info,
)
from revkit.data.unpaired_mnist import UnpairedMnist
from revkit.errors import DataError, RevkitError
from revkit.plugins import load_registries


def spec(**fields):
    """A stand-in for the [data] spec model."""
    base = {"batch_size": 64, "test_batch_size": 500, "num_workers": 0, "pad": 0}
    return SimpleNamespace(**{**base, **fields})


@pytest.fixture(scope="module")
def mnist() -> Mnist:
    return Mnist(root=DATA_ROOT, download=False)


def test_builtin_sources_are_registered_through_the_hook():
    regs = load_registries(entry_points=False)
    assert {n: regs.datasets[n] for n in regs.datasets.names()} == {
        "mnist": Mnist, "fashion_mnist": FashionMnist, "cifar10": Cifar10, "celeba": CelebA,
        "image_folder": ImageFolder, "toy2d": Toy2d, "binarized_mnist": BinarizedMnist,
        "unpaired_mnist": UnpairedMnist,
    }
    assert Toy2d.needs_root is False and Mnist.needs_root is True


def test_construction_reads_nothing(tmp_path):
    nowhere = tmp_path / "does-not-exist"
    for cls in (Mnist, FashionMnist, Cifar10, CelebA, ImageFolder):
        cls(root=nowhere)
    assert not nowhere.exists()
    assert Cifar10(root=nowhere).info == DataInfo(shape=(3, 32, 32), classes=10, levels=256, name="cifar10")
    assert CelebA(root=nowhere, size=32).info.shape == (3, 32, 32)


# -- MNIST ----------------------------------------------------------------------------------------

@needs_mnist
def test_mnist_splits_have_the_official_sizes_shapes_and_labels(mnist):
    assert mnist.info == DataInfo(shape=(1, 28, 28), classes=10, levels=256, name="mnist")
    train, test = mnist.dataset("train"), mnist.dataset("test")
    assert (len(train), len(test)) == (60000, 10000)
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
    assert y == 7  # the first official test digit
    assert sorted(set(test.labels.tolist())) == list(range(10))
    assert sorted(set(train.labels.tolist())) == list(range(10))
    assert mnist.dataset("train") is train  # loaded once


@needs_mnist
def test_mnist_intensities_are_k_over_255(mnist):
    xs = torch.stack([mnist.dataset("test")[i][0] for i in range(50)])
    assert xs.min() == 0.0 and xs.max() == 1.0
    k = xs * 255
    torch.testing.assert_close(k, k.round(), atol=1e-4, rtol=0)


@needs_mnist
def test_mnist_loaders_batch_shuffle_and_pad(mnist):
    train, test, info = make_loaders(spec(batch_size=32, test_batch_size=1000, pad=2), mnist, seed=3)
    assert info.shape == (1, 32, 32) and info.classes == 10
    x, y = next(iter(train))
    assert x.shape == (32, 1, 32, 32) and y.shape == (32,) and y.dtype == torch.long
    assert 0.0 <= x.min() and x.max() <= 1.0
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[:, :, border] == 0).all()
    # the padded interior is the original image
    xt, _ = next(iter(test))
    torch.testing.assert_close(xt[0, :, 2:30, 2:30], mnist.dataset("test")[0][0])
    assert len(train) == 60000 // 32 and len(test) == 10
    assert sum(b[0].shape[0] for b in test) == 10000


@needs_mnist
def test_train_loader_is_shuffled_reproducibly_and_test_loader_in_order(mnist):
    def first_labels(seed):
        return next(iter(make_loaders(spec(), mnist, seed=seed)[0]))[1]

    assert torch.equal(first_labels(0), first_labels(0))
    assert not torch.equal(first_labels(0), first_labels(1))
    assert not torch.equal(first_labels(0), mnist.dataset("train").labels[:64])
    test = make_loaders(spec(), mnist)[1]
    assert torch.equal(next(iter(test))[1], mnist.dataset("test").labels[:500])


# -- missing data ---------------------------------------------------------------------------------

def test_missing_mnist_without_download_names_folder_files_and_fix(tmp_path):
    with pytest.raises(DataError) as err:
        Mnist(root=tmp_path, download=False).dataset("train")
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert "MNIST/raw/train-images-idx3-ubyte" in msg and "MNIST/raw/t10k-labels-idx1-ubyte" in msg
    assert "data.root" in msg and "REVKIT_DATA" in msg and "download" in msg


def test_missing_mnist_with_failing_download_ends_in_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise URLError("no network in this sandbox")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as err:
        Mnist(root=tmp_path, download=True).dataset("test")
    assert calls, "the download was not attempted"
    msg = str(err.value)
    assert "downloading them failed" in msg and str(tmp_path) in msg
    assert "MNIST/raw/train-images-idx3-ubyte" in msg and "REVKIT_DATA" in msg
    assert "\n" not in msg


def test_missing_cifar_and_fashion_mnist_name_their_files(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py/data_batch_1"):
        Cifar10(root=tmp_path, download=False).dataset("test")
    with pytest.raises(DataError, match="FashionMNIST/raw/train-images-idx3-ubyte"):
        FashionMnist(root=tmp_path, download=False).dataset("test")


def test_missing_celeba_names_its_files(tmp_path):
    with pytest.raises(DataError, match=r"celeba/img_align_celeba, celeba/list_eval_partition.txt"):
        CelebA(root=tmp_path, download=False).dataset("train")


def test_unreadable_files_are_a_data_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_bytes(b"not an idx file")
    with pytest.raises(DataError, match="could not read the files in"):
        Mnist(root=tmp_path, download=False).dataset("test")


def test_unknown_split_is_a_data_error():
    with pytest.raises(DataError, match="split must be 'train' or 'test', got 'valid'"):
        Toy2d().dataset("valid")


# -- image folders -------------------------------------------------------------------------------

def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_image_folder_labels_come_from_subfolders(tmp_path):
    for i in range(3):
        write_png(tmp_path / "train" / "cats" / f"c{i}.png", (255, 0, 0))
        write_png(tmp_path / "train" / "dogs" / "deeper" / f"d{i}.png", (0, 0, 255))
    write_png(tmp_path / "test" / "dogs" / "d.png", (0, 0, 255))
    source = ImageFolder(root=tmp_path, size=8)
    assert source.info == DataInfo(shape=(3, 8, 8), classes=2, levels=256, name="image_folder")
    train = source.dataset("train")
    assert len(train) == 6 and len(source.dataset("test")) == 1
    for i in range(6):
        x, y = train[i]
        assert x.shape == (3, 8, 8) and 0 <= x.min() and x.max() <= 1
        expected_channel = 0 if y == 0 else 2  # cats are red, dogs blue
        assert x[expected_channel].min() == 1.0 and x.sum() == 64.0
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1]


def test_image_folder_without_classes_splits_by_fraction(tmp_path):
    for i in range(10):
        write_png(tmp_path / f"img{i}.png", (i * 20, 0, 0), size=(16, 16))
    (tmp_path / ".DS_Store").write_bytes(b"hidden files are ignored")
    source = ImageFolder(root=tmp_path, size=16, test_fraction=0.2, seed=1)
    assert source.info.classes == 0
    train, test = source.dataset("train"), source.dataset("test")
    assert (len(train), len(test)) == (8, 2)
    reds = {round(float(train[i][0][0, 0, 0]) * 255) for i in range(8)} | \
           {round(float(test[i][0][0, 0, 0]) * 255) for i in range(2)}
    assert reds == {i * 20 for i in range(10)}  # a partition of all images
    assert set(train.labels.tolist()) == {0}


def test_image_folder_resizes_the_shorter_side_and_center_crops(tmp_path):
    image = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high
    image[:, 10:30] = 255  # the central square is white
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    Image.fromarray(image).save(tmp_path / "train" / "wide.png")
    Image.fromarray(image).save(tmp_path / "test" / "wide.png")
    x, _ = ImageFolder(root=tmp_path, size=10).dataset("train")[0]
    assert x.shape == (3, 10, 10)
    assert x[:, :, 2:8].min() > 0.9  # the centre stays white after resizing 40×20 → 20×10 → crop 10×10


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    write_png(tmp_path / "cats" / "ok.png", (1, 2, 3))
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.txt is not a readable image"):
        ImageFolder(root=tmp_path, test_fraction=0.0).dataset("train")


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="is not a folder; set data.root"):
        _ = ImageFolder(root=tmp_path / "missing").info
    write_png(tmp_path / "cats" / "a.png", (1, 2, 3))
    write_png(tmp_path / "loose.png", (1, 2, 3))
    with pytest.raises(DataError, match=r"loose\.png is not inside a class folder"):
        ImageFolder(root=tmp_path).dataset("train")


# -- toy data --------------------------------------------------------------------------------

def toy(name: str, noise: float = 0.0, n: int = 2000) -> torch.Tensor:
    source = Toy2d(name=name, n_train=n, n_test=100, noise=noise, seed=0)
    return source.dataset("train").data


@pytest.mark.parametrize("name", ["moons", "circles", "checkerboard", "8gaussians"])
def test_toy2d_shapes_info_and_seeding(name):
    source = Toy2d(name=name, n_train=300, n_test=50, seed=5)
    assert source.info == DataInfo(shape=(2,), classes=0, levels=None, name="toy2d")
    train, test = source.dataset("train"), source.dataset("test")
    assert (len(train), len(test)) == (300, 50)
    x, y = train[0]
    assert x.shape == (2,) and x.dtype == torch.float32 and y == 0
    again = Toy2d(name=name, n_train=300, n_test=50, seed=5).dataset("train").data
    assert torch.equal(train.data, again)
    assert not torch.equal(train.data[:50], test.data)
    assert not torch.equal(train.data, Toy2d(name=name, n_train=300, n_test=50, seed=6).dataset("train").data)


def test_circles_have_two_radii():
    radius = toy("circles").norm(dim=1)
    near_outer, near_inner = (radius - 1.0).abs() < 1e-5, (radius - 0.5).abs() < 1e-5
    assert (near_outer | near_inner).all()
    assert near_outer.sum() == near_inner.sum() == 1000


def test_eight_gaussians_have_eight_clusters():
    x = toy("8gaussians", noise=0.05)
    angles = torch.arange(8) * math.pi / 4
    centres = 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
    dist = torch.cdist(x, centres)
    assert dist.min(dim=1).values.max() < 0.3  # every point near a centre
    counts = dist.argmin(dim=1).bincount(minlength=8)
    assert counts.min() > 180 and counts.max() < 320  # ≈ 250 each


def test_moons_lie_on_two_interleaved_half_circles():
    x = toy("moons")
    on_upper = ((x.norm(dim=1) - 1).abs() < 1e-5) & (x[:, 1] >= -1e-6)
    shifted = x - torch.tensor([1.0, 0.5])
    on_lower = ((shifted.norm(dim=1) - 1).abs() < 1e-5) & (shifted[:, 1] <= 1e-6)
    assert (on_upper | on_lower).all()
    assert on_upper.sum() >= 1000 and on_lower.sum() >= 1000


def test_checkerboard_fills_the_black_squares_only():
    x = toy("checkerboard")
    assert x.min() >= -2 and x.max() <= 2
    cell = torch.floor(x).long()
    assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
    counts = torch.unique(cell, dim=0, return_counts=True)[1]
    assert len(counts) == 8 and counts.min() > 180


def test_noise_moves_points_off_the_shape():
    radius = toy("circles", noise=0.1).norm(dim=1)
    off = torch.minimum((radius - 1).abs(), (radius - 0.5).abs())
    assert off.mean() > 0.03


def test_toy2d_bad_parameters():
    with pytest.raises(DataError, match="name must be one of moons, circles, checkerboard, 8gaussians"):
        Toy2d(name="spirals")
    with pytest.raises(ValueError):
        Toy2d.Params(name="spirals")
    with pytest.raises(ValueError):
        Toy2d.Params(n_train=0)


# -- loaders and padding ------------------------------------------------------------------------

def test_toy_loaders_drop_the_last_train_batch_but_keep_every_test_sample():
    source = Toy2d(name="moons", n_train=100, n_test=30)
    train, test, info = make_loaders(spec(batch_size=32, test_batch_size=8), source)
    assert info.shape == (2,)
    assert [b[0].shape[0] for b in train] == [32, 32, 32]
    assert [b[0].shape[0] for b in test] == [8, 8, 8, 6]
    assert torch.equal(torch.cat([b[0] for b in test]), source.dataset("test").data)


def test_loaders_with_workers_give_the_same_batches():
    source = Toy2d(n_train=64, n_test=16)
    a = [b[0] for b in make_loaders(spec(batch_size=16, num_workers=0), source, seed=1)[0]]
    b = [b[0] for b in make_loaders(spec(batch_size=16, num_workers=1), source, seed=1)[0]]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_padded_info():
    info = DataInfo(shape=(1, 28, 28), classes=10, levels=256, name="mnist")
    assert padded_info(info, 2) == DataInfo(shape=(1, 32, 32), classes=10, levels=256, name="mnist")
    assert padded_info(info, 0) is info
    with pytest.raises(DataError, match="data.pad must be ≥ 0, got -1"):
        padded_info(info, -1)
    msg = r"pads images \(C, H, W\), but 'toy2d' gives per-sample shape \(2,\)"
    with pytest.raises(DataError, match=msg):
        padded_info(DataInfo(shape=(2,), classes=0, levels=None, name="toy2d"), 1)


def test_loader_errors_name_the_field():
    source = Toy2d(n_train=10, n_test=10)
    with pytest.raises(DataError, match="data.batch_size = 64 is larger than the 10 training samples"):
        make_loaders(spec(), source)
    with pytest.raises(DataError, match="has no field 'pad'"):
        make_loaders(SimpleNamespace(batch_size=2, test_batch_size=2, num_workers=0), source)
    assert issubclass(DataError, RevkitError)


def test_in_memory_dataset_converts_uint8_and_batches():
    data = torch.tensor([[[[0, 255]]], [[[51, 102]]]], dtype=torch.uint8)
    ds = InMemoryDataset(data, torch.tensor([3, 4]))
    items = ds.__getitems__([1, 0])
    torch.testing.assert_close(items[0][0], torch.tensor([[[0.2, 0.4]]]))
    assert [y for _, y in items] == [4, 3]
    torch.testing.assert_close(ds[0][0], torch.tensor([[[0.0, 1.0]]]))
    with pytest.raises(DataError, match="2 data items but 1 labels"):
        InMemoryDataset(data, torch.tensor([1]))
