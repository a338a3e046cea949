"""Model kinds are registered components: a plugin's kind is validated, built, inspected and trained like
the built-in ones, and the spec loader reads what a kind needs from the kind itself."""

from __future__ import annotations

import types
from typing import Any, ClassVar

import pytest
import torch
from pydantic import Field

from revkit.build import build, build_chain, check_input_shape, plan_layer_list
from revkit.errors import SpecError
from revkit.flow import Flow
from revkit.plugins import hookimpl, load_registries
from revkit.priors.standard_normal import StandardNormal
from revkit.spec import load_spec_dict
from revkit.spec.models import LayerSpec, Section


class TwoStageParams(Section):
    """``[model.two_stage]``: two lists of blocks applied one after the other."""

    first: list[LayerSpec] = Field(default_factory=list)
    second: list[LayerSpec] = Field(default_factory=list)
    scale: float = Field(1.0, gt=0.0)


class TwoStageKind:
    """A plugin's model kind: a flow whose blocks come from two lists of its own table."""

    Params: ClassVar[type[TwoStageParams]] = TwoStageParams
    layer_lists: ClassVar[tuple[str, ...]] = ("first", "second")
    needs_layers: ClassVar[bool] = False

    @classmethod
    def build(cls, spec: Any, info: Any, registries: Any) -> Flow:
        shape = check_input_shape(spec, info)
        options = spec.model.options
        planned = (plan_layer_list(options.first, ("model", "two_stage", "first"), registries)
                   + plan_layer_list(options.second, ("model", "two_stage", "second"), registries))
        net = build_chain(planned, shape)
        return Flow(net, shape, prior=StandardNormal(net.output_shape(shape)))


@pytest.fixture(scope="module")
def registries() -> Any:
    plugin = types.ModuleType("two_stage_plugin")

    @hookimpl
    def register_models(register: Any) -> None:
        register("two_stage", TwoStageKind)

    plugin.register_models = register_models  # type: ignore[attr-defined]
    return load_registries(extra_plugins=[("two_stage_plugin", plugin)], entry_points=False)


def doc(model: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "data": {"kind": "toy2d", "n_train": 64, "n_test": 32}}


def test_a_plugin_kind_is_validated_built_and_inspected(registries: Any) -> None:
    spec = load_spec_dict(doc({"kind": "two_stage", "two_stage": {
        "first": [{"block": "affine_coupling", "hidden": 4}], "second": [{"block": "permute"},
                                                                          {"block": "additive_coupling", "repeat": 2}]}}),
        registries=registries)
    assert registries.models.source("two_stage") == "two_stage_plugin"
    assert spec.model.options.second[1].kwargs()["hidden"] == 64
    built = build(spec, registries)
    assert built.model.graph() == "AffineCoupling(4) → Permute(reverse) → 2×AdditiveCoupling(64)"
    assert "total parameters" in built.model.summary()
    x = torch.randn(5, 2)
    assert torch.allclose(built.model.decode(built.model.encode(x)), x, atol=1e-5)
    text = spec.to_toml()
    assert '[model.two_stage]' in text and "[[model.two_stage.second]]" in text
    assert load_spec_dict(__import__("tomllib").loads(text), registries=registries).to_toml() == text


@pytest.mark.parametrize(("model", "path", "message"), [
    ({"kind": "two_stge", "two_stage": {}}, "model.kind", "unknown model kind 'two_stge' (did you mean 'two_stage'?)"),
    ({"kind": "two_stage"}, "model.two_stage", "needs a [model.two_stage] table"),
    ({"kind": "two_stage", "two_stage": {}, "layers": [{"block": "permute"}]}, "model.layers",
     "model kind 'two_stage' takes no [[model.layers]]; its blocks go in [[model.two_stage.first]]"),
    ({"kind": "two_stage", "two_stage": {"second": [{"block": "afine_coupling"}]}}, "model.two_stage.second[0].block",
     "unknown block 'afine_coupling'"),
    ({"kind": "two_stage", "two_stage": {"first": [{"block": "permute", "hiden": 3}]}}, "model.two_stage.first[0].hiden",
     "unknown key"),
    ({"kind": "two_stage", "two_stage": {"scale": -1}}, "model.two_stage.scale", "must be > 0"),
    ({"kind": "two_stage", "two_stage": {"colour": 1}}, "model.two_stage.colour", "unknown key"),
    ({"layers": [{"block": "permute"}], "two_stage": {}}, "model.two_stage", "needs model.kind = 'two_stage'"),
    ({"kind": "flow"}, "model.layers", "model kind 'flow' needs [[model.layers]]"),
    ({"kind": "vae", "layers": [{"block": "permute"}], "vae": {}}, "model.layers",
     "its blocks go in [[model.vae.posterior_flow]]"),
])
def test_what_a_kind_needs_is_checked_at_its_path(registries: Any, model: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_dict(doc(model), registries=registries)
    assert info.value.path == path
    assert message in info.value.message


def test_the_schema_describes_every_kinds_table(registries: Any) -> None:
    from revkit.spec import spec_json_schema

    model = spec_json_schema(registries)["properties"]["model"]
    assert model["properties"]["kind"]["enum"] == ["aligned_flows", "flow", "two_stage", "vae"]
    assert model["properties"]["aligned_flows"]["properties"]["flow_b"]["type"] == "array"
    assert model["properties"]["two_stage"]["properties"]["first"]["type"] == "array"
    assert "posterior_flow" in model["properties"]["vae"]["properties"]
