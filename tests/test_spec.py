"""The spec: loading, overrides, error messages, JSON Schema and writing back as TOML.

The components here only declare ``Params`` (the spec never constructs them); they are registered
through the plugin hooks next to the built-ins, as a third-party plugin's would be.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from revkit.data.base import DataParams, DataSource
from revkit.errors import SpecError
from revkit.invertible import BlockParams, Invertible
from revkit.objectives.base import Objective, ObjectiveParams
from revkit.plugins import hookimpl, load_registries
from revkit.priors.base import Prior, PriorParams
from revkit.spec import Spec, dumps, load_spec, load_spec_dict, spec_json_schema
from revkit.spec.overrides import parse_value


# -- throw-away components -------------------------------------------------------------------
class CouplingParams(BlockParams):
    hidden: int = Field(64, gt=0, description="hidden width")
    mask: Literal["channel", "checkerboard"] = Field("channel", description="which half is active")
    flip: bool = Field(False, description="transform the other half")


class SpecCoupling(Invertible):
    """A coupling block (parameters only)."""

    Params = CouplingParams


class ReshapeParams(BlockParams):
    shape: list[int] = Field(description="the per-sample output shape")


class SpecReshape(Invertible):
    """A reshape with a required parameter."""

    Params = ReshapeParams


class SpecIdentity(Invertible):
    """A block without parameters."""


class ClassPriorParams(PriorParams):
    classes: int | None = Field(None, ge=1, description="number of classes")


class SpecPrior(Prior):
    """A class-conditional prior (parameters only)."""

    Params = ClassPriorParams


class WeightParams(ObjectiveParams):
    weight: float = Field(1.0, gt=0.0, description="loss weight")


class SpecObjective(Objective):
    """An objective (parameters only)."""

    Params = WeightParams


class PointsParams(DataParams):
    dim: int = Field(2, ge=1, description="dimensions")


class SpecPoints(DataSource):
    """Points (parameters only)."""

    Params = PointsParams
    needs_root = False


class SpecTestPlugin:
    @hookimpl
    def register_blocks(self, register: Any) -> None:
        register("spec_coupling", SpecCoupling)
        register("spec_reshape", SpecReshape)
        register("spec_identity", SpecIdentity)

    @hookimpl
    def register_priors(self, register: Any) -> None:
        register("spec_prior", SpecPrior)

    @hookimpl
    def register_objectives(self, register: Any) -> None:
        register("spec_objective", SpecObjective)

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register("spec_points", SpecPoints)

    @hookimpl
    def register_block_hints(self, register: Any) -> None:
        register("spec_spline", "revkit-spec-splines")


REGS = load_registries(extra_plugins=[("revkit-spec-tests", SpecTestPlugin())], entry_points=False)


def good() -> dict[str, Any]:
    """A valid spec document using only the components above."""
    return {
        "model": {
            "input_shape": [4],
            "layers": [
                {"block": "spec_identity"},
                {"block": "spec_coupling", "repeat": 3, "hidden": 16},
                {"block": "spec_reshape", "shape": [2, 2]},
            ],
        },
        "prior": {"kind": "spec_prior"},
        "objective": {"kind": "spec_objective", "weight": 0.5},
        "data": {"kind": "spec_points", "dim": 4, "batch_size": 8},
        "train": {"steps": 10, "lr": 0.01},
        "output": {"name": "toy-run_1"},
    }


def load(doc: Any) -> Spec:
    return load_spec_dict(doc, registries=REGS)


def error_of(doc: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(doc)
    return info.value


def with_change(path: str, value: Any = None, delete: bool = False) -> dict[str, Any]:
    """``good()`` with the value at a dotted path (``model.layers[1].hidden``) set or deleted."""
    doc = good()
    keys: list[Any] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        keys.append(name)
        if index:
            keys.append(int(index.rstrip("]")))
    node: Any = doc
    for key in keys[:-1]:
        node = node[key]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


# -- a valid spec ----------------------------------------------------------------------------
def test_a_valid_spec_keeps_common_keys_and_validated_params():
    spec = load(good())
    layer = spec.model.layers[1]
    assert (layer.block, layer.repeat) == ("spec_coupling", 3)
    assert isinstance(layer.params, CouplingParams)
    assert layer.kwargs() == {"hidden": 16, "mask": "channel", "flip": False}
    assert layer.given() == {"hidden"}
    assert spec.objective.kwargs() == {"weight": 0.5}
    assert spec.data.batch_size == 8 and spec.data.kwargs() == {"dim": 4}
    assert spec.model.input_shape == (4,)


def test_omitted_sections_take_their_defaults():
    doc = good()
    for section in ("train", "output"):
        del doc[section]
    spec = load(doc)
    assert spec.train.lr == 1e-3 and spec.train.schedule == "none" and spec.train.device == "auto"
    assert spec.eval.samples == 64 and spec.output.dir == "runs" and spec.output.name == ""


# -- broken specs: each error names the field, what was wrong and what is allowed ------------
BROKEN = [
    pytest.param(with_change("modle", {}), "modle", ["unknown key 'modle'", "did you mean 'model'", "allowed keys"],
                 id="unknown-top-level-key"),
    pytest.param(with_change("train.lrr", 0.1), "train.lrr", ["did you mean 'lr'", "steps"], id="unknown-train-key"),
    pytest.param(with_change("model.layers[1].block", "spec_couplng"), "model.layers[1].block",
                 ["unknown block 'spec_couplng'", "did you mean 'spec_coupling'", "installed blocks", "'split'"],
                 id="unknown-block"),
    pytest.param(with_change("model.layers[1].hiden", 8), "model.layers[1].hiden",
                 ["unknown key 'hiden'", "did you mean 'hidden'", "block", "repeat", "mask"], id="misspelt-block-param"),
    pytest.param(with_change("train.lr", "fast"), "train.lr", ["expected a number", "'fast'"], id="wrong-type"),
    pytest.param(with_change("model.layers[1].hidden", -3), "model.layers[1].hidden", ["> 0", "-3"],
                 id="negative-size"),
    pytest.param(with_change("train.schedule", "linear"), "train.schedule",
                 ["'linear' is not allowed", "'none'", "'cosine'", "'step'"], id="bad-literal"),
    pytest.param(with_change("model.layers[1].mask", "diagonal"), "model.layers[1].mask",
                 ["'checkerboard'", "'channel'"], id="bad-literal-block-param"),
    pytest.param(with_change("prior.kind", "spec_prir"), "prior.kind",
                 ["unknown prior 'spec_prir'", "did you mean 'spec_prior'", "installed priors"], id="unknown-prior"),
    pytest.param(with_change("objective.kind", "nope"), "objective.kind", ["unknown objective 'nope'"],
                 id="unknown-objective"),
    pytest.param(with_change("data.kind", "spec_pionts"), "data.kind",
                 ["unknown data source", "did you mean 'spec_points'"], id="unknown-data-source"),
    pytest.param(with_change("model.layers[2].shape", delete=True), "model.layers[2].shape",
                 ["missing required key 'shape'", "per-sample output shape"], id="missing-block-param"),
    pytest.param(with_change("data", delete=True), "data", ["missing required key 'data'"], id="missing-section"),
    pytest.param(with_change("model.layers[1].block", delete=True), "model.layers[1].block",
                 ["missing required key 'block'"], id="missing-block-name"),
    pytest.param(with_change("model.layers[1].repeat", 0), "model.layers[1].repeat", ["≥ 1", "0"], id="zero-repeat"),
    pytest.param(with_change("model.layers", []), "model.layers", ["at least 1 item"], id="no-layers"),
    pytest.param(with_change("model.input_shape", [1, -28]), "model.input_shape[1]", ["≥ 1", "-28"],
                 id="negative-input-dim"),
    pytest.param(with_change("train.schedule", "step"), "train.step_size", ["schedule = 'step' needs step_size"],
                 id="step-schedule-without-step-size"),
    pytest.param(with_change("train.device", "gpu0"), "train.device", ["'gpu0'", "'cuda:N'", "'auto'"],
                 id="bad-device"),
    pytest.param(with_change("output.name", "my run/1"), "output.name", ["letters, digits"], id="bad-run-name"),
    pytest.param(with_change("output.name", "run\n"), "output.name", ["not a run name"], id="newline-in-run-name"),
    pytest.param(with_change("train.device", "cpu\n"), "train.device", ["not a device"], id="newline-in-device"),
    pytest.param(with_change("train.betas", [0.9]), "train.betas", ["too few items"], id="short-betas"),
    pytest.param(with_change("train.lr", float("inf")), "train.lr", ["finite"], id="infinite-lr"),
    pytest.param(with_change("train.precision", "float16"), "train.precision",
                 ["'float16' is not allowed", "'float32'", "'bfloat16'"], id="bad-precision"),
    pytest.param(with_change("train.ema_decay", 1.0), "train.ema_decay", ["< 1", "1.0"], id="ema-decay-of-one"),
    pytest.param(with_change("prior.classes", 0), "prior.classes", ["≥ 1"], id="prior-param-bound"),
    pytest.param(with_change("model.layers[0]", 7), "model.layers[0]", ["expected a table", "an integer"],
                 id="layer-not-a-table"),
    pytest.param([1, 2], "", ["a spec is a table"], id="not-a-table"),
]


@pytest.mark.parametrize(("doc", "path", "fragments"), BROKEN)
def test_broken_spec_is_reported_at_its_path(doc, path, fragments):
    err = error_of(doc)
    assert err.path == path
    for fragment in fragments:
        assert fragment in err.message, err.message
    assert path in str(err)


def test_unknown_block_that_a_plugin_provides_says_what_to_install():
    err = error_of(with_change("model.layers[1].block", "spec_spline"))
    assert err.path == "model.layers[1].block"
    assert "provided by the plugin distribution 'revkit-spec-splines'" in err.message
    assert "pip install revkit-spec-splines" in err.message


def test_the_source_file_is_named_in_dict_errors():
    with pytest.raises(SpecError) as info:
        load_spec_dict(with_change("train.lr", -1.0), source="my.toml", registries=REGS)
    assert info.value.source == "my.toml"
    assert str(info.value).startswith("my.toml: train.lr: must be > 0")


SPEC_FILES = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize(("source", "path"), [
    ("vae_planar_k10", "train.seed"),
    ("vae_planar_k10", "data.seed"),  # binarized_mnist's fixed draws
    ("mnist_iresnet_semisupervised", "data.labels_seed"),
    (None, "model.layers[0].seed"),  # permute's random order
])
def test_every_seed_key_takes_the_seeds_train_seed_takes(source: str | None, path: str) -> None:
    too_large = 2**32  # torch's generators take up to 2**64 - 1, NumPy's legacy one below 2**32
    with pytest.raises(SpecError, match="must be ≤ 4294967295, got 4294967296") as caught:
        if source is None:
            doc = good()
            doc["model"]["layers"][0] = {"block": "permute", "mode": "random", "seed": too_large}
            load(doc)
        else:
            load_spec(SPEC_FILES / f"{source}.toml", [f"{path}={too_large}"])
    assert caught.value.path == path


# -- files -----------------------------------------------------------------------------------
def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\ninput_shape = [4]\n\n[train]\nlr = = 1\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, registries=REGS)
    assert str(info.value) == f"{path}:5:6: TOML syntax error at line 5, column 6: Invalid value"
    assert info.value.source == f"{path}:5:6"


def test_a_document_that_ends_early_points_at_its_end(tmp_path: Path):
    path = tmp_path / "short.toml"
    path.write_text("[model]\ninput_shape = [1, 2\n")
    with pytest.raises(SpecError, match="at line 3, column 1") as info:
        load_spec(path, registries=REGS)
    assert info.value.source == f"{path}:3:1"


def test_missing_file_is_named(tmp_path: Path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(SpecError, match="no such spec file") as info:
        load_spec(path, registries=REGS)
    assert str(path) in str(info.value)


def test_load_spec_reads_a_file_and_names_it_in_errors(tmp_path: Path):
    path = tmp_path / "toy.toml"
    path.write_text(dumps(good()))
    assert load_spec(path, registries=REGS).train.steps == 10
    path.write_text(dumps(with_change("train.steps", 0)))
    with pytest.raises(SpecError) as info:
        load_spec(path, registries=REGS)
    assert info.value.source == str(path) and info.value.path == "train.steps"


# -- overrides -------------------------------------------------------------------------------
def test_overrides_set_values_of_every_toml_type(tmp_path: Path):
    path = tmp_path / "toy.toml"
    doc = good()
    del doc["train"]
    path.write_text(dumps(doc))
    spec = load_spec(path, [
        "train.steps=25",                    # creates the missing [train] table
        "train.lr = 3e-4",
        "train.device=cuda:1",               # not a TOML value: a bare string
        "model.layers[1].hidden=32",         # indexes into the array of tables
        "model.layers[1].flip=true",
        "model.input_shape=[4]",
        'output.name="from-cli"',
        "data.dim=4",                        # a data source's own parameter
    ], registries=REGS)
    assert spec.train.steps == 25 and spec.train.lr == pytest.approx(3e-4)
    assert spec.train.device == "cuda:1"
    assert spec.model.layers[1].kwargs()["hidden"] == 32 and spec.model.layers[1].kwargs()["flip"] is True
    assert spec.output.name == "from-cli"


def test_later_override_wins_and_can_switch_the_block(tmp_path: Path):
    path = tmp_path / "toy.toml"
    path.write_text(dumps(good()))
    spec = load_spec(path, ["train.steps=5", "train.steps=6", "model.layers[0].block=spec_coupling",
                            "model.layers[0].hidden=3"], registries=REGS)
    assert spec.train.steps == 6
    assert spec.model.layers[0].block == "spec_coupling" and spec.model.layers[0].kwargs()["hidden"] == 3


@pytest.mark.parametrize(("override", "path", "fragments"), [
    ("trian.lr=0.1", "trian", ["--set trian.lr=0.1", "unknown key 'trian'", "did you mean 'train'"]),
    ("train.lrr=0.1", "train.lrr", ["did you mean 'lr'"]),
    ("model.layers[1].hiden=3", "model.layers[1].hiden", ["did you mean 'hidden'", "mask"]),
    ("model.layers[7].hidden=3", "model.layers[7]", ["model.layers has 3 entries"]),
    ("train.lr.x=1", "train.lr.x", ["not a table"]),
    ("train..lr=1", "train..lr", ["is not a key"]),
    ("train.lr", "train.lr", ["expected PATH=VALUE"]),
])
def test_bad_override_is_an_error_naming_it(tmp_path: Path, override, path, fragments):
    spec_file = tmp_path / "toy.toml"
    spec_file.write_text(dumps(good()))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file, [override], registries=REGS)
    assert info.value.path == path
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    assert info.value.source == str(spec_file)


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("1e-3", 1e-3), ("true", True), ("[1, 28, 28]", [1, 28, 28]), ('"10"', "10"),
    ("cuda:1", "cuda:1"), ("../shared/data", "../shared/data"), ("moons", "moons"), ("", ""),
    ("2024-01-01", "2024-01-01"), ("{a = 1}", {"a": 1}),
])
def test_override_values_are_toml_values_else_strings(text, value):
    assert parse_value(text) == value


# -- JSON Schema -----------------------------------------------------------------------------
def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_schema_is_json_with_one_variant_per_registered_component():
    schema = json.loads(json.dumps(spec_json_schema(REGS)))
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"model", "prior", "objective", "data", "train", "eval", "output"}
    layers = schema["properties"]["model"]["properties"]["layers"]
    variants = {v["properties"]["block"]["const"]: v for v in layers["items"]["oneOf"]}
    assert set(variants) == set(REGS.blocks.names())
    coupling = variants["spec_coupling"]
    assert {"block", "repeat", "hidden", "mask", "flip"} <= set(coupling["properties"])
    assert coupling["properties"]["mask"]["enum"] == ["channel", "checkerboard"]
    assert coupling["properties"]["hidden"]["description"] == "hidden width"
    assert coupling["additionalProperties"] is False and "block" in coupling["required"]
    assert "shape" in variants["spec_reshape"]["required"]
    data = {v["properties"]["kind"]["const"]: v for v in schema["properties"]["data"]["oneOf"]}
    assert {"batch_size", "pad", "root", "dim"} <= set(data["spec_points"]["properties"])
    priors = {v["properties"]["kind"]["const"]: v for v in schema["properties"]["prior"]["oneOf"]}
    assert "spec_prior" in priors
    assert schema["properties"]["train"]["properties"]["schedule"]["enum"] == ["none", "cosine", "step"]
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/") and ref[len("#/$defs/"):] in schema["$defs"]


def test_a_table_may_leave_out_the_default_kind_in_the_schema():
    schema = spec_json_schema(REGS)
    for variant in schema["properties"]["prior"]["oneOf"]:
        required = variant.get("required", [])
        assert ("kind" in required) == (variant["properties"]["kind"]["const"] != "standard_normal")


# -- writing back as TOML --------------------------------------------------------------------
def test_to_toml_round_trips_and_keeps_unset_parameters_unset():
    spec = load(good())
    text = spec.to_toml()
    again = load(tomllib.loads(text))
    assert again == spec
    assert again.model_dump() == spec.model_dump()
    assert again.model.layers[1].given() == {"hidden"}  # flip left to alternate, as in the original
    assert "[[model.layers]]" in text and 'block = "spec_coupling"' in text
    assert again.to_toml() == text


toml_keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
toml_scalars = (st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.booleans()
                | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10))
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(toml_keys, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(toml_keys, toml_values | st.lists(st.dictionaries(toml_keys, toml_values, max_size=3),
                                                         min_size=1, max_size=2), max_size=5))
def test_dumps_writes_toml_that_parses_back_to_the_same_document(doc):
    assert tomllib.loads(dumps(doc)) == doc


# -- robustness: anything either validates or is a SpecError ---------------------------------
KEYS = ["model", "layers", "block", "repeat", "hidden", "prior", "kind", "objective", "data", "train", "lr",
        "schedule", "input_shape", "classes", "params", "shape", "eval", "output", "name", "device", "pad"]
keys = st.sampled_from(KEYS) | st.text(max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats()
           | st.sampled_from(["spec_coupling", "spec_points", "spec_prior", "step", "cpu", "cuda:x", ""]) | st.text())
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=25)


def _outcome(doc: Any) -> None:
    try:
        spec = load(doc)
    except SpecError as err:
        assert isinstance(err.path, str) and err.message
    else:
        assert isinstance(spec, Spec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested)
def test_random_documents_validate_or_raise_spec_error(doc):
    _outcome(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_of_a_valid_spec_validate_or_raise_spec_error(data):
    doc = good()
    for _ in range(data.draw(st.integers(1, 3))):
        node: Any = doc
        while True:  # walk down to a random table or array
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            containers = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
            if not containers or data.draw(st.booleans()):
                break
            node = data.draw(st.sampled_from(containers))[1]
        key = data.draw(st.sampled_from(sorted(node, key=str)) | keys) if isinstance(node, dict) \
            else data.draw(st.integers(0, max(len(node) - 1, 0)))
        if isinstance(node, list) and not node:
            continue
        node[key] = data.draw(nested)
    _outcome(copy.deepcopy(doc))
