"""Writing a validated spec back as TOML (``tomllib`` reads only).

:func:`dumps` serialises the value types a spec holds — tables, arrays, arrays of tables, strings,
integers, floats (``inf``/``nan`` included), booleans and dates — so that
``tomllib.loads(dumps(doc)) == doc``. ``None`` has no TOML form and is rejected: leave such keys out.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _component(table: Any) -> dict[str, Any]:
    common = table.model_dump(mode="json", exclude={"params"}, exclude_none=True)
    params = table.params.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    return {**common, **params}


def _options(options: BaseModel) -> dict[str, Any]:
    """A model kind's own table: its fields, with lists of block tables dumped like ``[[model.layers]]``."""
    lists = [k for k in type(options).model_fields
             if isinstance(getattr(options, k), list) and getattr(options, k)
             and all(_is_component(v) for v in getattr(options, k))]
    table = options.model_dump(mode="json", exclude=set(lists), exclude_none=True)
    for key in lists:
        table[key] = [_component(layer) for layer in getattr(options, key)]
    return table


def _is_component(value: Any) -> bool:
    return hasattr(value, "params") and hasattr(value, "NAME_KEY")


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """The TOML document of ``spec`` (a :class:`~revkit.spec.models.Spec`; read by its attributes,
    so this module sits below the models that call it): the common keys of every table in full, and each
    component's parameters as the spec gave them (so a component's defaults — and whether a
    ``flip`` was left to alternate — stay as they were)."""
    # the default kind is left out, so spec.toml files (and checkpoints) from before model kinds compare equal
    default_kind = type(spec.model).model_fields["kind"].default
    hidden = {"layers", "options"} | ({"kind"} if spec.model.kind == default_kind else set())
    model = spec.model.model_dump(mode="json", exclude=hidden, exclude_none=True)
    if spec.model.layers:
        model["layers"] = [_component(layer) for layer in spec.model.layers]
    if spec.model.options is not None:
        model[spec.model.kind] = _options(spec.model.options)
    return {
        "model": model,
        "prior": _component(spec.prior),
        "objective": _component(spec.objective),
        "data": _component(spec.data),
        "train": spec.train.model_dump(mode="json", exclude_none=True),
        "eval": spec.eval.model_dump(mode="json", exclude_none=True),
        "output": _output(spec.output),
    }


def _output(output: Any) -> dict[str, Any]:
    """``[output]`` with its loggers as ``[[output.loggers]]`` tables (left out when there are none)."""
    table = output.model_dump(mode="json", exclude={"loggers"}, exclude_none=True)
    if getattr(output, "loggers", None):
        table["loggers"] = [_component(logger) for logger in output.loggers]
    return table


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(x)
    return text if any(c in text for c in ".eEn") else text + ".0"


def value(v: Any) -> str:
    """One TOML value (inline form for arrays and tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {value(x)}" for k, x in v.items()) + "}" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if v is None:
        raise TypeError("TOML has no null: leave the key out instead of writing None")
    raise TypeError(f"cannot write a {type(v).__name__} as TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, Mapping) for x in v)


def _table(lines: list[str], path: list[str], table: Mapping[str, Any], array: bool = False) -> None:
    if path:
        if lines:
            lines.append("")
        header = ".".join(_key(p) for p in path)
        lines.append(f"[[{header}]]" if array else f"[{header}]")
    nested = []
    for k, v in table.items():
        if isinstance(v, Mapping) or _is_table_array(v):
            nested.append((k, v))
        else:
            lines.append(f"{_key(str(k))} = {value(v)}")
    for k, v in nested:
        if isinstance(v, Mapping):
            _table(lines, [*path, str(k)], v)
        else:
            for item in v:
                _table(lines, [*path, str(k)], item, array=True)


def dumps(doc: Mapping[str, Any]) -> str:
    """A TOML document for ``doc`` (keys in insertion order; sub-tables after plain keys)."""
    lines: list[str] = []
    _table(lines, [], doc)
    return "\n".join(lines) + "\n"
