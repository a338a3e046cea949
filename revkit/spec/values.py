"""Checks on the raw values of a spec document, before any model sees them.

TOML has values that no spec field takes: ``nan``, ``inf`` and dates and times. A spec's numbers
are sizes, rates and weights, so a non-finite one is always a mistake (``scale_bound = inf`` would
train into NaNs); integers are 64-bit in TOML, and Python's parser alone would let a larger one
through. The check runs over the whole document, so a plugin's parameters get it too.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from revkit.errors import SpecError
from revkit.spec.errors import Loc, format_path

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def check_values(value: Any, loc: Loc = ()) -> None:
    """Raise :class:`SpecError` at the first non-finite float, integer beyond 64 bits or
    date/time in ``value``.

    Args:
        value: a parsed TOML document (or any part of one).
        loc: where ``value`` sits in the document.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(format_path(loc), f"expected a finite number, got {value!r}; nan and inf are not "
                                          "allowed in a spec")
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise SpecError(format_path(loc), f"integer {value} is out of range; TOML integers lie in "
                                          f"[{INT_MIN}, {INT_MAX}]")
    if isinstance(value, (dt.date, dt.time)):  # dt.datetime is a dt.date
        raise SpecError(format_path(loc), f"expected a number, string, boolean, array or table, got the "
                                          f"date/time {value.isoformat()}; quote it if it is a name")
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_values(item, (*loc, str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_values(item, (*loc, index))
