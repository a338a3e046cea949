"""The evaluation pictures: restricted reconstructions, interpolations, dimension sweeps, prior stds,
and what the final evaluation writes for a tiny class-conditional flow with collapsing stds."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from revkit.blocks import AffineCoupling, Flatten
from revkit.errors import SpecError
from revkit.eval.dimension_sweep import RANGE, sweep_latents, top_dims
from revkit.eval.interpolation import choose_pairs, interpolate
from revkit.eval.labelled_grid import PAD, TITLE_HEIGHT, cell_scale, label_strip_width
from revkit.eval.prior_components import active_dims_per_class, component_stds
from revkit.eval.report import chosen_pictures, evaluate_run
from revkit.eval.restricted import restricted_reconstructions
from revkit.flow import Flow
from revkit.objectives.base import Objective
from revkit.priors import StandardNormal
from revkit.priors.base import Prior
from revkit.spec import load_spec_dict

SHAPE = (1, 8, 8)
CLASSES = 3
LATENT = 64


class CollapsingPrior(Prior):
    """One diagonal Gaussian per class whose stds are exactly 0 on some dimensions (as the seed paper's
    prior after training): class c keeps the first ``8 · (c + 1)`` dimensions active, with stds
    decreasing from 1; the others have std 0 and sit at the class mean."""

    conditional = True

    def __init__(self, shape: tuple[int, ...] = (LATENT,), classes: int = CLASSES):
        super().__init__(shape)
        self._classes = classes
        g = torch.Generator().manual_seed(3)
        self.means = nn.Parameter(0.3 * torch.randn(classes, *shape, generator=g))
        stds = torch.zeros(classes, *shape)
        for c in range(classes):
            k = 8 * (c + 1)
            stds[c, :k] = torch.linspace(1.0, 0.1, k)
        self.stds = nn.Parameter(stds)
        self.restrict_calls = 0

    @property
    def classes(self) -> int:
        return self._classes

    def component_means(self) -> Tensor:
        return self.means

    def component_stds(self) -> Tensor:
        return self.stds

    def active_dims(self, y: Tensor | None = None) -> Tensor:
        mask = self.stds > 0
        return mask.any(0, keepdim=True) if y is None else mask[y]

    def restrict(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        assert y is not None, "the class prior needs labels to restrict"
        self.restrict_calls += 1
        return torch.where(self.stds[y] > 0, z, self.means[y])

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        return -0.5 * z.pow(2).sum(1)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        assert y is not None
        return self.means[y] + temperature * self.stds[y] * torch.randn(n, *self.shape)


class Nll(Objective):
    main_metric = "nll"

    def losses(self, flow: Flow, batch: Any, update: str = "model") -> Any:  # pragma: no cover - unused
        raise NotImplementedError

    def evaluate(self, flow: Flow, batch: Any) -> dict[str, Tensor]:
        x, y = batch[:2]
        return {"nll": -flow.log_prob(x, y)}


def toy_flow(prior: Prior | None = None) -> Flow:
    """Images 1×8×8 → a coupling → the 64-dim latent, with random (not identity) weights."""
    torch.manual_seed(0)
    coupling = AffineCoupling(SHAPE, hidden=8, mask="checkerboard")
    with torch.no_grad():
        for p in coupling.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return Flow([coupling, Flatten(SHAPE)], SHAPE, prior=prior or CollapsingPrior(), classes=CLASSES)


def labelled_images(n: int = 30) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, *SHAPE, generator=g), torch.arange(n) % CLASSES)


def eval_settings(**kw: Any) -> SimpleNamespace:
    base = dict(samples=6, temperature=1.0, reconstructions=5, test_batches=0, pictures=None, scores=[],
                score_samples=100, interpolation_pairs=2, interpolation_steps=4, sweep_dims=3, sweep_steps=5,
                inception_weights=None)
    base.update(kw)
    return SimpleNamespace(**base)


def grid_box(rows: int, cols: int, labels: list[str], side: int = 8) -> tuple[int, int, int, int]:
    """Expected (left, top, width, height) of the image grid in a labelled picture of ``side``-pixel
    images with a title (see revkit.eval.labelled_grid)."""
    s = cell_scale(side)
    return label_strip_width(labels), TITLE_HEIGHT, s * (PAD + cols * (side + PAD)), s * (PAD + rows * (side + PAD))


def run_eval(tmp_path: Path, flow: Flow, **kw: Any) -> dict[str, Any]:
    data = labelled_images()
    return evaluate_run(flow, Nll(), DataLoader(data, batch_size=30), eval_settings(**kw), tmp_path,
                        torch.device("cpu"), {"steps": 0}, [], log=lambda _t: None)


# -- restricted reconstructions -------------------------------------------------------------------
def test_restricted_reconstruction_decodes_the_latent_that_prior_restrict_returns() -> None:
    flow = toy_flow()
    x, y = labelled_images(6).tensors
    restricted, full = restricted_reconstructions(flow, x, y)
    assert flow.prior.restrict_calls == 1
    with torch.no_grad():
        z = flow.encode(x)
        expected = flow.decode(torch.where(flow.prior.stds[y] > 0, z, flow.prior.means[y]))
    torch.testing.assert_close(restricted, expected)
    torch.testing.assert_close(full, x, atol=1e-5, rtol=0)
    assert (restricted - x).abs().max() > 0.01  # collapsed dimensions do change the image


def test_a_prior_that_does_not_restrict_gives_restricted_equal_to_full() -> None:
    flow = toy_flow(StandardNormal((LATENT,)))
    x, y = labelled_images(4).tensors
    restricted, full = restricted_reconstructions(flow, x, y)
    torch.testing.assert_close(restricted, full)


# -- interpolations -------------------------------------------------------------------------------
def test_interpolation_pairs_share_or_differ_in_class() -> None:
    y = torch.tensor([0, 1, 1, 2, 0, 2, 3])
    pairs = choose_pairs(y, count=5)
    same = [p for p in pairs if p.same_class]
    different = [p for p in pairs if not p.same_class]
    assert [(p.a, p.b) for p in same] == [(0, 4), (1, 2), (3, 5)]
    assert all(y[p.a] == y[p.b] for p in same) and all(y[p.a] != y[p.b] for p in different)
    assert [(p.a, p.b) for p in different] == [(0, 1), (3, 6)]
    assert len(choose_pairs(y, count=1)) == 2
    assert all(p.same_class for p in choose_pairs(torch.zeros(4, dtype=torch.long), count=3))


@pytest.mark.parametrize("restricted", [True, False])
def test_interpolation_endpoints_are_the_reconstructions_of_the_endpoints(restricted: bool) -> None:
    flow = toy_flow()
    x, y = labelled_images(6).tensors
    xa, xb, ya, yb = x[:3], x[3:], y[:3], y[3:]
    path = interpolate(flow, xa, xb, ya, yb, steps=5, restricted=restricted)
    assert path.shape == (3, 5, *SHAPE)
    rec_a = restricted_reconstructions(flow, xa, ya)[0 if restricted else 1]
    rec_b = restricted_reconstructions(flow, xb, yb)[0 if restricted else 1]
    torch.testing.assert_close(path[:, 0], rec_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(path[:, -1], rec_b, atol=1e-5, rtol=0)
    with torch.no_grad():  # the middle is the decoding of the latent midpoint
        za, zb = flow.encode(xa), flow.encode(xb)
        if restricted:
            za, zb = flow.prior.restrict(za, ya), flow.prior.restrict(zb, yb)
        torch.testing.assert_close(path[:, 2], flow.decode(0.5 * (za + zb)), atol=1e-5, rtol=0)


# -- dimension sweeps -----------------------------------------------------------------------------
def test_sweeps_move_one_top_std_dimension_from_minus_to_plus_two_stds() -> None:
    prior = CollapsingPrior()
    means, stds = prior.means.detach(), prior.stds.detach()
    z, index = sweep_latents(means, stds, dims=3, steps=5)
    assert z.shape == (CLASSES, 3, 5, LATENT)
    assert index.tolist() == [[0, 1, 2]] * CLASSES  # stds decrease from dimension 0 on
    for c in range(CLASSES):
        for j, d in enumerate(index[c].tolist()):
            moved = (z[c, j] - means[c]).abs().amax(0) > 0
            assert moved.nonzero().flatten().tolist() == [d]
            assert z[c, j, 0, d] == pytest.approx(float(means[c, d] - RANGE * stds[c, d]))
            assert z[c, j, -1, d] == pytest.approx(float(means[c, d] + RANGE * stds[c, d]))
            assert z[c, j, 2, d] == pytest.approx(float(means[c, d]))


def test_top_dims_picks_the_largest_stds_of_each_component() -> None:
    stds = torch.tensor([[0.1, 0.0, 3.0, 2.0], [5.0, 1.0, 0.0, 0.5]])
    index, values = top_dims(stds, 2)
    assert index.tolist() == [[2, 3], [0, 1]] and values.tolist() == [[3.0, 2.0], [5.0, 1.0]]


# -- what the evaluation reads from priors --------------------------------------------------------
def test_component_stds_and_active_dims_come_from_the_prior() -> None:
    prior = CollapsingPrior()
    stds, why = component_stds(prior)
    assert why == "" and stds is not None and stds.shape == (CLASSES, LATENT)
    assert active_dims_per_class(prior) == [8, 16, 24]
    none, reason = component_stds(StandardNormal((LATENT,)))
    assert none is None and "StandardNormal" in reason and "component_stds" in reason


# -- the final evaluation -------------------------------------------------------------------------
def test_default_pictures_depend_on_the_model_kind() -> None:
    assert chosen_pictures(eval_settings(), toy_flow()) == (
        ["samples", "reconstructions", "interpolations", "dimension_sweeps", "prior_stds"], False)
    unconditional = Flow([Flatten(SHAPE)], SHAPE, prior=StandardNormal((LATENT,)))
    assert chosen_pictures(eval_settings(), unconditional) == (["samples", "reconstructions"], False)
    assert chosen_pictures(SimpleNamespace(samples=4), unconditional) == (["samples", "reconstructions"], False)
    assert chosen_pictures(eval_settings(pictures=["prior_stds"]), unconditional) == (["prior_stds"], True)


def test_a_class_conditional_flow_gets_every_picture_with_the_expected_grid(tmp_path: Path) -> None:
    metrics = run_eval(tmp_path, toy_flow())
    assert metrics["pictures"] == ["samples.png", "reconstructions.png", "interpolations.png",
                                   "dimension_sweeps.png", "prior_stds.png", "training_curve.png"]
    assert "pictures_skipped" not in metrics and metrics["active_dims_per_class"] == [8, 16, 24]
    assert json.dumps(metrics)  # plain JSON data, as the run layer writes it to metrics.json

    def layout(name: str) -> tuple[int, int, tuple[int, ...]]:
        image = Image.open(tmp_path / name)
        box = tuple(int(v) for v in image.text["revkit:grid"].split())
        assert image.size[0] >= box[0] + box[2] and image.size[1] == box[1] + box[3]
        return int(image.text["revkit:rows"]), int(image.text["revkit:cols"]), box

    # samples: 6 over 3 classes → a row per class, 2 per row
    assert layout("samples.png") == (3, 2, grid_box(3, 2, [f"class {k}" for k in range(3)]))
    # reconstructions: original / restricted / full of 5 test images
    assert layout("reconstructions.png") == (3, 5, grid_box(3, 5, ["original", "restricted", "full"]))
    # interpolations: 2 same-class + 1 different-class pair (labels 0, 1, 2, 0, …), restricted and
    # full rows, each: original, 4 steps, original
    rows, cols, box = layout("interpolations.png")
    assert (rows, cols) == (6, 6) and box[1:] == grid_box(6, 6, [])[1:]
    # sweeps: 3 classes × 3 dimensions, 5 steps each
    rows, cols, box = layout("dimension_sweeps.png")
    assert (rows, cols) == (9, 5) and box[1:] == grid_box(9, 5, [])[1:]
    stds = np.asarray(Image.open(tmp_path / "prior_stds.png").convert("L"))
    assert stds.shape[0] > 200 and stds.std() > 0


def test_pictures_are_images_a_person_can_read(tmp_path: Path) -> None:
    run_eval(tmp_path, toy_flow(), pictures=["reconstructions"])
    image = np.asarray(Image.open(tmp_path / "reconstructions.png").convert("L")).astype(int)
    left = label_strip_width(["original", "restricted", "full"])
    labels, grid = image[TITLE_HEIGHT:, :left], image[TITLE_HEIGHT:, left:]
    assert (labels < 128).any(), "the row labels are drawn"
    s = cell_scale(8)
    assert (grid[: PAD * s] == 255).all() and (grid[:, : PAD * s] == 255).all(), "a white padding frame"
    cell = grid[PAD * s : PAD * s + 8 * s, PAD * s : PAD * s + 8 * s]
    assert cell.std() > 0, "the first cell shows an image"


def test_pictures_that_cannot_be_made_are_reported_with_the_reason(tmp_path: Path) -> None:
    flow = toy_flow(StandardNormal((LATENT,)))
    metrics = run_eval(tmp_path, flow, pictures=["reconstructions", "prior_stds", "dimension_sweeps"])
    assert metrics["pictures"] == ["reconstructions.png", "training_curve.png"]
    assert set(metrics["pictures_skipped"]) == {"prior_stds", "dimension_sweeps"}
    assert "component_stds" in metrics["pictures_skipped"]["prior_stds"]
    assert not (tmp_path / "prior_stds.png").exists()
    # a prior that does not restrict keeps today's two rows: originals over reconstructions
    assert Image.open(tmp_path / "reconstructions.png").size == (2 + 5 * 10, 2 + 2 * 10)
    assert metrics["active_dims_per_class"] == [LATENT]


def test_the_eval_table_validates_pictures_and_scores() -> None:
    base: dict[str, Any] = {"model": {"layers": [{"block": "permute"}]}, "data": {"kind": "toy2d"}}
    spec = load_spec_dict({**base, "eval": {"pictures": ["samples", "prior_stds"], "scores": ["mnist_classifier"],
                                            "interpolation_steps": 6}})
    assert spec.eval.pictures == ["samples", "prior_stds"] and spec.eval.scores == ["mnist_classifier"]
    assert load_spec_dict(base).eval.pictures is None and load_spec_dict(base).eval.scores == []
    for table, path, words in [({"pictures": ["samples", "sampels"]}, "eval.pictures[1]", "prior_stds"),
                               ({"scores": ["fid"]}, "eval.scores[0]", "inception"),
                               ({"scores": ["inception", "inception"]}, "eval.scores", "more than once"),
                               ({"interpolation_steps": 1}, "eval.interpolation_steps", "≥ 2")]:
        with pytest.raises(SpecError) as err:
            load_spec_dict({**base, "eval": table})
        assert err.value.path == path and words in str(err.value)
