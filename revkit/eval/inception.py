r"""The Inception FID backend (``scores = ["inception"]`` → ``fid_inception``), through torch-fidelity.

Samples and test images ``[N, C, H, W]`` in [0, 1] are quantized to 8 bits (grey repeated to three
channels), fed to torch-fidelity's TensorFlow-compatible InceptionV3 (``inception-v3-compat``, which
resizes to 299×299 itself) and compared on its 2048-d pool features with
:func:`revkit.eval.fid.frechet_distance`.

revkit never downloads the weights. They are read from a local file only:
``eval.inception_weights`` when given, else torch-fidelity's file in the torch hub cache
(``<torch hub dir>/checkpoints/weights-inception-2015-12-05-6726825d.pth``, where torch-fidelity
itself would download it). Without the package or the file the score is reported as unavailable,
with the reason. The file is first opened with ``torch.load(weights_only=True)``, so a file holding
anything but tensors is refused before torch-fidelity reads it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor

from revkit.eval.fid import frechet_distance_of_features
from revkit.runtime.progress import phase

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
PACKAGE = "torch_fidelity"
CHUNK = 50


def default_weights_path() -> Path:
    """Where torch-fidelity keeps its Inception weights: the torch hub cache's ``checkpoints`` folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def package_installed() -> bool:
    """torch-fidelity can be imported (checked without importing it)."""
    return importlib.util.find_spec(PACKAGE) is not None


def unavailable_reason(weights: str | Path | None) -> tuple[Path | None, str]:
    """``(weights file, "")`` when the backend can run, else ``(None, why not)``."""
    if not package_installed():
        return None, "the package torch-fidelity is not installed (pip install torch-fidelity)"
    path = Path(weights).expanduser() if weights else default_weights_path()
    if not path.is_file():
        source = "eval.inception_weights" if weights else "torch-fidelity's default location"
        return None, (f"no Inception weights at {path} ({source}); revkit does not download them at run time: "
                      f"put torch-fidelity's {WEIGHTS_FILE} there or set eval.inception_weights")
    return path, ""


def to_rgb8(images: Tensor) -> Tensor:
    """Images ``[N, 1 or 3, H, W]`` in [0, 1] → ``uint8 [N, 3, H, W]`` (rounded, grey repeated)."""
    x = (images.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[1] != 3:
        raise ValueError(f"the Inception backend needs grey or RGB images, got {x.shape[1]} channels")
    return x


def load_extractor(path: Path, device: torch.device) -> torch.nn.Module:
    """torch-fidelity's InceptionV3 with the weights at ``path`` (checked with ``weights_only=True`` first)."""
    torch.load(path, map_location="cpu", weights_only=True)  # raises on a file holding arbitrary objects
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: Tensor, device: torch.device) -> Tensor:
    """2048-d pool features ``[N, 2048]`` (float64, CPU) of images ``[N, C, H, W]`` in [0, 1]."""
    out = []
    for start in phase(range(0, images.shape[0], CHUNK), f"Inception features of {images.shape[0]} images",
                       unit="chunk"):
        batch = to_rgb8(images[start : start + CHUNK]).to(device)
        out.append(model(batch)[0].double().cpu())
    return torch.cat(out)


def fid_inception(samples: Tensor, reference: Tensor, path: Path, device: torch.device | None = None) -> float:
    """Fréchet distance between Inception features of ``samples`` and ``reference`` images."""
    device = device or torch.device("cpu")
    model = load_extractor(path, device)
    return frechet_distance_of_features(inception_features(model, samples, device),
                                        inception_features(model, reference, device))
