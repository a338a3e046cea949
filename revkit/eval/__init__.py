"""Evaluation: test-split metrics, sample and reconstruction grids, 2-D plots, training curves."""

from revkit.eval.likelihood import evaluate_split
from revkit.eval.report import evaluate_run
from revkit.eval.samples import draw_samples, write_samples

__all__ = ["draw_samples", "evaluate_run", "evaluate_split", "write_samples"]
