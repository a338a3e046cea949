"""Reading and validating a spec: TOML file → overrides → component tables → :class:`Spec`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from revkit.errors import SpecError, did_you_mean
from revkit.plugins import get_registries
from revkit.plugins.registry import Registries
from revkit.spec.components import stage_component
from revkit.spec.errors import Loc, table_keys, toml_type, translate
from revkit.spec.models import COMPONENT_SECTIONS, LayerSpec, LoggerSpec, ModelSpec, Spec
from revkit.spec.nesting import MAX_NESTING, parse_toml, value_depth
from revkit.spec.overrides import apply_overrides
from revkit.spec.values import check_values

#: the UTF-8 byte-order mark, which TOML does not allow at the start of a document.
_BOM = "\ufeff"
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def read_toml(path: str | PathLike[str]) -> dict[str, Any]:
    """Parse a TOML file.

    Raises:
        SpecError: naming the file when it is missing or unreadable, and the line and column of
            a syntax error.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError("", "no such spec file", str(p)) from None
    except IsADirectoryError:
        raise SpecError("", f"{p} is a folder, not a spec file", str(p)) from None
    except UnicodeDecodeError as exc:
        raise SpecError("", f"not UTF-8 text (byte {exc.start}); a spec is a TOML file", str(p)) from None
    except OSError as exc:
        raise SpecError("", f"cannot read the spec file: {exc.strerror or exc}", str(p)) from None
    if text.startswith(_BOM):
        raise SpecError("", "starts with a UTF-8 byte-order mark (bytes EF BB BF), which TOML does not allow; "
                            "save the file as UTF-8 without BOM", f"{p}:1:1")
    try:
        return parse_toml(text)
    except SpecError as exc:  # nested too deeply
        raise SpecError(exc.path, exc.message, str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        match = _AT.search(reason) or _AT_END.search(reason)
        if match is None:
            raise SpecError("", f"TOML syntax error: {reason}", str(p)) from None
        if match.re is _AT:
            line, column = (int(g) for g in match.groups())
        else:  # the document ended early: point after its last character
            lines = text.split("\n")
            line, column = len(lines), len(lines[-1]) + 1
        raise SpecError(
            "", f"TOML syntax error at line {line}, column {column}: {reason[: match.start()]}",
            f"{p}:{line}:{column}",
        ) from None


def _stage_layers(layers: list[Any], registries: Registries, path: Loc) -> list[Any]:
    return [stage_component(LayerSpec, layer, registries, (*path, i)) if isinstance(layer, Mapping) else layer
            for i, layer in enumerate(layers)]


def _stage_model(model: Mapping[str, Any], registries: Registries) -> dict[str, Any]:
    """``[model]`` with its layers staged and the kind's own table ``[model.<kind>]`` validated by the
    kind's ``Params`` (into the hidden field ``options``). What a kind needs is read from the kind
    (:class:`revkit.model.ModelKind`), so every kind, built in or from a plugin, is checked alike."""
    staged = dict(model)
    if isinstance(staged.get("layers"), list):
        staged["layers"] = _stage_layers(staged["layers"], registries, ("model", "layers"))
    name = staged.get("kind", ModelSpec.model_fields["kind"].default)
    if not isinstance(name, str):
        return staged  # validating ModelSpec reports the type
    kinds = registries.models
    kind = kinds.get(name)
    if kind is None:
        installed = ", ".join(f"'{n}'" for n in kinds.names()) or "(none)"
        raise SpecError("model.kind", f"unknown model kind '{name}'{did_you_mean(name, kinds.names())}; "
                                      f"installed model kinds: {installed}")
    for other in kinds.names():
        if other != name and other in staged:
            raise SpecError(f"model.{other}", f"[model.{other}] needs model.kind = '{other}' (this spec's kind is "
                                              f"'{name}')")
    lists = tuple(getattr(kind, "layer_lists", ()))
    layers = staged.get("layers")
    if getattr(kind, "needs_layers", True):
        if isinstance(layers, list) and not layers or "layers" not in staged:
            raise SpecError("model.layers", f"should have at least 1 item: model kind '{name}' needs [[model.layers]]")
    elif layers:
        where = f"; its blocks go in [[model.{name}.{lists[0]}]]" if lists else ""
        raise SpecError("model.layers", f"model kind '{name}' takes no [[model.layers]]{where}")
    params_cls = getattr(kind, "Params", None)
    if params_cls is None:
        return staged
    table = staged.pop(name, None)
    if table is None:
        keys = ", ".join(list(params_cls.model_fields)[:3])
        raise SpecError(f"model.{name}", f"model.kind = '{name}' needs a [model.{name}] table ({keys}, …)")
    if not isinstance(table, Mapping):
        raise SpecError(f"model.{name}", f"should be a table, got {toml_type(table)}")
    table = dict(table)
    for key in lists:
        if isinstance(table.get(key), list):
            table[key] = _stage_layers(table[key], registries, ("model", name, key))
    try:
        staged["options"] = params_cls.model_validate(table)
    except ValidationError as exc:
        raise translate(exc, root=params_cls, prefix=("model", name)) from None
    return staged


def _stage(data: Mapping[str, Any], registries: Registries) -> dict[str, Any]:
    """The document with each component table's parameters validated by its registered Params."""
    staged = dict(data)
    model = staged.get("model")
    if isinstance(model, Mapping):
        if "options" in model:  # a hidden field, not a key of the table
            raise SpecError("model.options", f"unknown key 'options'; [model] takes {', '.join(table_keys(ModelSpec))}")
        staged["model"] = _stage_model(model, registries)
    for section, spec_cls in COMPONENT_SECTIONS.items():
        table = staged.get(section, {} if section != "data" else None)
        if isinstance(table, Mapping):
            staged[section] = stage_component(spec_cls, table, registries, (section,))
    output = staged.get("output")
    if isinstance(output, Mapping) and isinstance(output.get("loggers"), list):
        staged["output"] = {**output, "loggers": _stage_loggers(output["loggers"], registries)}
    return staged


def _stage_loggers(loggers: list[Any], registries: Registries) -> list[Any]:
    """``output.loggers``: a name stands for the table ``{kind = name}``; each table is staged like a layer."""
    tables = [{"kind": item} if isinstance(item, str) else item for item in loggers]
    return [stage_component(LoggerSpec, table, registries, ("output", "loggers", i)) if isinstance(table, Mapping)
            else table for i, table in enumerate(tables)]


def load_spec_dict(
    data: Any, source: str | None = None, registries: Registries | None = None
) -> Spec:
    """Validate a spec given as a dict (a parsed TOML document).

    Args:
        data: the document.
        source: the file it came from, named in errors.
        registries: the components to validate against (default: the installed plugins').

    Raises:
        SpecError: on the first problem, with its TOML path and what is allowed.
    """
    regs = registries if registries is not None else get_registries()
    try:
        deepest = value_depth(data)
        if deepest > MAX_NESTING:
            raise SpecError("", f"arrays or tables nested {deepest} levels deep; at most {MAX_NESTING} are allowed "
                                "(a spec nests a few levels)")
        if not isinstance(data, Mapping):
            raise SpecError("", f"a spec is a table of sections ([model], [data], …), got {toml_type(data)}")
        check_values(data)
        staged = _stage(data, regs)
        try:
            return Spec.model_validate(staged)
        except ValidationError as exc:
            raise translate(exc, root=Spec) from None
    except SpecError as exc:
        if source is not None and exc.source is None:
            raise SpecError(exc.path, exc.message, source) from None
        raise


def load_spec(
    path: str | PathLike[str], overrides: Iterable[str] = (), registries: Registries | None = None
) -> Spec:
    """Read, override and validate a spec file.

    Args:
        path: the TOML file.
        overrides: ``"PATH=VALUE"`` strings (``--set``), applied in order, e.g.
            ``["train.steps=10", "model.layers[2].hidden=32"]``; values are TOML values, else strings.
        registries: the components to validate against (default: the installed plugins').

    Raises:
        SpecError: naming the file (and line and column for a syntax error), the override, or the
            TOML path of the first invalid value.
    """
    regs = registries if registries is not None else get_registries()
    data = read_toml(path)
    try:
        data = apply_overrides(data, overrides, regs)
    except SpecError as exc:
        raise SpecError(exc.path, exc.message, str(path)) from None
    return load_spec_dict(data, source=str(path), registries=regs)
