"""``--set a.b=c`` overrides of a spec's raw TOML document.

An override is ``PATH=VALUE``. ``PATH`` is a dotted key path that may index arrays:
``train.lr``, ``model.layers[2].hidden``. ``VALUE`` is read as a TOML value (``10``, ``1e-3``,
``true``, ``[1, 28, 28]``, ``"text"``) and, when it is not one, taken as a bare string
(``cuda:1``, ``../shared/data``). Missing tables on the way are created (``train.steps=10`` works
without a ``[train]`` table); arrays are never extended. After all overrides are applied, every
key they name is checked against the spec's models and the registered components, so a misspelt
path fails with a did-you-mean instead of an "unknown key" that does not mention ``--set``.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from revkit.errors import SpecError, did_you_mean
from revkit.plugins.registry import Registries
from revkit.spec.components import component_name, params_model, registry_for
from revkit.spec.errors import Loc, as_model, field_annotation, format_path, item_type, table_keys, toml_type
from revkit.spec.models import ComponentSpec, ModelSpec, Spec
from revkit.spec.nesting import MAX_NESTING, nesting_depth

_SEGMENT = re.compile(r"^([A-Za-z0-9_-]+)((?:\[\d+\])*)$")
_INDEX = re.compile(r"\[(\d+)\]")


def parse_path(text: str) -> Loc:
    """``"model.layers[2].hidden"`` → ``("model", "layers", 2, "hidden")``.

    Raises:
        SpecError: when the path is not dotted bare keys with optional ``[N]`` indices.
    """
    parts: list[str | int] = []
    for segment in text.strip().split("."):
        match = _SEGMENT.fullmatch(segment.strip())
        if match is None:
            raise SpecError(
                text.strip(),
                f"--set {text.strip()}: {segment.strip()!r} is not a key; a path is keys separated by '.' "
                "with optional [N] array indices, e.g. model.layers[2].hidden",
            )
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(parts)


def parse_value(text: str) -> Any:
    """A TOML value (number, boolean, array, inline table, quoted string), else the bare string."""
    stripped = text.strip()
    if nesting_depth(stripped) > MAX_NESTING:
        raise SpecError("", f"--set: the value nests arrays or tables more than {MAX_NESTING} levels deep; "
                            "a spec nests at most a few levels")
    try:
        value = tomllib.loads(f"v = {stripped}")["v"]
    except tomllib.TOMLDecodeError:
        return stripped
    if isinstance(value, (dt.date, dt.time)):  # a spec holds no dates: "2024-01-01" is a name
        return stripped
    return value


def parse_override(text: str) -> tuple[Loc, Any]:
    """``"train.lr=1e-3"`` → ``(("train", "lr"), 0.001)``."""
    if "=" not in text:
        raise SpecError(text.strip(), f"--set {text.strip()}: expected PATH=VALUE, e.g. train.steps=10")
    path, _, raw = text.partition("=")
    loc = parse_path(path)
    try:
        return loc, parse_value(raw)
    except SpecError as exc:
        raise SpecError(path.strip(), exc.message.replace("--set:", f"--set {path.strip()}=…:", 1)) from None


def _set(doc: dict[str, Any], loc: Loc, value: Any, text: str) -> None:
    node: Any = doc
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        where = format_path(loc[:depth]) or "the spec"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise SpecError(format_path(loc[: depth + 1]),
                                f"--set {text}: {where} is {toml_type(node)}, not an array")
            if part >= len(node):
                raise SpecError(format_path(loc[: depth + 1]),
                                f"--set {text}: {where} has {len(node)} entries (indices 0…{len(node) - 1})"
                                if node else f"--set {text}: {where} is empty")
        elif not isinstance(node, dict):
            raise SpecError(format_path(loc[: depth + 1]),
                            f"--set {text}: {where} is {toml_type(node)}, not a table")
        if last:
            node[part] = value
            return
        nxt = loc[depth + 1]
        if isinstance(part, str) and part not in node:
            if isinstance(nxt, int):
                raise SpecError(format_path(loc[: depth + 1]),
                                f"--set {text}: there is no array {format_path(loc[: depth + 1])} to index")
            node[part] = {}
        node = node[part]


def _table_keys(level: Any, node: Any, registries: Registries) -> tuple[list[str], type | None] | None:
    """The keys allowed in the table ``node`` validated by the model ``level`` (with the
    component's parameters), and the component's Params model; None when it cannot be told."""
    model = as_model(level)
    if model is None:
        return None
    keys = table_keys(model)
    if model is ModelSpec and isinstance(node, Mapping):  # a model kind's own table [model.<kind>]
        kind = _kind_params(node, registries)
        if kind is not None:
            return [*keys, kind[0]], kind[1]
    if issubclass(model, ComponentSpec):
        name = component_name(model, node if isinstance(node, Mapping) else {})
        component = registry_for(model, registries).get(name) if isinstance(name, str) else None
        if component is None:
            return None  # validation reports the unknown component
        params = params_model(component)
        return [*keys, *table_keys(params)], params
    return keys, None


def _kind_params(node: Mapping[str, Any], registries: Registries) -> tuple[str, Any] | None:
    """``(kind name, the kind's Params)`` of a ``[model]`` table whose kind has its own table, else None."""
    name = node.get("kind", ModelSpec.model_fields["kind"].default)
    kind = registries.models.get(name) if isinstance(name, str) else None
    params = getattr(kind, "Params", None)
    return None if params is None else (name, params)


def check_path(doc: Mapping[str, Any], loc: Loc, text: str, registries: Registries) -> None:
    """Raise :class:`SpecError` if ``loc`` names a key the spec does not have (as far as the
    models and the registered components tell)."""
    level: Any = Spec
    node: Any = doc
    for depth, part in enumerate(loc):
        if isinstance(part, int):
            level = item_type(level, part)
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        allowed = _table_keys(level, node, registries)
        if allowed is None:
            return
        keys, params = allowed
        if part not in keys:
            raise SpecError(
                format_path(loc[: depth + 1]),
                f"--set {text}: unknown key '{part}'{did_you_mean(part, keys)}; "
                f"allowed keys{' in ' + format_path(loc[:depth]) if depth else ''}: {', '.join(sorted(keys))}",
            )
        model = as_model(level)
        assert model is not None
        if model is ModelSpec and part not in model.model_fields:
            level = params  # the kind's table: its Params validate it
        else:
            level = field_annotation(model, part) if part in model.model_fields else field_annotation(params, part)
        node = node.get(part) if isinstance(node, Mapping) else None


def apply_overrides(
    doc: Mapping[str, Any], overrides: Iterable[str], registries: Registries
) -> dict[str, Any]:
    """A copy of the raw document ``doc`` with ``overrides`` (``"PATH=VALUE"`` strings) applied.

    Raises:
        SpecError: naming the override, for a malformed one or a path the spec does not have.
    """
    out = copy.deepcopy(dict(doc))
    applied: list[tuple[Loc, str]] = []
    for text in overrides:
        text = text.strip()
        loc, value = parse_override(text)
        _set(out, loc, value, text)
        applied.append((loc, text))
    for loc, text in applied:
        check_path(out, loc, text, registries)
    return out
