"""The JSON Schema of a spec file, for editor completion (``revkit schema``).

Each component table is a ``oneOf`` over the registered components: one variant per name, with
the name key as a ``const``, the table's common keys, and the component's ``Params`` properties.
Nested models of a component's ``Params`` go to ``$defs`` under ``<kind>.<name>.<Model>``, so two
plugins' models of the same name cannot collide.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from pydantic import BaseModel

from revkit.plugins import get_registries
from revkit.plugins.registry import Registries
from revkit.spec.components import params_model, registry_for
from revkit.spec.errors import table_keys
from revkit.spec.models import COMPONENT_SECTIONS, ComponentSpec, LayerSpec, LoggerSpec, ModelSpec, Section, Spec

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _flat_schema(cls: type[BaseModel]) -> dict[str, Any]:
    """A table model's schema without hidden fields (sections are flat: no ``$defs`` needed)."""
    schema = copy.deepcopy(cls.model_json_schema())
    schema.pop("$defs", None)
    keys = set(table_keys(cls))
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k in keys}
    required = [k for k in schema.get("required", []) if k in keys]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    schema["additionalProperties"] = False
    return schema


def _summary(component: Any) -> str:
    doc = inspect.getdoc(component) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def component_schema(spec_cls: type[ComponentSpec], registries: Registries, defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of one component table: a ``oneOf`` over the registered components."""
    base = _flat_schema(spec_cls)
    name_key = spec_cls.NAME_KEY
    default_name = spec_cls.model_fields[name_key].default
    registry = registry_for(spec_cls, registries)
    variants = []
    for name in registry.names():
        component = registry[name]
        prefix = f"{spec_cls.REGISTRY}.{name}."
        params = params_model(component).model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
        for key, sub in params.pop("$defs", {}).items():
            defs[prefix + key] = sub
        properties = {**base["properties"], **params.get("properties", {})}
        properties[name_key] = {"const": name, "description": base["properties"][name_key].get("description", "")}
        required = set(base.get("required", [])) | set(params.get("required", []))
        if name != default_name:
            required.add(name_key)
        else:
            required.discard(name_key)
        variant: dict[str, Any] = {
            "title": f"{spec_cls.LABEL} '{name}'",
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            variant["required"] = sorted(required)
        if _summary(component):
            variant["description"] = _summary(component)
        variants.append(variant)
    if not variants:  # nothing registered: accept any parameters, the loader reports the name
        return {**base, "additionalProperties": True}
    return {"title": base.get("title", spec_cls.__name__), "description": base.get("description", ""),
            "oneOf": variants}


def spec_json_schema(registries: Registries | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a whole spec file for the given registries."""
    regs = registries if registries is not None else get_registries()
    defs: dict[str, Any] = {}
    model = _flat_schema(ModelSpec)
    model["properties"]["layers"] = {
        **model["properties"]["layers"],
        "type": "array",
        "minItems": 1,
        "items": component_schema(LayerSpec, regs, defs),
    }
    model["properties"]["layers"]["minItems"] = 0  # some kinds take none; the loader asks each kind
    for name in regs.models.names():  # each kind's own table [model.<kind>]
        params = getattr(regs.models[name], "Params", None)
        if params is None:
            continue
        table = _flat_schema(params)
        for key in getattr(regs.models[name], "layer_lists", ()):
            table["properties"][key] = {**table["properties"].get(key, {}), "type": "array",
                                        "items": component_schema(LayerSpec, regs, defs)}
        table["description"] = f"the model kind '{name}' (model.kind = '{name}'): {_summary(params)}"
        model["properties"][name] = table
    model["properties"]["kind"]["enum"] = regs.models.names()
    sections: dict[str, Any] = {"model": model}
    for name, field in Spec.model_fields.items():
        if name == "model":
            continue
        spec_cls = field.annotation
        assert isinstance(spec_cls, type) and issubclass(spec_cls, Section)
        if name in COMPONENT_SECTIONS:
            sections[name] = component_schema(COMPONENT_SECTIONS[name], regs, defs)
        else:
            sections[name] = _flat_schema(spec_cls)
        if field.description:
            sections[name].setdefault("description", field.description)
    loggers = sections["output"]["properties"]["loggers"]  # a name, or a table validated by the logger's Params
    sections["output"]["properties"]["loggers"] = {
        "description": loggers.get("description", ""), "type": "array",
        "items": {"anyOf": [{"type": "string", "enum": regs.loggers.names()},
                            component_schema(LoggerSpec, regs, defs)]},
    }
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "title": "revkit spec",
        "description": "A revkit spec file: the network, prior, objective, data, training, evaluation and output.",
        "type": "object",
        "properties": sections,
        "required": [k for k, f in Spec.model_fields.items() if f.is_required()],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema
