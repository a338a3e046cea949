"""Helpers of the command-line fuzzers (tests/test_fuzz_cli.py): running ``revkit`` in process,
checking the properties every command must have, and writing TOML from generated values.

The properties (:func:`check_outcome`): the command ends with exit code 0 or 2 (or 3, a documented
divergence, whose last line is its ``error:`` line); on exit 2 stderr is
exactly one line starting ``error: ``; no traceback anywhere; it ends within a time bound; and the
files that existed before it are unchanged (on exit 2 nothing at all is created, changed or removed;
on exit 0 only what the command's job is to write).

``REVKIT_FUZZ_EXAMPLES=N`` switches every fuzzer to an exploratory run of ``N`` random (not
derandomized) examples; without it each runs a few derandomized examples, so the suite stays fast
and reproducible.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis.control import currently_in_test_context

from revkit.cli import main

#: examples per fuzzer in an exploratory run (0: the derandomized CI run).
EXPLORE = int(os.environ.get("REVKIT_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(ci_examples: int) -> settings:
    """Derandomized ``ci_examples`` examples in CI, or ``REVKIT_FUZZ_EXAMPLES`` random ones."""
    return settings(
        max_examples=EXPLORE or ci_examples,
        derandomize=not EXPLORE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


# -- running a command ----------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one command did: exit code, output, seconds, and how the working folder changed."""

    argv: list[str]
    code: int
    out: str
    err: str
    seconds: float
    changed: list[str] = field(default_factory=list)


Snapshot = dict[str, tuple[bool, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every file and folder under ``root``: (is a folder, size, modification time in ns)."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            found[os.path.relpath(path, root)] = (path.is_dir(), st.st_size, st.st_mtime_ns)
    return found


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """``created X``, ``removed X``, ``changed X`` lines between two snapshots (a folder whose
    modification time changed counts as changed: something was created or removed in it)."""
    created = [f"created {p}" for p in sorted(set(after) - set(before))]
    removed = [f"removed {p}" for p in sorted(set(before) - set(after))]
    changed = [f"changed {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return created + removed + changed


@contextlib.contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run_cli(argv: Sequence[str], work: Path) -> Outcome:
    """``revkit.cli.main(argv)`` in ``work`` (the current folder meanwhile), capturing stdout and
    stderr and the changes to ``work``. An exception escaping ``main`` propagates (a failure)."""
    before = snapshot(work)
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with working_folder(work), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    seconds = time.monotonic() - started
    return Outcome(list(argv), code, out.getvalue(), err.getvalue(), seconds, changes(before, snapshot(work)))


def check_outcome(outcome: Outcome, limit_s: float, may_write: Sequence[str] = ()) -> None:
    """The properties every command has (see the module docstring).

    Args:
        limit_s: the time bound.
        may_write: path prefixes (relative to the working folder) a successful command may create
            or change; nothing else may change, and on an error nothing at all.
    """
    if currently_in_test_context():  # statistics of a hypothesis run (not when a test calls it directly)
        event(f"{outcome.argv[0] if outcome.argv else '(none)'} exit {outcome.code}")
    where = f"argv={outcome.argv!r}\nstderr={outcome.err[-2000:]!r}"
    # 3: training diverged (documented; a generated spec may be far out of scale), one error line like 2
    assert outcome.code in (0, 2, 3), f"exit code {outcome.code}\n{where}"
    if outcome.code == 3:
        assert outcome.err.splitlines()[-1].startswith("error: training diverged at step "), where
        assert ": ?;" not in outcome.err, f"divergence message without a place\n{where}"
    assert "Traceback" not in outcome.err + outcome.out, where
    assert outcome.seconds < limit_s, f"took {outcome.seconds:.1f} s (bound {limit_s} s)\n{where}"
    if outcome.code == 2:
        lines = [line for line in outcome.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error: line\n{where}"
        assert len(lines[0]) > len("error: ") + 10, where
        assert outcome.changed == [], f"an error changed files: {outcome.changed}\n{where}"
    else:
        # a folder's modification time changes with what is written into it: only files count here
        bad = [c for c in outcome.changed if not any(c.split(" ", 1)[1].startswith(p) for p in may_write)
               and not (c.startswith("changed ") and any(m.startswith(c.split(" ", 1)[1]) for m in may_write))]
        assert bad == [], f"unexpected changes {bad}\n{where}"


# -- TOML text from generated values -----------------------------------------------------------------
def toml_value(value: Any) -> str:
    """A value as an inline TOML value (nan and inf included; strings with escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    """A document as TOML text: a ``[section]`` per top-level table, inline values below it."""
    lines = [f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    for key, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(str(key), ensure_ascii=False)}]")
            lines += [f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
