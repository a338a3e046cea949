r"""Scores of MNIST samples from revkit's cached MNIST classifier (:mod:`revkit.eval.classifier`).

* ``sample_class_accuracy`` — the share of class-conditional samples that the classifier assigns
  to their intended class, :math:`\frac1n \sum_i [\arg\max_k g_k(x_i) = y_i]`;
* ``fid_mnist_classifier`` — the Fréchet distance (:mod:`revkit.eval.fid`) between the
  classifier's penultimate-layer features (128-d) of the samples and of the MNIST test split.
  It is *not* the Inception FID of the literature and not comparable to it; only to itself;
* ``sample_spread``, ``real_spread`` and ``spread_ratio`` — the within-class spread
  (:mod:`revkit.eval.diversity`) of the samples and of as many test digits of the same classes, in
  pixels of the 28×28 images, and samples over real (one class for an unconditional model);
* ``precision`` and ``recall`` — improved precision and recall (k = 3) of the samples' classifier
  features against as many test digits' features.

Images larger than 28×28 (a model of ``data.pad``-ded MNIST, e.g. 32×32) are center-cropped to
28×28 before classification: the padding is removed again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from revkit.data.base import DataSource
from revkit.errors import DataError, RevkitError
from revkit.eval.classifier import IMAGE_SHAPE, MnistClassifier, accuracy, as_float, features, mnist_classifier
from revkit.eval.diversity import precision_recall, within_class_spread
from revkit.eval.fid import frechet_distance_of_features

#: data sources whose images the MNIST classifier understands.
MNIST_SOURCES = ("mnist",)
#: the scores this backend computes (beside the classifier's own test accuracy).
CLASSIFIER_SCORES = ("sample_class_accuracy", "fid_mnist_classifier", "sample_spread", "real_spread", "spread_ratio",
                     "precision", "recall")


@dataclass
class Scores:
    """Score name → value, and score name → why it could not be computed."""

    values: dict[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def center_crop(images: Tensor, size: tuple[int, int] = IMAGE_SHAPE[1:]) -> Tensor:
    """The central ``size`` window of images ``[N, C, H, W]`` (``H, W ≥ size``; equal margins when
    ``H − size`` is even, one pixel more at the bottom/right otherwise)."""
    h, w = images.shape[-2:]
    th, tw = size
    if h < th or w < tw:
        raise DataError(f"cannot center-crop {h}×{w} images to {th}×{tw}")
    top, left = (h - th) // 2, (w - tw) // 2
    return images[..., top : top + th, left : left + tw]


def sample_class_accuracy(model: MnistClassifier, images: Tensor, intended: Tensor) -> float:
    """Share of ``images [N, 1, H ≥ 28, W ≥ 28]`` classified as their ``intended [N]`` class."""
    return accuracy(model, center_crop(images), intended)


def fid_mnist_classifier(model: MnistClassifier, images: Tensor, reference: Tensor) -> float:
    """Fréchet distance between classifier features of ``images`` and of ``reference`` (both
    ``[N, 1, H ≥ 28, W ≥ 28]``, center-cropped)."""
    return frechet_distance_of_features(features(model, center_crop(images)), features(model, center_crop(reference)))


def split_tensors(source: DataSource, split: str) -> tuple[Tensor, Tensor]:
    """Images ``[N, C, H, W]`` and labels ``[N]`` of a split (the stored tensors when the source keeps
    them in memory, else stacked item by item)."""
    ds = source.dataset(split)  # type: ignore[arg-type]
    data, labels = getattr(ds, "data", None), getattr(ds, "labels", None)
    if isinstance(data, Tensor) and isinstance(labels, Tensor):
        return data, labels
    items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
    return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


def classifier_unavailable(source: DataSource | None, image_shape: tuple[int, ...]) -> str:
    """Why the MNIST-classifier scores do not apply to this run ("" when they do)."""
    if source is None:
        return "the evaluation was given no data source (evaluate_run(..., source=...)) to train the classifier on"
    if source.info.name not in MNIST_SOURCES:
        return f"the classifier knows MNIST digits only; this run's data source is '{source.info.name}'"
    if tuple(source.info.shape) != IMAGE_SHAPE:
        return f"the data source gives images of shape {tuple(source.info.shape)}, not {IMAGE_SHAPE}"
    if len(image_shape) != 3 or image_shape[0] != 1 or image_shape[1] < 28 or image_shape[2] < 28:
        return f"the model's images have shape {tuple(image_shape)}; the classifier needs 1×H×W with H, W ≥ 28"
    return ""


def mnist_classifier_scores(
    samples: Tensor,
    intended: Tensor | None,
    source: DataSource | None,
    cache: Path | None = None,
    log: Callable[[str], None] | None = None,
    device: torch.device | None = None,
) -> Scores:
    """``sample_class_accuracy`` (class-conditional samples only), ``fid_mnist_classifier`` and the
    classifier's own ``mnist_classifier_test_accuracy``, or the reasons they are unavailable.

    Args:
        samples: model samples ``[N, 1, H, W]`` in [0, 1].
        intended: their intended classes ``[N]``, None for an unconditional model.
        source: the run's data source (must be MNIST); its splits train and test the classifier.
        cache: the classifier cache folder (default :func:`revkit.eval.classifier.cache_dir`).
    """
    out = Scores()
    names = CLASSIFIER_SCORES
    reason = classifier_unavailable(source, tuple(samples.shape[1:]))
    if reason:
        out.unavailable = dict.fromkeys(names, reason)
        return out
    assert source is not None
    if not torch.isfinite(samples).all():
        out.unavailable = dict.fromkeys(names, "the samples contain NaN or infinite values")
        return out
    try:
        test = split_tensors(source, "test")
        clf = mnist_classifier(split_tensors(source, "train"), test, cache, log, device)
    except RevkitError as exc:
        out.unavailable = dict.fromkeys(names, f"the MNIST classifier could not be set up: {exc}")
        return out
    out.values["mnist_classifier_test_accuracy"] = clf.test_accuracy
    if intended is None:
        out.unavailable["sample_class_accuracy"] = "the model is not class-conditional"
    else:
        out.values["sample_class_accuracy"] = sample_class_accuracy(clf.model, samples, intended)
    out.values["fid_mnist_classifier"] = fid_mnist_classifier(clf.model, samples, test[0])
    out.values.update(diversity_scores(clf.model, samples, intended, test))
    out.values["score_samples"] = int(samples.shape[0])
    return out


def diversity_scores(model: MnistClassifier, samples: Tensor, intended: Tensor | None,
                     test: tuple[Tensor, Tensor]) -> dict[str, float]:
    """Within-class spread of the samples and of real test digits with the same class counts (all
    digits pooled for an unconditional model), and precision and recall in classifier features."""
    images, labels = test
    generator = torch.Generator().manual_seed(0)
    if intended is None:
        n = min(samples.shape[0], images.shape[0])
        real = images[torch.randperm(images.shape[0], generator=generator)[:n]]
        fake, fake_labels, real_labels = samples[:n], torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    else:
        picks = []
        for k in torch.unique(intended).tolist():
            pool = torch.nonzero(labels == k).flatten()
            wanted = int((intended == k).sum())
            picks.append(pool[torch.randperm(pool.numel(), generator=generator)[:wanted]])
        index = torch.cat(picks)
        real, real_labels = images[index], labels[index]
        fake, fake_labels = samples, intended
    fake, real = as_float(center_crop(fake)), as_float(center_crop(real))
    sample_spread = within_class_spread(fake.cpu(), fake_labels.cpu())
    real_spread = within_class_spread(real.cpu(), real_labels.cpu())
    precision, recall = precision_recall(features(model, real).cpu(), features(model, fake).cpu())
    return {"sample_spread": sample_spread, "real_spread": real_spread, "spread_ratio": sample_spread / real_spread,
            "precision": precision, "recall": recall}
