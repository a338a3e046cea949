r"""A small MNIST classifier that revkit trains once and caches, for scoring samples.

The network maps images ``[B, 1, 28, 28]`` with intensities in ``[0, 1]`` to class logits ``[B, 10]``:

.. code-block:: text

    conv3×3(1→16) → ReLU → maxpool2 → conv3×3(16→32) → ReLU → maxpool2      (28 → 14 → 7)
    → flatten (32·7·7 = 1568) → linear(1568→128) → ReLU   ─▶ features  [B, 128]
    → linear(128→10)                                        ─▶ logits    [B, 10]

:meth:`MnistClassifier.features` is the penultimate layer: the Fréchet distance
``fid_mnist_classifier`` compares samples and test images in that 128-dimensional space.

Training (:data:`RECIPE`): Adam, cross-entropy, :data:`RECIPE` ``epochs`` over the training split
in batches of 128, the learning rate cosine-annealed to 0; about a minute on two CPU cores and
≈ 99 % test accuracy. The trained weights are cached as

``<cache>/classifiers/mnist_classifier-<key>.pt``

where ``<cache>`` is ``$REVKIT_CACHE``, else ``$XDG_CACHE_HOME/revkit``, else ``~/.cache/revkit``,
and ``<key>`` hashes the recipe together with the training images and labels, so another recipe or
other data never reuse a stale file. The file is written to a temporary name, fsynced and renamed,
and holds only tensors, numbers and strings (it is read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revkit.errors import DataError, RevkitError
from revkit.runtime.files import atomic_write
from revkit.runtime.progress import Phase, phase

ENV_CACHE = "REVKIT_CACHE"
#: the training recipe; part of the cache key (change any value and the classifier is retrained).
RECIPE: dict[str, Any] = {
    "architecture": "conv16-conv32-fc128-v1",
    "epochs": 3,
    "batch_size": 128,
    "lr": 2e-3,
    "schedule": "cosine",
    "seed": 0,
}
FORMAT = 1
#: the accuracy the classifier is expected to reach on the MNIST test split.
TARGET_ACCURACY = 0.985
IMAGE_SHAPE = (1, 28, 28)
FEATURES = 128
CHUNK = 1000

Log = Callable[[str], None]


class MnistClassifier(nn.Module):
    """The classifier of the module docstring: ``features`` ``[B, 128]`` and ``forward`` logits ``[B, 10]``."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.hidden = nn.Linear(32 * 7 * 7, FEATURES)
        self.out = nn.Linear(FEATURES, classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer activations ``[B, 128]`` of images ``x [B, 1, 28, 28]``."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.hidden(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


@dataclass
class TrainedClassifier:
    """A classifier in eval mode, its accuracy on the test split, and where it is cached."""

    model: MnistClassifier
    test_accuracy: float
    path: Path
    #: True when this call trained it, False when it came from the cache.
    trained: bool


def cache_dir() -> Path:
    """revkit's cache folder: ``$REVKIT_CACHE``, else ``$XDG_CACHE_HOME/revkit``, else ``~/.cache/revkit``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "revkit"


def check_images(images: Tensor, labels: Tensor, what: str) -> None:
    """Raise :class:`DataError` unless ``images`` are ``[N, 1, 28, 28]`` with ``N`` labels in [0, 10)."""
    if tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise DataError(f"the MNIST classifier needs {what} images of shape {IMAGE_SHAPE}, got "
                        f"{tuple(images.shape[1:])}")
    if labels.shape != (images.shape[0],):
        raise DataError(f"{what}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise DataError(f"{what}: MNIST labels lie in [0, 9], got [{int(labels.min())}, {int(labels.max())}]")


def as_float(images: Tensor) -> Tensor:
    """``uint8`` images as ``k/255`` floats; float images unchanged (as float32)."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def cache_key(images: Tensor, labels: Tensor) -> str:
    """16 hex digits of SHA-256 over the recipe, the training images (as stored) and the labels."""
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    digest.update(str(images.dtype).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(labels.detach().cpu().long().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def predict(model: MnistClassifier, images: Tensor) -> Tensor:
    """Predicted classes ``[N]`` of images ``[N, 1, 28, 28]`` (``uint8`` or floats in [0, 1])."""
    model.eval()
    device = next(model.parameters()).device
    out = [model(as_float(images[i : i + CHUNK]).to(device)).argmax(1).cpu() for i in range(0, images.shape[0], CHUNK)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def features(model: MnistClassifier, images: Tensor) -> Tensor:
    """Penultimate-layer features ``[N, 128]`` (float64, on the CPU) of images ``[N, 1, 28, 28]``."""
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, images.shape[0], CHUNK)
    out = [model.features(as_float(images[i : i + CHUNK]).to(device)).double().cpu()
           for i in phase(starts, f"classifier features of {images.shape[0]} images", unit="chunk")]
    return torch.cat(out) if out else torch.zeros(0, FEATURES, dtype=torch.float64)


def accuracy(model: MnistClassifier, images: Tensor, labels: Tensor) -> float:
    """Share of ``images`` whose predicted class equals ``labels``."""
    if images.shape[0] == 0:
        raise DataError("accuracy of an empty set of images")
    return float((predict(model, images) == labels.cpu().long()).double().mean())


def train_classifier(
    train_images: Tensor, train_labels: Tensor, log: Log | None = None, device: torch.device | None = None
) -> MnistClassifier:
    """Train a fresh :class:`MnistClassifier` with :data:`RECIPE`; a progress bar (or one line) and a log line
    per epoch.

    The global random state is left as it was (the recipe's seed is used in a forked RNG).
    """
    log = log or (lambda _text: None)
    device = device or torch.device("cpu")
    epochs, batch, lr = int(RECIPE["epochs"]), int(RECIPE["batch_size"]), float(RECIPE["lr"])
    n = train_images.shape[0]
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(RECIPE["seed"]))
        model = MnistClassifier().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / total)))
        started = time.monotonic()
        step = 0
        model.train()
        bar = Phase("training the MNIST scoring classifier", total=total, unit="step")
        for epoch in range(epochs):
            order = torch.randperm(n)
            running, seen = 0.0, 0
            for k in range(steps_per_epoch):
                idx = order[k * batch : (k + 1) * batch]
                x = as_float(train_images[idx]).to(device)
                loss = F.cross_entropy(model(x), train_labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                running += float(loss.detach())
                seen += 1
                bar.update()
                if k + 1 == steps_per_epoch:
                    log(f"MNIST classifier: epoch {epoch + 1}/{epochs}, step {step}/{total}, "
                        f"loss {running / seen:.4f}, {time.monotonic() - started:.0f} s")
                    running, seen = 0.0, 0
        bar.close()
    return model.eval()


def save_classifier(path: Path, model: MnistClassifier, test_accuracy: float, key: str) -> Path:
    """Write the state dict and metadata atomically: temporary file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "key": key,
        "recipe": json.dumps(RECIPE, sort_keys=True),
        "test_accuracy": float(test_accuracy),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def load_classifier(path: Path, key: str, device: torch.device | None = None) -> tuple[MnistClassifier, float]:
    """Read a cached classifier (``weights_only=True``); returns the model in eval mode and its test accuracy.

    Raises:
        RevkitError: when the file is unreadable or was written for another key or format.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT or state.get("key") != key:
            raise ValueError(f"format {state.get('format')!r} and key {state.get('key')!r}, expected "
                             f"{FORMAT} and {key!r}")
        model = MnistClassifier()
        model.load_state_dict(state["state_dict"])
        acc = float(state["test_accuracy"])
    except Exception as exc:  # noqa: BLE001 — any defect of the cache file means "retrain"
        raise RevkitError(f"{path}: not a usable cached MNIST classifier ({type(exc).__name__}: {exc})") from exc
    return model.to(device or torch.device("cpu")).eval(), acc


def mnist_classifier(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    folder: Path | None = None,
    log: Log | None = None,
    device: torch.device | None = None,
) -> TrainedClassifier:
    """The cached classifier for this training data, trained (and cached) first if there is none.

    Args:
        train: training images ``[N, 1, 28, 28]`` (``uint8`` or floats in [0, 1]) and labels ``[N]``.
        test: the test split, on which the accuracy is measured after training.
        folder: the cache folder (default :func:`cache_dir`).
        log: receives progress lines while training (and one line saying what happened).

    A cache file that cannot be read is replaced by a freshly trained classifier.
    """
    log = log or (lambda _text: None)
    check_images(*train, what="training")
    check_images(*test, what="test")
    key = cache_key(*train)
    path = (folder or cache_dir()) / "classifiers" / f"mnist_classifier-{key}.pt"
    if path.is_file():
        try:
            model, acc = load_classifier(path, key, device)
            return TrainedClassifier(model, acc, path, trained=False)
        except RevkitError as exc:
            log(f"{exc}; training a new one")
    log(f"training the MNIST classifier for scores (cached afterwards as {path})")
    model = train_classifier(*train, log=log, device=device)
    acc = accuracy(model, *test)
    log(f"MNIST classifier: test accuracy {acc:.4f}")
    save_classifier(path, model, acc, key)
    return TrainedClassifier(model, acc, path, trained=True)
