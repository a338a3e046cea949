"""Specs that ship inside the package (``revkit/specs/*.toml``, also reachable as ``specs/`` in a clone).

``revkit run mnist_glow`` finds the bundled spec by name from any folder; a path to a file always wins.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from revkit.errors import SpecError, did_you_mean


def bundled_specs() -> dict[str, Path]:
    """Bundled spec name (file stem) → path."""
    folder = resources.files("revkit") / "specs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}


def resolve_spec(arg: str | Path) -> Path:
    """The spec file for ``arg``: an existing path, else the bundled spec of that name.

    Raises:
        SpecError: naming the missing file and the bundled specs.
    """
    path = Path(arg)
    if path.exists():
        return path
    bundled = bundled_specs()
    name = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    if path.parent == Path(".") and name in bundled:
        return bundled[name]
    names = ", ".join(sorted(bundled))
    raise SpecError("", f"no spec file '{arg}'{did_you_mean(name, bundled)}; bundled specs (usable by name): {names}")
