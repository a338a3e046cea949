"""Scores of samples: the Fréchet distance, revkit's cached MNIST classifier and what it reports,
and the Inception backend's refusal to run without local weights."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from mnist_paths import DATA_ROOT, needs_mnist
from torch import Tensor

from revkit.data.base import DataInfo, DataSource
from revkit.data.torchvision_sources import Mnist
from revkit.errors import RevkitError
from revkit.eval import inception
from revkit.eval.classifier import (
    TARGET_ACCURACY,
    MnistClassifier,
    TrainedClassifier,
    accuracy,
    cache_dir,
    load_classifier,
    mnist_classifier,
    save_classifier,
)
from revkit.eval.classifier_scores import (
    CLASSIFIER_SCORES,
    center_crop,
    classifier_unavailable,
    diversity_scores,
    fid_mnist_classifier,
    mnist_classifier_scores,
    sample_class_accuracy,
)
from revkit.eval.fid import (
    GaussianStats,
    feature_stats,
    frechet_distance,
    frechet_distance_of_features,
)
from revkit.eval.report import compute_scores


# -- the Fréchet distance -------------------------------------------------------------------------
def gaussian_sample(n: int, d: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ a.T + shift, a @ a.T


def test_the_frechet_distance_of_a_sample_to_itself_is_zero() -> None:
    x, _ = gaussian_sample(2000, 16, seed=0)
    assert frechet_distance_of_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_shifting_a_sample_adds_the_squared_shift() -> None:
    x, _ = gaussian_sample(2000, 16, seed=0)
    shift = np.linspace(-1.0, 2.0, 16)
    # the same covariance: the trace term vanishes, d² = ‖Δμ‖²
    assert frechet_distance_of_features(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # independent samples of one Gaussian, one of them shifted: ≈ ‖Δμ‖² up to sampling noise
    y, _ = gaussian_sample(20000, 16, seed=0)
    assert frechet_distance_of_features(y[:10000], y[10000:] + shift) == pytest.approx(float(shift @ shift), rel=0.03)
    assert frechet_distance_of_features(y[:10000], y[10000:]) < 0.05


def test_the_trace_term_matches_the_closed_form_for_diagonal_covariances() -> None:
    # N(0, diag a²) vs N(0, diag b²): d² = Σ (a − b)²
    a, b = np.array([1.0, 2.0, 0.5, 0.0]), np.array([0.5, 2.0, 1.5, 1.0])
    d2 = frechet_distance(GaussianStats(np.zeros(4), np.diag(a**2), 10), GaussianStats(np.zeros(4), np.diag(b**2), 10))
    assert d2 == pytest.approx(float(((a - b) ** 2).sum()), rel=1e-9)


def test_the_frechet_distance_agrees_with_scipy_sqrtm_on_full_covariances() -> None:
    _, c1 = gaussian_sample(1, 12, seed=2)
    _, c2 = gaussian_sample(1, 12, seed=3)
    m1, m2 = np.arange(12.0) / 10, np.zeros(12)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    expected = float((m1 - m2) @ (m1 - m2) + np.trace(c1 + c2 - 2 * root))
    assert frechet_distance(GaussianStats(m1, c1, 2), GaussianStats(m2, c2, 2)) == pytest.approx(expected, rel=1e-7)


def test_rank_deficient_covariances_give_a_finite_non_negative_distance() -> None:
    x = np.random.default_rng(0).normal(size=(5, 64))  # 5 points in 64 dimensions: covariance of rank 4
    d2 = frechet_distance_of_features(x, x)
    assert np.isfinite(d2) and d2 == pytest.approx(0.0, abs=1e-8)


def test_feature_statistics_refuse_too_few_or_non_finite_features() -> None:
    with pytest.raises(RevkitError, match="N ≥ 2"):
        feature_stats(np.zeros((1, 3)))
    with pytest.raises(RevkitError, match="NaN"):
        feature_stats(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))


# -- the classifier: cache and reports ------------------------------------------------------------
def test_the_cache_folder_follows_revkit_cache_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REVKIT_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("REVKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "revkit"


def test_a_cached_classifier_round_trips_and_is_refused_under_another_key(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MnistClassifier()
    path = save_classifier(tmp_path / "clf.pt", model, 0.5, key="abc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.pt"], "no temporary file is left behind"
    loaded, acc = load_classifier(path, "abc")
    x = torch.rand(4, 1, 28, 28)
    assert acc == 0.5 and torch.equal(loaded(x), model.eval()(x))
    with pytest.raises(RevkitError, match="key"):
        load_classifier(path, "other")
    path.write_bytes(b"truncated")
    with pytest.raises(RevkitError, match="not a usable cached MNIST classifier"):
        load_classifier(path, "abc")


def test_center_crop_removes_the_padding_again() -> None:
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(center_crop(F.pad(x, (2, 2, 2, 2))), x)
    assert center_crop(x).shape == x.shape


class FakeSource(DataSource):
    def __init__(self, name: str, shape: tuple[int, ...] = (1, 28, 28)):
        self.info = DataInfo(shape=shape, classes=10, levels=256, name=name)


def test_classifier_scores_say_why_they_do_not_apply() -> None:
    assert "no data source" in classifier_unavailable(None, (1, 28, 28))
    assert "'fashion_mnist'" in classifier_unavailable(FakeSource("fashion_mnist"), (1, 28, 28))
    assert "1×H×W" in classifier_unavailable(FakeSource("mnist"), (3, 32, 32))
    assert classifier_unavailable(FakeSource("mnist"), (1, 32, 32)) == ""
    scores = mnist_classifier_scores(torch.rand(10, 1, 28, 28), None, FakeSource("cifar10", (3, 32, 32)))
    assert scores.values == {} and set(scores.unavailable) == set(CLASSIFIER_SCORES)


# -- the Inception backend ------------------------------------------------------------------------
def test_inception_fid_is_unavailable_without_local_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(inception, "package_installed", lambda: True)
    path, reason = inception.unavailable_reason(tmp_path / "missing.pth")
    assert path is None and str(tmp_path / "missing.pth") in reason and "does not download" in reason
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path, reason = inception.unavailable_reason(None)
    assert path is None and str(tmp_path / "hub" / "checkpoints" / inception.WEIGHTS_FILE) in reason
    (tmp_path / "w.pth").write_bytes(b"x")
    assert inception.unavailable_reason(tmp_path / "w.pth") == (tmp_path / "w.pth", "")
    monkeypatch.setattr(inception, "package_installed", lambda: False)
    assert "pip install torch-fidelity" in inception.unavailable_reason(tmp_path / "w.pth")[1]


def test_unavailable_scores_are_reported_without_drawing_samples(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(inception, "package_installed", lambda: True)
    flow = SimpleNamespace(input_shape=(1, 32, 32))  # sampling from it would fail
    settings = SimpleNamespace(scores=["mnist_classifier", "inception"], inception_weights=str(tmp_path / "none"))
    values, unavailable = compute_scores(flow, settings, [], None, torch.device("cpu"), log=lambda _t: None)
    assert values == {}
    assert set(unavailable) == {*CLASSIFIER_SCORES, "fid_inception"}
    assert "does not download" in unavailable["fid_inception"]


# -- the classifier on MNIST ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def mnist_data() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    source = Mnist(DATA_ROOT, download=False)
    train, test = source.dataset("train"), source.dataset("test")
    return (train.data, train.labels), (test.data, test.labels)


@pytest.fixture(scope="session")
def classifier(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               mnist_data: Any) -> TrainedClassifier:
    """Trained once (about two minutes on two CPU cores) and kept in pytest's cache folder, so later
    sessions load it; $REVKIT_CACHE, when set, is used instead (and a session temporary folder when
    pytest runs without its cache plugin)."""
    if os.environ.get("REVKIT_CACHE"):
        folder = Path(os.environ["REVKIT_CACHE"])
    elif getattr(request.config, "cache", None) is not None:
        folder = Path(request.config.cache.mkdir("revkit"))
    else:
        folder = tmp_path_factory.mktemp("revkit-cache")
    return mnist_classifier(*mnist_data, folder=folder, log=print)


@needs_mnist
def test_the_classifier_reaches_its_target_accuracy_on_the_mnist_test_split(classifier: TrainedClassifier,
                                                                            mnist_data: Any) -> None:
    measured = accuracy(classifier.model, *mnist_data[1])
    assert measured >= TARGET_ACCURACY
    assert measured == pytest.approx(classifier.test_accuracy, abs=1e-9)
    assert classifier.path.is_file()


@needs_mnist
def test_the_cached_classifier_is_loaded_not_retrained(classifier: TrainedClassifier, mnist_data: Any) -> None:
    again = mnist_classifier(*mnist_data, folder=classifier.path.parent.parent, log=print)
    assert not again.trained and again.path == classifier.path
    x = mnist_data[1][0][:50]
    assert torch.equal(again.model.features(x.float() / 255), classifier.model.features(x.float() / 255))


@needs_mnist
def test_sample_class_accuracy_of_labelled_test_images_is_the_classifier_accuracy(
        classifier: TrainedClassifier, mnist_data: Any) -> None:
    images, labels = mnist_data[1]
    padded = F.pad(images.float() / 255, (2, 2, 2, 2))  # as a model of data.pad = 2 produces them
    assert sample_class_accuracy(classifier.model, padded, labels) == pytest.approx(classifier.test_accuracy)
    shuffled = labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))]
    assert sample_class_accuracy(classifier.model, padded, shuffled) == pytest.approx(0.1, abs=0.02)


@needs_mnist
def test_the_classifier_fid_separates_test_digits_from_noise(classifier: TrainedClassifier, mnist_data: Any) -> None:
    (train_x, _), (test_x, _) = mnist_data
    reference = test_x[:2000]
    real = fid_mnist_classifier(classifier.model, train_x[:2000].float() / 255, reference)
    blurred = fid_mnist_classifier(classifier.model, F.avg_pool2d(test_x[2000:4000].float() / 255, 3, 1, 1), reference)
    noise = fid_mnist_classifier(classifier.model, torch.rand(2000, 1, 28, 28), reference)
    assert real < blurred < noise


@needs_mnist
def test_diversity_scores_tell_real_variety_from_collapse(classifier: TrainedClassifier, mnist_data: Any) -> None:
    (train_x, train_y), test = mnist_data
    images, labels = train_x[:2000].float() / 255, train_y[:2000]
    real = diversity_scores(classifier.model, images, labels, test)
    assert 0.9 < real["spread_ratio"] < 1.1 and real["precision"] > 0.7 and real["recall"] > 0.7
    # mode collapse within each class: one training digit per class, repeated with faint noise
    first = torch.stack([images[labels == k][0] for k in range(10)])
    noise = 0.01 * torch.randn(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    collapsed = (first[labels] + noise).clamp(0, 1)
    scores = diversity_scores(classifier.model, collapsed, labels, test)
    assert scores["spread_ratio"] < 0.1 and scores["recall"] < 0.2
    assert scores["real_spread"] == pytest.approx(real["real_spread"])  # the same real reference
