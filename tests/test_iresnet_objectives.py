"""The classifier objective on tiny data, and the evaluation of fixed-point inverses (the
``inverse`` section of metrics.json)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import Tensor

from revkit.blocks.iresnet import IResNet
from revkit.blocks.reshape import Flatten
from revkit.data.base import DataInfo
from revkit.errors import RevkitError
from revkit.eval.fixed_point import (
    inverse_report,
    iterative_blocks,
    merge_inverse_reports,
)
from revkit.flow import Flow
from revkit.objectives.classifier import Classifier, skipping_logdet_estimates
from revkit.plugins import get_registries
from revkit.priors import StandardNormal

INFO = DataInfo(shape=(4,), classes=3, levels=None, name="blobs")


def _blobs(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Three Gaussian blobs in 4-D, one per class, centred on ±2 along different axes."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [-2.0, -2.0, 0, 0]])
    return centres[y] + 0.7 * torch.randn(n, 4, generator=g), y


def _flow(shape: tuple[int, ...] = (4,), **params: object) -> Flow:
    torch.manual_seed(0)
    blocks = [IResNet(shape, hidden=16, **params) for _ in range(2)]  # type: ignore[arg-type]
    return Flow(blocks, shape, prior=StandardNormal(shape))


def _train(flow: Flow, objective: Classifier, steps: int) -> None:
    params = objective.parameter_groups(flow)["model"]
    opt = torch.optim.Adam(params, lr=1e-2)
    flow.train()
    for step in range(steps):
        out = objective.losses(flow, _blobs(64, seed=step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()


def test_classifier_is_registered() -> None:
    assert get_registries().objectives.get("classifier") is Classifier


def test_the_classifier_learns_tiny_data_and_reports_accuracy() -> None:
    flow, objective = _flow(), Classifier()
    objective.setup(flow, INFO)
    test = _blobs(300, seed=10_000)
    before = objective.evaluate(flow.eval(), test)["accuracy"].mean()
    _train(flow, objective, steps=150)
    metrics = objective.evaluate(flow.eval(), test)
    assert set(metrics) == {"cross_entropy", "accuracy", "error_rate"}
    assert all(v.shape == (300,) for v in metrics.values())
    assert torch.equal(metrics["error_rate"], 1 - metrics["accuracy"])
    accuracy = float(metrics["accuracy"].mean())
    assert accuracy > 0.95 and accuracy > float(before) + 0.2
    assert objective.main_metric == "error_rate"


def test_the_head_is_trained_with_the_flow() -> None:
    flow, objective = _flow(), Classifier(head_hidden=8)
    objective.setup(flow, INFO)
    head = set(map(id, objective.head.parameters()))  # type: ignore[union-attr]
    group = objective.parameter_groups(flow)["model"]
    assert head <= set(map(id, group)) and set(map(id, flow.parameters())) <= set(map(id, group))
    out = objective.losses(flow, _blobs(16, seed=0))
    out.loss.backward()
    assert all(p.grad is not None for p in group)


def test_log_dets_are_skipped_when_only_the_outputs_are_used() -> None:
    flow = _flow()
    x = _blobs(8, seed=0)[0]
    with skipping_logdet_estimates(flow):
        _, logdet = flow(x)
    assert bool(torch.isnan(logdet).all())
    _, logdet_again = flow.eval()(x)
    assert bool(torch.isfinite(logdet_again).all())
    flow.train()
    assert not any(m.skip_logdet for m in flow.modules() if hasattr(m, "skip_logdet"))


def test_the_hybrid_loss_adds_bits_per_dim() -> None:
    flow, objective = _flow(), Classifier(nll_weight=0.5)
    objective.setup(flow, INFO)
    batch = _blobs(16, seed=0)
    torch.manual_seed(0)
    out = objective.losses(flow, batch)
    assert set(out.metrics) == {"cross_entropy", "accuracy", "bits_per_dim"}
    expected = out.metrics["cross_entropy"] + 0.5 * out.metrics["bits_per_dim"]
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert "bits_per_dim" in objective.evaluate(flow.eval(), batch)


def test_the_classifier_needs_labelled_data() -> None:
    with pytest.raises(RevkitError, match="at least 2 classes"):
        Classifier().setup(_flow(), DataInfo(shape=(4,), classes=0, levels=None, name="unlabelled"))


def test_the_inverse_report_counts_every_inversion() -> None:
    flow = _flow((1, 4, 4), inverse_tol=1e-7)
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    report = inverse_report(flow, x)
    assert len(iterative_blocks(flow)) == 2 and report["blocks"] == 2
    assert report["images"] == 6
    assert sum(report["iterations_histogram"].values()) == 2 * 6
    assert report["max_iterations"] == max(int(k) for k in report["iterations_histogram"])
    assert report["unconverged"] == 0 and report["max_error"] < 1e-5
    assert len(report["per_block_max_iterations"]) == 2
    assert 1 <= report["mean_iterations"] <= report["max_iterations"]
    assert flow.training  # the mode is restored


def test_the_inverse_reports_of_two_batches_merge_into_the_report_of_their_union() -> None:
    flow = _flow((1, 4, 4), inverse_tol=1e-4, inverse_max_iter=4)
    x = torch.rand(9, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = inverse_report(flow, x, threshold=1e-6)
        merged = merge_inverse_reports([inverse_report(flow, x[:4], threshold=1e-6),
                                        inverse_report(flow, x[4:], threshold=1e-6)])
    assert merged["mean_iterations"] == pytest.approx(whole.pop("mean_iterations"))
    assert merged.pop("mean_iterations") > 1
    assert merged == whole
    assert 0 < whole["images_over_threshold"] <= 9  # the cap leaves some images above 1e-6


def test_inverse_reports_with_different_thresholds_do_not_merge() -> None:
    flow = _flow((4,))
    x = _blobs(3, seed=0)[0]
    with pytest.raises(ValueError, match="different thresholds"):
        merge_inverse_reports([inverse_report(flow, x, threshold=1e-4), inverse_report(flow, x, threshold=1e-5)])
    with pytest.raises(ValueError, match="at least one"):
        merge_inverse_reports([])


def test_the_inverse_report_counts_unconverged_inversions() -> None:
    flow = _flow((4,), inverse_max_iter=1, inverse_tol=1e-12)
    with pytest.warns(UserWarning, match="did not converge"):
        report = inverse_report(flow, _blobs(5, seed=0)[0])
    assert report["unconverged"] == 10 and report["iterations_histogram"] == {"1": 10}
    assert not math.isnan(report["max_error"]) and report["max_error"] > 1e-6


def test_the_classifier_spec_builds_an_invertible_flow_with_an_mlp_head() -> None:
    from pathlib import Path

    from revkit.build import build_model, build_objective
    from revkit.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / "mnist_iresnet_classifier.toml")
    info = DataInfo(shape=(1, 28, 28), classes=10, levels=256, name="mnist")
    flow = build_model(spec, info)
    objective = build_objective(spec, flow, info)
    assert isinstance(objective, Classifier)
    assert isinstance(flow.net[-1], Flatten) and len(iterative_blocks(flow)) == 12
    # the measured setting (docs/iresnet_classifier.md, row 12)
    assert objective.head_hidden == 256 and objective.label_smoothing == 0.1 and spec.data.shift == 2
    assert spec.train.precision == "bfloat16" and not spec.train.memory_saving
    logits = objective.logits(flow.eval(), torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 10)
