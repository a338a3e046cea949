"""The final evaluation of a run: the metrics (which the run layer writes to ``metrics.json``) and the
PNGs in the run folder.

Written files:

* ``metrics.json`` — ``test_<metric>`` for every metric of ``objective.evaluate`` (mean over the test
  split or ``eval.test_batches`` batches), ``main_metric`` (which of them summarises the run),
  ``test_samples``, ``max_reconstruction_error`` (``max |decode(encode(x)) − x|`` over one test
  batch), ``inverse`` (flows with iterative inverses: reconstruction error and a histogram of the
  fixed-point iterations on that batch, :mod:`revkit.eval.fixed_point`), ``active_dims_per_class`` (how many latent dimensions the prior keeps active, per class;
  one number for an unconditional prior), ``pictures`` (the PNGs written), the scores of
  ``eval.scores`` (below), and the budget the caller passes (steps, seconds, device, parameters,
  why it stopped). A picture or score that was asked for (or is a default) but cannot be made is
  listed with the reason under ``pictures_skipped`` or ``scores_unavailable`` — never dropped silently;
* ``samples.png`` — ``eval.samples`` samples at ``eval.temperature``; a labelled row per class for
  class-conditional models; for 2-D data a scatter of samples over test points;
* ``reconstructions.png`` — ``eval.reconstructions`` test images over their reconstructions; when
  the prior restricts latents (:meth:`revkit.priors.base.Prior.restrict`) three labelled rows:
  original / restricted / full (:mod:`revkit.eval.restricted`);
* ``interpolations.png`` — :mod:`revkit.eval.interpolation`;
* ``dimension_sweeps.png`` — :mod:`revkit.eval.dimension_sweep`;
* ``prior_stds.png`` — :mod:`revkit.eval.prior_stds`;
* ``density.png`` — for 2-D data, the model density on a grid;
* ``training_curve.png`` — from the training records.

``eval.pictures`` picks the pictures; left out, image models get ``samples`` and
``reconstructions``, and class-conditional ones also ``interpolations``, ``dimension_sweeps`` and
``prior_stds``. Scores (``eval.scores``, none by default), computed on ``eval.score_samples``
samples balanced over the classes:

* ``mnist_classifier`` → ``sample_class_accuracy``, ``fid_mnist_classifier``, the diversity scores
  ``sample_spread``, ``real_spread``, ``spread_ratio``, ``precision``, ``recall``
  (:mod:`revkit.eval.diversity`), ``mnist_classifier_test_accuracy``, ``score_samples``
  (:mod:`revkit.eval.classifier_scores`; needs the run's MNIST data source);
* ``inception`` → ``fid_inception`` (:mod:`revkit.eval.inception`; needs torch-fidelity and its
  weights on disk).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from revkit.data.base import DataSource
from revkit.eval.classifier_scores import CLASSIFIER_SCORES, classifier_unavailable, mnist_classifier_scores
from revkit.eval.curve import write_training_curve
from revkit.eval.dimension_sweep import write_dimension_sweeps
from revkit.eval.fixed_point import inverse_report, iterative_blocks
from revkit.eval.inception import fid_inception, unavailable_reason
from revkit.eval.interpolation import choose_pairs, write_interpolations
from revkit.eval.labelled_grid import write_labelled_rows
from revkit.eval.likelihood import evaluate_split, to_device
from revkit.eval.plots2d import write_density
from revkit.eval.prior_components import active_dims_per_class, component_means, component_stds, restricts
from revkit.eval.prior_stds import write_prior_stds
from revkit.eval.reconstruction import reconstruct, write_reconstructions
from revkit.eval.restricted import restricted_reconstructions, write_restricted_reconstructions
from revkit.eval.samples import check_sample_memory, class_count, draw_samples, is_2d, write_samples
from revkit.eval.score_samples import draw_score_samples
from revkit.model import Model
from revkit.objectives.base import Objective
from revkit.spec.models import EvalSpec

#: test points drawn for the 2-D plots.
POINTS_2D = 2000
#: the pictures of class-conditional models beyond samples and reconstructions.
CONDITIONAL_PICTURES = ["interpolations", "dimension_sweeps", "prior_stds"]

#: pictures drawn at each evaluation during training (for the experiment loggers), where the model has them.
TRAINING_PICTURES = ("samples", "reconstructions", "interpolations")

#: the scores in metrics.json that each entry of eval.scores gives.
SCORE_NAMES = {"mnist_classifier": CLASSIFIER_SCORES, "inception": ("fid_inception",)}

Log = Callable[[str], None]


def setting(settings: EvalSpec, name: str) -> Any:
    """``settings.<name>``, or the ``[eval]`` default for settings objects that predate the field."""
    if hasattr(settings, name):
        return getattr(settings, name)
    return EvalSpec.model_fields[name].get_default(call_default_factory=True)


def chosen_pictures(settings: EvalSpec, flow: Model) -> tuple[list[str], bool]:
    """The pictures to write, and whether the spec listed them (else they are the defaults)."""
    given = setting(settings, "pictures")
    if given is not None:
        return list(given), True
    if is_2d(flow):
        return ["samples"], False
    return ["samples", "reconstructions"] + (CONDITIONAL_PICTURES if class_count(flow) else []), False


def output_files(settings: EvalSpec, flow: Model) -> list[str]:
    """The pictures the final evaluation writes into the run folder (checked before training starts;
    the run layer adds the files it writes itself)."""
    names, _ = chosen_pictures(settings, flow)
    if is_2d(flow):
        pictures = ["samples.png"] * ("samples" in names) + ["density.png"]
    else:
        pictures = [f"{name}.png" for name in names]
    return [*pictures, "training_curve.png"]


def check_before_training(settings: EvalSpec, flow: Model) -> None:
    """What the final evaluation will allocate, checked before training starts (not after it)."""
    names, _ = chosen_pictures(settings, flow)
    n = int(setting(settings, "samples"))
    if "samples" in names and n > 0:
        check_sample_memory(flow, n, "eval.samples")


def _first_batch(loader: Iterable[Any], device: torch.device) -> tuple[Tensor, Tensor]:
    batch = next(iter(loader))
    x, y = to_device(batch, device)[:2]
    return x, y


def _points(loader: Iterable[Any], limit: int) -> Tensor:
    out: list[Tensor] = []
    count = 0
    for batch in loader:
        out.append(batch[0].detach().float().cpu())
        count += batch[0].shape[0]
        if count >= limit:
            break
    return torch.cat(out)[:limit]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_class_samples(flow: Model, path: Path, n: int, temperature: float) -> Path:
    """Class-conditional samples as a labelled row per class (``⌈n / classes⌉`` per row)."""
    check_sample_memory(flow, n, "eval.samples")
    images, per_row = draw_samples(flow, n, temperature)
    rows = list(images.split(per_row))
    return write_labelled_rows(rows, [f"class {k}" for k in range(len(rows))], path,
                               title=f"samples, a row per class (T = {temperature:g})")


class _Pictures:
    """Writes the image pictures of one evaluation and records what was written or skipped."""

    def __init__(self, flow: Model, settings: EvalSpec, run_dir: Path, x: Tensor, y: Tensor, x_hat: Tensor):
        self.flow, self.settings, self.run_dir = flow, settings, run_dir
        self.x, self.y, self.x_hat = x, y, x_hat
        self.written: list[str] = []
        self.skipped: dict[str, str] = {}

    def make(self, name: str) -> None:
        path = self.run_dir / f"{name}.png"
        reason = getattr(self, f"_{name}")(path)
        if reason:
            self.skipped[name] = reason
        else:
            self.written.append(path.name)

    def _samples(self, path: Path) -> str:
        n, temperature = int(setting(self.settings, "samples")), float(setting(self.settings, "temperature"))
        if n <= 0:
            return "eval.samples = 0"
        if class_count(self.flow):
            write_class_samples(self.flow, path, n, temperature)
        else:
            write_samples(self.flow, path, n, temperature, where="eval.samples")
        return ""

    def _reconstructions(self, path: Path) -> str:
        k = int(setting(self.settings, "reconstructions"))
        if k <= 0:
            return "eval.reconstructions = 0"
        if restricts(self.flow.prior):
            restricted, full = restricted_reconstructions(self.flow, self.x[:k], self.y[:k])
            write_restricted_reconstructions(self.x[:k], restricted, full, path)
        else:
            write_reconstructions(self.x[:k], self.x_hat[:k], path)
        return ""

    def _interpolations(self, path: Path) -> str:
        pairs = choose_pairs(self.y, int(setting(self.settings, "interpolation_pairs")))
        if not pairs:
            return "the first test batch has no two images to interpolate between"
        write_interpolations(self.flow, self.x, self.y, pairs, int(setting(self.settings, "interpolation_steps")),
                             path)
        return ""

    def _dimension_sweeps(self, path: Path) -> str:
        stds, why = component_stds(self.flow.prior)
        means, why_means = component_means(self.flow.prior)
        if stds is None or means is None:
            return why or why_means
        write_dimension_sweeps(self.flow, means, stds, int(setting(self.settings, "sweep_dims")),
                               int(setting(self.settings, "sweep_steps")), path)
        return ""

    def _prior_stds(self, path: Path) -> str:
        stds, why = component_stds(self.flow.prior)
        if stds is None:
            return why
        prior = self.flow.prior
        assert prior is not None
        write_prior_stds(stds, path, active_dims_per_class(prior), conditional=prior.conditional)
        return ""


def compute_scores(flow: Model, settings: EvalSpec, test_loader: Iterable[Any], source: DataSource | None,
                   device: torch.device, log: Log) -> tuple[dict[str, Any], dict[str, str]]:
    """The scores of ``eval.scores`` and the reasons of those that could not be computed."""
    wanted = list(setting(settings, "scores"))
    values: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    if not wanted:
        return values, unavailable
    if is_2d(flow):
        return values, {score: "the data are 2-D points, not images" for name in wanted for score in SCORE_NAMES[name]}
    if "mnist_classifier" in wanted:
        reason = classifier_unavailable(source, tuple(flow.input_shape))
        if reason:
            unavailable.update(dict.fromkeys(CLASSIFIER_SCORES, reason))
            wanted.remove("mnist_classifier")
    weights: Path | None = None
    if "inception" in wanted:
        weights, reason = unavailable_reason(setting(settings, "inception_weights"))
        if weights is None:
            unavailable["fid_inception"] = reason
            wanted.remove("inception")
    if not wanted:
        return values, unavailable
    n, temperature = int(setting(settings, "score_samples")), float(setting(settings, "temperature"))
    log(f"drawing {n} samples for the scores")
    samples, intended = draw_score_samples(flow, n, temperature)
    if "mnist_classifier" in wanted:
        scores = mnist_classifier_scores(samples, intended, source, log=log, device=device)
        values.update(scores.values)
        unavailable.update(scores.unavailable)
    if weights is not None:
        reference = _points(test_loader, n)
        log(f"Inception FID on {n} samples and {reference.shape[0]} test images")
        values["fid_inception"] = fid_inception(samples, reference, weights, device)
    return values, unavailable


def evaluate_run(
    flow: Model,
    objective: Objective,
    test_loader: Iterable[Any],
    settings: EvalSpec,
    run_dir: Path,
    device: torch.device,
    budget: dict[str, Any],
    records: Sequence[dict[str, Any]] = (),
    source: DataSource | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Evaluate, write the pictures listed in the module docstring into ``run_dir``, and return the
    metrics (the run layer writes them to ``metrics.json``).

    Args:
        source: the run's data source; the ``mnist_classifier`` score trains its classifier on it.
        log: receives progress lines (the classifier's training, …); default: standard error.
    """
    log = log or _stderr
    run_dir = Path(run_dir)
    means, count = evaluate_split(flow, objective, test_loader, device, int(settings.test_batches))
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in means.items()}
    metrics["main_metric"] = f"test_{objective.main_metric}"
    metrics["test_samples"] = count

    x, y = _first_batch(test_loader, device)
    x_hat, error = reconstruct(flow, x, y)
    metrics["max_reconstruction_error"] = error
    if iterative_blocks(flow):  # iterative inverses: their error and iterations on this batch
        metrics["inverse"] = inverse_report(flow, x, y)
    active = active_dims_per_class(flow.prior)
    if active is not None:
        metrics["active_dims_per_class"] = active

    names, _ = chosen_pictures(settings, flow)
    pictures = _Pictures(flow, settings, run_dir, x, y, x_hat)
    if is_2d(flow):
        points = _points(test_loader, POINTS_2D)
        n = int(setting(settings, "samples"))
        for name in names:
            if name != "samples":
                pictures.skipped[name] = "the data are 2-D points, not images"
            elif n <= 0:
                pictures.skipped[name] = "eval.samples = 0"
            else:
                write_samples(flow, run_dir / "samples.png", n, float(settings.temperature), points)
                pictures.written.append("samples.png")
        with flow.exact_logdet_mode():  # a stochastic log-det would speckle the picture; 2-D is cheap to do exactly
            write_density(flow, run_dir / "density.png", points)
        pictures.written.append("density.png")
    else:
        for name in names:
            pictures.make(name)
    write_training_curve(records, run_dir / "training_curve.png")
    pictures.written.append("training_curve.png")
    metrics["pictures"] = pictures.written
    if pictures.skipped:
        metrics["pictures_skipped"] = pictures.skipped

    scores, unavailable = compute_scores(flow, settings, test_loader, source, device, log)
    metrics.update(scores)
    if unavailable:
        metrics["scores_unavailable"] = unavailable
    metrics.update(budget)
    return metrics



def evaluation_pictures(flow: Model, settings: EvalSpec, test_loader: Iterable[Any], device: torch.device,
                        out_dir: Path) -> dict[str, Path]:
    """The pictures of :data:`TRAINING_PICTURES` that the spec's ``eval.pictures`` (or its defaults) ask
    for, drawn into ``out_dir`` for the model as it is now (an evaluation during training); name → PNG.

    The random state and the model's train/eval mode are left as they were, so a run draws the same
    batches and noise whether or not anything watches it.
    """
    out_dir = Path(out_dir)
    forked = [device] if device.type == "cuda" else []
    training = flow.training
    written: dict[str, Path] = {}
    with torch.random.fork_rng(devices=forked):
        try:
            x, y = _first_batch(test_loader, device)
            if is_2d(flow):
                n = int(setting(settings, "samples"))
                if n > 0:
                    written["samples"] = write_samples(flow, out_dir / "samples.png", n,
                                                       float(settings.temperature), _points(test_loader, POINTS_2D))
                return written
            x_hat, _ = reconstruct(flow, x, y)
            names, _ = chosen_pictures(settings, flow)
            pictures = _Pictures(flow, settings, out_dir, x, y, x_hat)
            for name in names:
                if name in TRAINING_PICTURES:
                    pictures.make(name)
            return {Path(f).stem: out_dir / f for f in pictures.written}
        finally:
            flow.train(training)


def objective_histograms(flow: Model, metrics: dict[str, Any]) -> dict[str, Any]:
    """What the objective and the model report as distributions, for the loggers' histograms: the prior's
    stds per class (``prior_stds/class_<k>``; ``prior_stds`` for one component) and the fixed-point
    iterations of iterative inverses (``fixed_point_iterations``, from ``metrics["inverse"]``)."""
    import numpy as np

    out: dict[str, Any] = {}
    stds, _ = component_stds(flow.prior)
    if stds is not None:
        flat = stds.detach().double().cpu().reshape(stds.shape[0], -1).numpy()
        if flat.shape[0] == 1:
            out["prior_stds"] = flat[0]
        else:
            out.update({f"prior_stds/class_{k}": row for k, row in enumerate(flat)})
    histogram = (metrics.get("inverse") or {}).get("iterations_histogram")
    if histogram:
        out["fixed_point_iterations"] = np.repeat([float(k) for k in histogram], [int(v) for v in histogram.values()])
    return out
