"""Evaluation: test-split metrics, pictures (samples, reconstructions, interpolations, dimension sweeps,
prior stds, 2-D plots, training curves) and scores (Fréchet distances, sample classification)."""

from revkit.eval.classifier import MnistClassifier, mnist_classifier
from revkit.eval.classifier_scores import fid_mnist_classifier, mnist_classifier_scores, sample_class_accuracy
from revkit.eval.dimension_sweep import write_dimension_sweeps
from revkit.eval.fid import feature_stats, frechet_distance, frechet_distance_of_features
from revkit.eval.interpolation import interpolate, write_interpolations
from revkit.eval.likelihood import evaluate_split
from revkit.eval.prior_stds import write_prior_stds
from revkit.eval.report import evaluate_run
from revkit.eval.restricted import restricted_reconstructions
from revkit.eval.samples import draw_samples, write_samples

__all__ = [
    "MnistClassifier",
    "draw_samples",
    "evaluate_run",
    "evaluate_split",
    "feature_stats",
    "fid_mnist_classifier",
    "frechet_distance",
    "frechet_distance_of_features",
    "interpolate",
    "mnist_classifier",
    "mnist_classifier_scores",
    "restricted_reconstructions",
    "sample_class_accuracy",
    "write_dimension_sweeps",
    "write_interpolations",
    "write_prior_stds",
    "write_samples",
]
