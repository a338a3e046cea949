"""Nesting limits of a spec document, checked without recursion.

Python's TOML parser and every walk over a parsed document recurse once per level of nested
arrays and tables, so a document nested thousands of levels deep (in a file or a ``--set`` value)
would end in a ``RecursionError``. A spec nests a few levels; deeper nesting is a :class:`SpecError`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from revkit.errors import SpecError

#: how deeply arrays and tables may nest in a spec (a spec needs 4; Python's parsers recurse per level).
MAX_NESTING = 64


def nesting_depth(text: str) -> int:
    """An upper bound of how deeply arrays and inline tables nest in TOML ``text`` (brackets and
    braces outside strings and comments; table headers count one level each)."""
    depth = deepest = 0
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote is not None:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote or (c == "\n" and quote in "'\""):
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def parse_toml(text: str, where: str = "") -> dict[str, Any]:
    """``tomllib.loads(text)``, refusing arrays and tables nested deeper than :data:`MAX_NESTING`
    before the parser recurses into them (Python's parser would end in a ``RecursionError``).

    Raises:
        SpecError: for too deep nesting; ``tomllib.TOMLDecodeError`` for a syntax error.
    """
    if nesting_depth(text) > MAX_NESTING:
        raise SpecError(where, f"arrays or tables nested more than {MAX_NESTING} levels deep; a spec nests at most "
                               "a few levels")
    try:
        return tomllib.loads(text)
    except RecursionError:  # a structure the estimate above did not catch
        raise SpecError(where, "arrays or tables nested too deeply; a spec nests at most a few levels") from None


def value_depth(value: Any, limit: int = MAX_NESTING + 1) -> int:
    """How deeply lists and mappings nest in ``value`` (0 for a scalar), counted without recursion
    and stopping at ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
        elif isinstance(node, (list, tuple)):
            children = list(node)
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest >= limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
