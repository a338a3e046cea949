"""Error types a user can act on.

Every error revkit raises for bad input derives from :class:`RevkitError`. The CLI prints
``str(error)`` as one line (no traceback) and exits with code 2. Messages say *where*
(a TOML path such as ``model.layers[3].hidden``, a file, a layer index), *what was wrong*
and *what is allowed*.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RevkitError(Exception):
    """Base class of every user-facing revkit error."""


class SpecError(RevkitError):
    """A spec (TOML file, ``--set`` override or parameter dict) is invalid.

    Args:
        path: where in the spec, in TOML notation (``model.layers[3].hidden``); may be empty
            for an error about the whole file.
        message: what was wrong and what is allowed.
        source: the file the spec came from, if any.
    """

    def __init__(self, path: str, message: str, source: str | None = None):
        # the user's text may hold newlines or other control characters (a quoted TOML key, a
        # --set argument): escaped, so the error stays one line
        self.path = printable(path)
        self.message = printable(message)
        self.source = None if source is None else printable(source)
        path, message, source = self.path, self.message, self.source
        where = f"{source}: " if source else ""
        where += f"{path}: " if path else ""
        super().__init__(f"{where}{message}")


class ShapeError(RevkitError):
    """A block cannot accept the per-sample shape it is given (found at build time)."""


class PluginError(RevkitError):
    """A plugin could not be loaded, or two sources registered the same name."""


class DataError(RevkitError):
    """A data set is missing, unreadable or not what the spec says."""


class LoggerError(RevkitError):
    """An experiment logger that cannot run (its package missing, its store unwritable), named."""


class CheckpointError(RevkitError):
    """A checkpoint is missing, truncated or belongs to another spec."""


class ConvergenceError(RevkitError):
    """An iterative inverse did not reach its tolerance within its iteration limit."""


class FieldError(ValueError):
    """Raised by a pydantic validator for a problem to blame on one field (a cross-field problem, or a
    nested component's own key), naming that field.

    Pydantic reports a model validator's error at the model's location; the spec's error translation
    (:func:`revkit.spec.errors.translate`) appends :attr:`field` so the path points at the offending key
    (``train.step_size``, ``objective.discriminator.kind``).
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: str) -> str:
    """``text`` with every character that is not printable (newlines, tabs, U+2028, …) written as
    an escape (``\\n``, ``\\u2028``); printable text is returned unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _SHORT_ESCAPES.get(c) or
                   (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") for c in text)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def allowed(choices: Iterable[str]) -> str:
    """Format a list of allowed names for an error message."""
    names = sorted(choices)
    return ", ".join(f"'{n}'" for n in names) if names else "(none registered)"
