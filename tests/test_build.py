"""The builder and ``revkit inspect``'s summary: spec → flow, prior, objective and data source.

Small working components are registered through the plugin hooks next to the built-ins, so the
builder is tested the way it meets third-party blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.blocks.split import Split
from revkit.build import Built, build, build_data, build_model, data_info, plan_layers
from revkit.data.base import DataInfo, DataParams, DataSource
from revkit.errors import RevkitError, ShapeError, SpecError
from revkit.invertible import BlockParams, Invertible, Shape, check_rank, sum_except_batch
from revkit.objectives.base import Objective, ObjectiveParams
from revkit.plugins import get_registries, hookimpl, load_registries
from revkit.priors.base import Prior, PriorParams
from revkit.sequential import Sequential
from revkit.spec import load_spec, load_spec_dict
from revkit.summary import describe, layer_table, parameter_count, render_inspect

REPO = Path(__file__).resolve().parents[1]


# -- small working components ----------------------------------------------------------------
class ShiftCouplingParams(BlockParams):
    hidden: int = Field(4, gt=0)
    flip: bool = False


class ShiftCoupling(Invertible):
    r"""Additive coupling on the first dimension: :math:`y_b = x_b + t(x_a)`, log-det 0.
    Needs an even size along dimension 0; ``flip`` swaps the halves' roles."""

    Params = ShiftCouplingParams
    volume_preserving = True

    def __init__(self, input_shape: Shape, hidden: int = 4, flip: bool = False):
        super().__init__()
        if input_shape[0] % 2:
            raise ShapeError(f"shift_coupling splits dimension 0 in halves and needs it even, got {input_shape[0]}")
        self.half = (input_shape[0] // 2, *input_shape[1:])
        self.hidden, self.flip = hidden, flip
        n = int(torch.tensor(self.half).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, n))

    def _halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = x.chunk(2, dim=1)
        return (b, a) if self.flip else (a, b)

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([b, a] if self.flip else [a, b], dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = self._halves(x)
        return self._join(a, b + self.net(a).reshape(b.shape)), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = self._halves(y)
        return self._join(a, b - self.net(a).reshape(b.shape)), self.zero_logdet(y)

    def describe(self) -> str:
        return f"ShiftCoupling({self.hidden})"


class Halve(Invertible):
    """Space-to-depth: ``(C, H, W) → (4C, H/2, W/2)``; H and W must be even."""

    supported_ranks = (3,)
    volume_preserving = True

    def __init__(self, input_shape: Shape):
        super().__init__()
        check_rank("halve", input_shape, (3,))
        self.output_shape(input_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        c, h, w = input_shape
        if h % 2 or w % 2:
            raise ShapeError(f"halve needs even height and width, got {tuple(input_shape)}")
        return (4 * c, h // 2, w // 2)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return nn.functional.pixel_unshuffle(x, 2), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return nn.functional.pixel_shuffle(y, 2), self.zero_logdet(y)


class ContextShift(Invertible):
    """``y = x + W·c`` for a one-hot context ``c``; records the ``context_size`` it was given."""

    conditional = True
    volume_preserving = True

    def __init__(self, input_shape: Shape, context_size: int = 0):
        super().__init__()
        self.context_size = context_size
        self.weight = nn.Parameter(torch.zeros(max(context_size, 1), *input_shape))

    def _shift(self, context: Tensor | None) -> Tensor | float:
        return 0.0 if context is None else torch.einsum("bk,k...->b...", context, self.weight)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x + self._shift(context), self.zero_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y - self._shift(context), self.zero_logdet(y)


class Normal(Prior):
    """Standard normal on the latent."""

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        return sum_except_batch(-0.5 * z**2 - 0.5 * torch.log(torch.tensor(2 * torch.pi)))

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        return temperature * torch.randn(n, *self.shape)


class ClassMeansParams(PriorParams):
    classes: int | None = Field(None, ge=1)


class ClassMeans(Normal):
    """A unit Gaussian per class with learned means."""

    Params = ClassMeansParams
    conditional = True

    def __init__(self, shape: Shape, classes: int | None = None):
        super().__init__(shape)
        if classes is None:
            raise RevkitError("class_means needs classes")
        self._classes = classes
        self.means = nn.Parameter(torch.zeros(classes, *self.shape))

    @property
    def classes(self) -> int:
        return self._classes


class NllParams(ObjectiveParams):
    weight: float = Field(1.0, gt=0.0)


class Nll(Objective):
    """Negative log-likelihood; remembers what ``setup`` was given."""

    Params = NllParams

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight
        self.seen: DataInfo | None = None

    def setup(self, model: Any, data: DataInfo) -> None:
        self.seen = data


class PointsParams(DataParams):
    dim: int = Field(2, ge=1)


class Points(DataSource):
    """Unlabelled points in ``dim`` dimensions; reads no files."""

    Params = PointsParams
    needs_root = False

    def __init__(self, root: Path | None = None, dim: int = 2):
        self.root = root
        self.info = DataInfo(shape=(dim,), classes=0, levels=None, name="build_points")

    def dataset(self, split: str) -> Any:
        raise AssertionError("building must not read data")


class PicturesParams(DataParams):
    channels: int = Field(1, ge=1)
    size: int = Field(8, ge=1)


class Pictures(DataSource):
    """Labelled images of shape ``(channels, size, size)`` in 10 classes; "reads" from ``root``."""

    Params = PicturesParams

    def __init__(self, root: Path, channels: int = 1, size: int = 8):
        self.root = root
        self.info = DataInfo(shape=(channels, size, size), classes=10, levels=256, name="build_pictures")

    def dataset(self, split: str) -> Any:
        raise AssertionError("building must not read data")


class BuildTestPlugin:
    @hookimpl
    def register_blocks(self, register: Any) -> None:
        register("shift_coupling", ShiftCoupling)
        register("halve", Halve)
        register("context_shift", ContextShift)

    @hookimpl
    def register_priors(self, register: Any) -> None:
        register("build_normal", Normal)
        register("class_means", ClassMeans)

    @hookimpl
    def register_objectives(self, register: Any) -> None:
        register("build_nll", Nll)

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register("build_points", Points)
        register("build_pictures", Pictures)


REGS = load_registries(extra_plugins=[("revkit-build-tests", BuildTestPlugin())], entry_points=False)


def spec_of(layers: list[dict[str, Any]], data: dict[str, Any] | None = None, **sections: Any):
    doc = {
        "model": {"layers": layers},
        "prior": {"kind": "build_normal"},
        "objective": {"kind": "build_nll"},
        "data": data or {"kind": "build_pictures", "channels": 1, "size": 8},
    }
    for name, table in sections.items():
        doc.setdefault(name, {}).update(table)
    return load_spec_dict(doc, registries=REGS)


def built(layers: list[dict[str, Any]], data: dict[str, Any] | None = None, **sections: Any) -> Built:
    return build(spec_of(layers, data, **sections), registries=REGS)


def build_error(layers: list[dict[str, Any]], data: dict[str, Any] | None = None, **sections: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        built(layers, data, **sections)
    return info.value


# -- the flow --------------------------------------------------------------------------------
def test_build_returns_a_flow_with_prior_objective_and_source():
    out = built([{"block": "halve"}, {"block": "shift_coupling", "repeat": 2}], objective={"weight": 2.0})
    assert out.info == DataInfo((1, 8, 8), 10, 256, "build_pictures")
    assert out.model.input_shape == (1, 8, 8) and out.model.latent_shape == (4, 4, 4)
    assert isinstance(out.model.prior, Normal) and out.model.prior.shape == (4, 4, 4)
    assert out.model.classes == 10
    assert isinstance(out.objective, Nll) and out.objective.weight == 2.0 and out.objective.seen == out.info
    assert isinstance(out.source, Pictures)
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(out.model.decode(out.model.encode(x)), x, atol=1e-5)
    assert out.model.log_prob(x).shape == (3,)


def test_repeat_expands_and_alternates_flip_unless_the_spec_sets_it():
    out = built([{"block": "halve"}, {"block": "shift_coupling", "repeat": 4, "hidden": 3},
                 {"block": "shift_coupling", "repeat": 3, "flip": True}])
    couplings = list(out.model.net)[1:]
    assert len(couplings) == 7 and all(isinstance(b, ShiftCoupling) for b in couplings)
    assert [b.flip for b in couplings[:4]] == [False, True, False, True]
    assert [b.hidden for b in couplings[:4]] == [3, 3, 3, 3]
    assert [b.flip for b in couplings[4:]] == [True, True, True]
    plan = plan_layers(spec_of([{"block": "shift_coupling", "repeat": 2}], {"kind": "build_points"}), REGS)
    assert [(p.index, p.copy, p.copies) for p in plan] == [(0, 0, 2), (0, 1, 2)]


def test_layers_after_a_split_are_built_on_its_kept_shape_and_attached():
    out = built([{"block": "halve"}, {"block": "shift_coupling", "repeat": 2}, {"block": "split"},
                 {"block": "shift_coupling"}, {"block": "split"}, {"block": "halve"}],
                data={"kind": "build_pictures", "channels": 1, "size": 8})
    top = list(out.model.net)
    assert [type(b) for b in top] == [Halve, ShiftCoupling, ShiftCoupling, Split]
    first = top[3]
    assert first.input_shape == (4, 4, 4) and first.kept_shape == (2, 4, 4)
    assert isinstance(first.then, Sequential) and first.then.input_shape == (2, 4, 4)
    inner = list(first.then)
    assert [type(b) for b in inner] == [ShiftCoupling, Split]
    assert inner[1].kept_shape == (1, 4, 4) and [type(b) for b in inner[1].then] == [Halve]
    assert out.model.latent_shape == (64,)
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(out.model.decode(out.model.encode(x)), x, atol=1e-5)


def test_the_flow_is_built_on_the_padded_data_shape():
    out = built([{"block": "halve"}], data={"kind": "build_pictures", "size": 6, "pad": 1})
    assert out.info.shape == (1, 8, 8) and out.model.latent_shape == (4, 4, 4)


def test_a_classes_field_left_out_is_filled_from_the_data():
    out = built([{"block": "halve"}], prior={"kind": "class_means"})
    assert out.model.prior.classes == 10
    assert built([{"block": "halve"}], prior={"kind": "class_means", "classes": 12}).model.prior.classes == 12


def test_fewer_prior_classes_than_the_data_has_labels_is_refused():
    with pytest.raises(SpecError, match=r"prior\.classes = 3, but data source 'build_pictures' has 10 classes"):
        built([{"block": "halve"}], prior={"kind": "class_means", "classes": 3})


def test_a_conditional_model_gives_conditional_blocks_the_number_of_classes():
    out = built([{"block": "context_shift"}, {"block": "halve"}], model={"conditional": True})
    assert out.model.conditional and list(out.model.net)[0].context_size == 10
    unconditional = built([{"block": "context_shift"}])
    assert list(unconditional.model.net)[0].context_size == 0


def test_building_reads_no_data_and_resolves_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = built([{"block": "halve"}], data={"kind": "build_pictures", "root": str(tmp_path / "nowhere")})
    assert out.source.root == tmp_path / "nowhere"  # Pictures.dataset raises: nothing was read
    monkeypatch.setenv("REVKIT_DATA", str(tmp_path / "env"))
    assert build_data(spec_of([{"block": "halve"}]), REGS).root == tmp_path / "env"
    assert build_data(spec_of([{"block": "shift_coupling"}], {"kind": "build_points"}), REGS).root is None


# -- build-time errors -------------------------------------------------------------------------
def test_odd_channels_fail_at_the_layer_index_naming_the_shape():
    err = build_error([{"block": "shift_coupling"}], data={"kind": "build_pictures", "channels": 3})
    assert err.path == "model.layers[0]"
    assert "'shift_coupling'" in err.message and "(3, 8, 8)" in err.message and "needs it even" in err.message


def test_a_failure_after_a_split_names_the_spec_layer_and_the_copy():
    err = build_error([{"block": "halve"}, {"block": "split", "fraction": 0.25},
                       {"block": "shift_coupling", "repeat": 2}])
    assert err.path == "model.layers[2]"
    assert "copy 1 of 2" in err.message and "(3, 4, 4)" in err.message


def test_a_block_given_the_wrong_rank_names_what_it_takes():
    err = build_error([{"block": "halve"}], data={"kind": "build_points", "dim": 4})
    assert err.path == "model.layers[0]"
    assert "images (C, H, W)" in err.message and "(4,)" in err.message


def test_odd_image_size_fails_at_its_layer():
    err = build_error([{"block": "halve"}, {"block": "halve"}, {"block": "halve"}],
                      data={"kind": "build_pictures", "size": 6})
    assert err.path == "model.layers[1]" and "(4, 3, 3)" in err.message


def test_input_shape_must_equal_the_data_shape():
    err = build_error([{"block": "halve"}], model={"input_shape": [1, 28, 28]},
                      data={"kind": "build_pictures", "size": 30, "pad": 1})
    assert err.path == "model.input_shape"
    assert "(1, 28, 28)" in err.message and "(1, 32, 32)" in err.message and "data.pad = 1" in err.message
    assert built([{"block": "halve"}], model={"input_shape": [1, 8, 8]}).model.input_shape == (1, 8, 8)


def test_padding_vectors_is_an_error_at_data_pad():
    err = build_error([{"block": "shift_coupling"}], data={"kind": "build_points", "pad": 2})
    assert err.path == "data.pad" and "(2,)" in err.message


def test_a_class_prior_on_unlabelled_data_is_an_error_at_prior():
    err = build_error([{"block": "shift_coupling"}], data={"kind": "build_points"}, prior={"kind": "class_means"})
    assert err.path == "prior" and "no labels" in err.message and "class_means needs classes" in err.message


def test_a_conditional_model_on_unlabelled_data_is_an_error():
    err = build_error([{"block": "shift_coupling"}], data={"kind": "build_points"}, model={"conditional": True})
    assert err.path == "model.conditional"


def test_a_block_missing_from_the_registries_is_reported():
    spec = spec_of([{"block": "shift_coupling"}], {"kind": "build_points"})
    with pytest.raises(SpecError, match="unknown block 'shift_coupling'") as info:
        build_model(spec, data_info(spec, build_data(spec, REGS)), registries=load_registries(entry_points=False))
    assert info.value.path == "model.layers[0].block"


# -- the summary -----------------------------------------------------------------------------
def test_describe_merges_equal_neighbours_and_reads_through_splits():
    out = built([{"block": "halve"}, {"block": "shift_coupling", "repeat": 4, "hidden": 5}, {"block": "split"},
                 {"block": "shift_coupling", "repeat": 2, "hidden": 5}, {"block": "shift_coupling", "hidden": 6}])
    assert describe(out.model) == "Halve → 4×ShiftCoupling(5) → Split → 2×ShiftCoupling(5) → ShiftCoupling(6)"


def test_layer_table_has_shapes_and_parameter_counts_per_block():
    out = built([{"block": "halve"}, {"block": "shift_coupling", "repeat": 2, "hidden": 5}, {"block": "split"},
                 {"block": "shift_coupling", "hidden": 5}], prior={"kind": "class_means"})
    rows = layer_table(out.model)
    assert [r.index for r in rows] == [0, 1, 2, 3, 4]
    assert [r.depth for r in rows] == [0, 0, 0, 0, 1]
    assert [(r.input_shape, r.output_shape) for r in rows] == [
        ((1, 8, 8), (4, 4, 4)), ((4, 4, 4), (4, 4, 4)), ((4, 4, 4), (4, 4, 4)), ((4, 4, 4), (2, 4, 4)),
        ((2, 4, 4), (2, 4, 4))]
    assert rows[3].factored_shape == (2, 4, 4)
    # a coupling on 4×4×4: Linear(32 → 5) and Linear(5 → 32); on 2×4×4: Linear(16 → 5), Linear(5 → 16)
    assert rows[1].parameters == rows[2].parameters == 32 * 5 + 5 + 5 * 32 + 32
    assert rows[4].parameters == 16 * 5 + 5 + 5 * 16 + 16 and rows[3].parameters == 0
    assert sum(r.parameters for r in rows) == parameter_count(out.model.net)
    text = render_inspect(out.model)
    assert text.splitlines()[0] == describe(out.model)
    total = parameter_count(out.model.net) + parameter_count(out.model.prior)
    assert f"total parameters: {total:,}" in text and "ClassMeans" in text and "2×4×4 out" in text


# -- the project's own specs -----------------------------------------------------------------
SPECS = sorted((REPO / "specs").glob("*.toml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_validates_and_builds(path: Path):
    regs = get_registries()
    missing = {name: dist for name, dist in regs.block_hints.items()
               if name not in regs.blocks and f'"{name}"' in path.read_text()}
    if missing:  # CI installs every plugin the shipped specs use, so there these always run
        pytest.skip(f"{path.name} needs plugin distribution(s) {sorted(set(missing.values()))}")
    spec = load_spec(path, registries=get_registries())
    out = build(spec, registries=get_registries())
    assert out.model.latent_shape == out.model.prior.shape
    assert describe(out.model)
    assert layer_table(out.model) or getattr(out.model, "flow_steps", None) == 0  # a plain VAE: no flow layers


def test_the_reference_specs_are_shipped():
    names = {p.name for p in SPECS}
    assert {"toy2d_realnvp.toml", "mnist_glow.toml"} <= names, f"specs/ holds {sorted(names)}"
