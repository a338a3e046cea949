"""Validating a component table against the registered component's ``Params`` model.

A component table (``[[model.layers]]``, ``[prior]``, ``[objective]``, ``[data]``) splits into
the common keys its :class:`~revkit.spec.models.ComponentSpec` declares and the rest, which go to
the ``Params`` model of the component the table names. So a plugin's block is validated exactly
like a built-in one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from revkit.errors import SpecError, did_you_mean
from revkit.plugins.registry import Registries, Registry
from revkit.spec.errors import Loc, format_path, key_text, table_keys, translate
from revkit.spec.models import ComponentSpec, NoComponentParams


def registry_for(spec_cls: type[ComponentSpec], registries: Registries) -> Registry[Any]:
    """The registry that holds the components a table of ``spec_cls`` names."""
    return registries.of_kind(spec_cls.REGISTRY)


def params_model(component: Any) -> type[BaseModel]:
    """A registered component's parameter model (no parameters if it declares none)."""
    params = getattr(component, "Params", None)
    return params if isinstance(params, type) and issubclass(params, BaseModel) else NoComponentParams


def unknown_component(
    spec_cls: type[ComponentSpec], name: str, registries: Registries, path: Loc
) -> SpecError:
    """The error for a table naming a component that no installed plugin registered."""
    registry = registry_for(spec_cls, registries)
    label = spec_cls.LABEL
    names = registry.names()
    installed = ", ".join(f"'{n}'" for n in names) if names else "(none)"
    hints = registries.hints(spec_cls.REGISTRY)
    if name in hints:
        dist = hints[name]
        message = (f"{label} '{name}' is not installed: it is provided by the plugin distribution "
                   f"'{dist}' (pip install {dist}); installed {label}s: {installed}")
    else:
        message = f"unknown {label} '{name}'{did_you_mean(name, names)}; installed {label}s: {installed}"
    return SpecError(format_path((*path, spec_cls.NAME_KEY)), message)


def component_name(spec_cls: type[ComponentSpec], table: Mapping[str, Any]) -> Any:
    """The component a table names (the name field's default when the key is left out)."""
    if spec_cls.NAME_KEY in table:
        return table[spec_cls.NAME_KEY]
    field = spec_cls.model_fields[spec_cls.NAME_KEY]
    return None if field.is_required() else field.default


def stage_component(
    spec_cls: type[ComponentSpec], table: Mapping[str, Any], registries: Registries, path: Loc
) -> dict[str, Any]:
    """Split ``table`` into its common keys and the component's validated ``params``.

    Returns the common keys plus ``params`` (an instance of the component's ``Params``), ready
    for ``spec_cls`` validation. When the table does not name a component by a string, the
    parameters are left out and validating ``spec_cls`` reports the problem with the name.

    Raises:
        SpecError: for an unknown component, or parameters its ``Params`` model rejects.
    """
    common = set(table_keys(spec_cls))
    staged = {k: v for k, v in table.items() if k in common}
    raw = {k: v for k, v in table.items() if k not in common}
    name = component_name(spec_cls, table)
    if not isinstance(name, str):
        if name is None:  # the name key is missing: a misspelt name key is the likelier story
            for key in raw:
                hint = did_you_mean(str(key), [spec_cls.NAME_KEY])
                if hint:
                    raise SpecError(format_path((*path, key)), f"unknown key {key_text(key)}{hint}")
        return staged
    component = registry_for(spec_cls, registries).get(name)
    if component is None:
        raise unknown_component(spec_cls, name, registries, path)
    params_cls = params_model(component)
    try:
        # strict JSON-mode validation is TOML's typing: arrays become tuples where a parameter is a
        # tuple, an integer passes for a float, but a boolean is no integer and a string no number
        text = json.dumps(raw, default=str)
        # the registries travel in the validation context, for parameters that name other registered
        # components (an adversarial objective's [objective.discriminator])
        staged["params"] = params_cls.model_validate_json(text, strict=True, context={"registries": registries})
    except ValidationError as exc:
        raise translate(exc, root=params_cls, prefix=path, extra_keys=common) from None
    return staged
