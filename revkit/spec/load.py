"""Reading and validating a spec: TOML file → overrides → component tables → :class:`Spec`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from revkit.errors import SpecError
from revkit.plugins import get_registries
from revkit.plugins.registry import Registries
from revkit.spec.components import stage_component
from revkit.spec.errors import toml_type, translate
from revkit.spec.models import COMPONENT_SECTIONS, LayerSpec, Spec
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


def _stage(data: Mapping[str, Any], registries: Registries) -> dict[str, Any]:
    """The document with each component table's parameters validated by its registered Params."""
    staged = dict(data)
    model = staged.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("layers"), list):
        model = dict(model)
        model["layers"] = [
            stage_component(LayerSpec, layer, registries, ("model", "layers", i))
            if isinstance(layer, Mapping) else layer
            for i, layer in enumerate(model["layers"])
        ]
        staged["model"] = model
    vae = model.get("vae") if isinstance(model, Mapping) else None
    if isinstance(vae, Mapping) and isinstance(vae.get("posterior_flow"), list):
        vae = dict(vae)
        vae["posterior_flow"] = [
            stage_component(LayerSpec, layer, registries, ("model", "vae", "posterior_flow", i))
            if isinstance(layer, Mapping) else layer
            for i, layer in enumerate(vae["posterior_flow"])
        ]
        staged["model"] = {**model, "vae": vae}
    for section, spec_cls in COMPONENT_SECTIONS.items():
        table = staged.get(section, {} if section != "data" else None)
        if isinstance(table, Mapping):
            staged[section] = stage_component(spec_cls, table, registries, (section,))
    return staged


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
