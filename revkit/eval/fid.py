r"""The Fréchet distance between two sets of feature vectors, each summarised by a Gaussian.

For features with means :math:`μ_1, μ_2` and covariances :math:`Σ_1, Σ_2`,

.. math::
    d^2 = \lVert μ_1 - μ_2 \rVert^2 + \operatorname{tr}\bigl(Σ_1 + Σ_2 - 2\,(Σ_1 Σ_2)^{1/2}\bigr)

(the squared 2-Wasserstein distance of the two Gaussians; "FID" when the features are Inception's).
The trace of the matrix square root is computed without forming :math:`(Σ_1Σ_2)^{1/2}`, which is not
symmetric: with :math:`S = Σ_1^{1/2}` (symmetric, from an eigendecomposition of :math:`Σ_1`),
:math:`Σ_1Σ_2` is similar to the symmetric positive semi-definite :math:`M = S Σ_2 S`, so

.. math:: \operatorname{tr}(Σ_1 Σ_2)^{1/2} = \sum_i \sqrt{\max(λ_i(M), 0)}

in float64, clipping the tiny negative eigenvalues that rounding leaves. This avoids the complex
parts and ill-conditioning of a general ``sqrtm`` on nearly singular covariances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from revkit.errors import RevkitError


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``[D]`` and covariance ``[D, D]`` (float64) of ``count`` feature vectors."""

    mean: np.ndarray
    cov: np.ndarray
    count: int


def feature_stats(features: Tensor | np.ndarray) -> GaussianStats:
    """Mean and unbiased covariance (divisor ``N − 1``) of ``features [N, D]``, ``N ≥ 2``."""
    f = features.detach().cpu().double().numpy() if isinstance(features, Tensor) else np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise RevkitError(f"feature statistics need a [N ≥ 2, D] array, got shape {tuple(f.shape)}")
    if not np.isfinite(f).all():
        raise RevkitError("feature statistics: the features contain NaN or infinite values")
    mean = f.mean(axis=0)
    centred = f - mean
    cov = centred.T @ centred / (f.shape[0] - 1)
    return GaussianStats(mean, cov, int(f.shape[0]))


def psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues → 0)."""
    sym = 0.5 * (a + a.T)
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    r""":math:`\operatorname{tr}(Σ_1Σ_2)^{1/2}` through the symmetric :math:`Σ_1^{1/2} Σ_2 Σ_1^{1/2}`."""
    s = psd_sqrt(cov1)
    m = s @ cov2 @ s
    values = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """The squared Fréchet distance of the module docstring between two feature summaries (≥ 0)."""
    if a.mean.shape != b.mean.shape:
        raise RevkitError(f"Fréchet distance of features of different sizes: {a.mean.shape[0]} and {b.mean.shape[0]}")
    diff = a.mean - b.mean
    value = float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt_product(a.cov, b.cov))
    return max(value, 0.0)


def frechet_distance_of_features(f1: Tensor | np.ndarray, f2: Tensor | np.ndarray) -> float:
    """:func:`frechet_distance` between the Gaussian summaries of ``f1 [N1, D]`` and ``f2 [N2, D]``."""
    return frechet_distance(feature_stats(f1), feature_stats(f2))

