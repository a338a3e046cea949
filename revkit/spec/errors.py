"""Turning pydantic validation errors into one :class:`~revkit.errors.SpecError` with a TOML path.

A pydantic error carries a location tuple such as ``("model", "layers", 3, "hidden")``; the user
wrote TOML, so the path is reported as ``model.layers[3].hidden``. The message says what was
wrong and what is allowed: the allowed values of a ``Literal``, the bound of a number, the allowed
keys (with a did-you-mean) for an unknown key, the field's description for a missing key.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from revkit.errors import FieldError, SpecError, did_you_mean

Loc = tuple[str | int, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(loc: Iterable[str | int]) -> str:
    """``("model", "layers", 3, "hidden")`` → ``model.layers[3].hidden`` (TOML key syntax)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else quoted_key(part)
        out += f".{key}" if out else key
    return out


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def quoted_key(key: str) -> str:
    """``key`` as a TOML basic string: quotes and backslashes escaped, and every character that is
    not printable (newlines, U+2028, …) as an escape, so the key stays on one line."""
    def escape(c: str) -> str:
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c.isprintable():
            return c
        return f"\\u{ord(c):04X}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08X}"

    return '"' + "".join(escape(c) for c in key) + '"'


def key_text(key: str | int) -> str:
    """A key for a message: ``'hidden'``, or :func:`quoted_key` when it is not a bare key."""
    text = str(key)
    return f"'{text}'" if _BARE_KEY.fullmatch(text) else quoted_key(text)


def toml_type(value: Any) -> str:
    """The TOML name of a value's type, with an article: ``'an integer'``, ``'a table'``."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def show(value: Any, limit: int = 60) -> str:
    """A short TOML-flavoured rendering of a user's value for an error message."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{format_path((str(k),))} = {show(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v, limit) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- walking a model's annotations along a location --------------------------------------------
def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` (keeping the first non-None member of a union)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in members if as_model(a) is not None]
            tp = (models or members or [Any])[0]
        else:
            return tp


def as_model(tp: Any) -> type[BaseModel] | None:
    """The pydantic model class that an annotation denotes, if any."""
    tp = _unwrap(tp) if typing.get_origin(tp) is not None else tp
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def item_type(tp: Any, index: int = 0) -> Any:
    """The annotation of an element of an array (or of a value of a table) annotation."""
    tp = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[index] if 0 <= index < len(args) else Any
    if origin in (list, set, frozenset, Sequence) and args:
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return Any


def field_annotation(model: type[BaseModel], key: str) -> Any:
    """The annotation of field ``key`` of ``model`` (``Any`` if there is none)."""
    field = model.model_fields.get(key)
    return Any if field is None else field.annotation


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class found by following ``loc`` from ``root``, or None where it is not a model."""
    current: Any = root
    for part in loc:
        model = as_model(current)
        if isinstance(part, str) and model is not None:
            if part not in model.model_fields:
                return None
            current = field_annotation(model, part)
        elif isinstance(part, int):
            current = item_type(current, part)
        elif isinstance(part, str):
            current = item_type(current)
        else:
            return None
    return as_model(current)


def table_keys(model: type[BaseModel]) -> list[str]:
    """The keys a TOML table validated by ``model`` may hold (components hide ``params``)."""
    hidden = getattr(model, "HIDDEN_FIELDS", ())
    return [k for k in model.model_fields if k not in hidden]


# -- the translation ---------------------------------------------------------------------------
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "an array",
    "tuple_type": "an array",
    "set_type": "an array",
    "iterable_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "none_required": "nothing (leave the key out)",
}

_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": ("≥", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("≤", "le"),
}


def _clean_loc(loc: Sequence[Any]) -> Loc:
    """Drop the union-member tags pydantic inserts (``'list[int]'``, ``'function-after[…]'``)."""
    return tuple(p for p in loc if isinstance(p, int) or (isinstance(p, str) and "[" not in p))


def _missing(model: type[BaseModel] | None, key: str | int) -> str:
    text = f"missing required key '{key}'"
    if model is not None and isinstance(key, str) and key in model.model_fields:
        description = model.model_fields[key].description
        if description:
            text += f" ({description})"
    return text


def _unknown(key: str | int, allowed_keys: Iterable[str]) -> str:
    names = sorted(set(allowed_keys))
    listing = ", ".join(names) if names else "(none)"
    return f"unknown key {key_text(key)}{did_you_mean(str(key), names)}; allowed keys: {listing}"


def describe_error(
    err: Mapping[str, Any], loc: Loc, root: type[BaseModel] | None, extra_keys: Iterable[str] = ()
) -> tuple[Loc, str]:
    """One pydantic error → (location, message). ``extra_keys`` are keys the table at the root
    of ``root`` also allows (the common keys of a component table)."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    parent = model_at(root, loc[:-1]) if root is not None and loc else None
    if kind == "extra_forbidden" and loc:
        allowed_keys = table_keys(parent) if parent is not None else []
        if len(loc) == 1:
            allowed_keys = [*allowed_keys, *extra_keys]
        return loc, _unknown(loc[-1], allowed_keys)
    if kind == "missing" and loc and isinstance(loc[-1], int):
        return loc[:-1], f"too few items: item [{loc[-1]}] is missing (got {show(value)})"
    if kind == "missing" and loc:
        return loc, _missing(parent, loc[-1])
    if kind in ("literal_error", "enum"):
        return loc, f"{show(value)} is not allowed; allowed values: {ctx.get('expected', '?')}"
    if kind in _BOUNDS:
        symbol, name = _BOUNDS[kind]
        return loc, f"must be {symbol} {ctx.get(name)}, got {show(value)}"
    if kind == "multiple_of":
        return loc, f"must be a multiple of {ctx.get('multiple_of')}, got {show(value)}"
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length")
        return loc, f"needs at least {least} {'item' if kind == 'too_short' else 'character'}" \
                    f"{'s' if least != 1 else ''}, got {show(value)}"
    if kind in ("too_long", "string_too_long"):
        most = ctx.get("max_length")
        return loc, f"allows at most {most} {'item' if kind == 'too_long' else 'character'}" \
                    f"{'s' if most != 1 else ''}, got {show(value)}"
    if kind == "string_pattern_mismatch":
        return loc, f"{show(value)} does not match the pattern {ctx.get('pattern')}"
    if kind in _EXPECTED:
        return loc, f"expected {_EXPECTED[kind]}, got {toml_type(value)} {show(value)}"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        if isinstance(error, FieldError):
            return (*loc, error.field), error.message
        message = str(error) if error is not None else err.get("msg", "invalid value")
        return loc, message
    return loc, f"{err.get('msg', 'invalid value')} (got {show(value)})"


def translate(
    exc: ValidationError,
    *,
    root: type[BaseModel] | None,
    prefix: Loc = (),
    extra_keys: Iterable[str] = (),
    source: str | None = None,
) -> SpecError:
    """A pydantic :class:`ValidationError` → one :class:`SpecError` about its first problem.

    Args:
        exc: the error; ``exc.errors()`` are relative to ``root``.
        root: the model that was validated (used to list allowed keys and describe fields).
        prefix: the TOML location of ``root``'s table (``("model", "layers", 3)``).
        extra_keys: keys the root table allows besides ``root``'s fields.
        source: the spec file, if any.
    """
    # an unknown key first: when a key is misspelt, "unknown key 'modle' (did you mean 'model'?)"
    # says more than the "missing required key 'model'" it also causes
    errors = sorted(exc.errors(include_url=False), key=lambda e: e.get("type") != "extra_forbidden")
    if not errors:
        return SpecError(format_path(prefix), str(exc), source)
    first = errors[0]
    loc, message = describe_error(first, _clean_loc(first.get("loc", ())), root, extra_keys)
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(format_path((*prefix, *loc)), message, source)
