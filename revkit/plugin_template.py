"""``revkit new-plugin NAME``: write the skeleton of a third-party plugin distribution.

The skeleton is a complete, installable distribution ``revkit-NAME`` with one working block,
``NAME_coupling`` (an additive coupling, log-det 0, written as a short subclass of the public
:class:`revkit.blocks.Coupling`), its hook module, a conformance test that
calls :func:`revkit.testing.check_block` and a README::

    revkit-NAME/
      pyproject.toml                   entry point  [project.entry-points.revkit]  NAME = "revkit_NAME.plugin"
      README.md
      src/revkit_NAME/__init__.py
      src/revkit_NAME/coupling.py      the block: replace its maths with yours
      src/revkit_NAME/plugin.py        the hook: register("NAME_coupling", …)
      tests/test_conformance.py        check_block("NAME_coupling")

``pip install -e revkit-NAME && python -m pytest revkit-NAME/tests`` passes as written. CONTRIBUTING.md
walks on from there, with ``plugins/revkit-splines`` as the worked example of a real block.
"""

from __future__ import annotations

import re
from pathlib import Path

from revkit.version import __version__
from revkit.errors import RevkitError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part)


def _files(name: str) -> dict[str, str]:
    """Relative path → text of every file in the skeleton of plugin ``name``."""
    package = f"revkit_{name}"
    block = f"{name}_coupling"
    cls = f"{_camel(name)}Coupling"
    major_minor = ".".join(__version__.split(".")[:2])
    return {
        "pyproject.toml": f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "revkit-{name}"
version = "0.1.0"
description = "revkit plugin: the block {block}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["revkit>={major_minor}"]

[project.optional-dependencies]
test = ["revkit[testing]"]

# The entry-point name ({name}) is the plugin's name in `revkit plugins` and REVKIT_LOAD_PLUGINS;
# the value is the module that implements the hooks.
[project.entry-points.revkit]
{name} = "{package}.plugin"

[tool.setuptools.packages.find]
where = ["src"]
''',
        "README.md": f'''# revkit-{name}

A revkit plugin that registers the block `{block}`.

```bash
pip install -e .                  # then: revkit plugins   (lists "{name}" and "{block}")
python -m pytest tests            # the conformance kit
```

In a spec:

```toml
[[model.layers]]
block = "{block}"
hidden = 64
```
''',
        f"src/{package}/__init__.py": f'''"""revkit-{name}: a revkit plugin registering the block ``{block}``."""

from {package}.coupling import {cls}

__all__ = ["{cls}"]
''',
        f"src/{package}/coupling.py": f'''r"""``{block}``: an additive coupling, on images ``(C, H, W)`` and vectors ``(D,)``.

A subclass of revkit's :class:`revkit.blocks.Coupling`: a mask splits ``x`` into ``x_c`` (kept) and
``x_a`` (transformed), the coupling network reads ``x_c`` (and the context, if any) and hands
:meth:`forward_half` ``P`` numbers per transformed entry, ``params [batch, P, *active_shape]``. Here
``P = 1``, a shift :math:`t`:

.. math::

    y_c = x_c, \\qquad y_a = x_a + t(x_c), \\qquad \\log|\\det ∂y/∂x| = 0,

and the inverse is :math:`x_a = y_a - t(y_c)`. Replace the two half-couplings (and ``P``) with your
maths; the channel mask, context, shape checks and a memory-saving backward that evaluates the network
once come from ``Coupling`` (declare ``mask: MaskKind`` and ``flip: bool`` in the ``Params`` and pass
them on to let a spec choose the mask).
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from revkit.blocks import BlockParams, Coupling, Shape


class {cls}Params(BlockParams):
    hidden: int = Field(64, gt=0, description="width of the coupling network")


class {cls}(Coupling):
    """``forward(x [batch, *input_shape]) -> (y [batch, *input_shape], logdet [batch])``, data → latent."""

    Params = {cls}Params
    block_name = "{block}"
    volume_preserving = True

    def __init__(self, input_shape: Shape, *, hidden: int = 64, context_size: int = 0):
        super().__init__(input_shape, hidden=hidden, context_size=context_size, parameters_per_entry=1)

    def forward_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        """:math:`y_a = x_a + t`; the log-derivative is 0 (None)."""
        return active + params[:, 0], None

    def inverse_half(self, active: Tensor, params: Tensor) -> tuple[Tensor, Tensor | None]:
        """:math:`x_a = y_a - t`."""
        return active - params[:, 0], None
''',
        f"src/{package}/plugin.py": f'''"""The hooks revkit calls (the module named by the entry point)."""

from revkit.blocks import Register, hookimpl

from {package}.coupling import {cls}


@hookimpl
def register_blocks(register: Register) -> None:
    register("{block}", {cls})
''',
        "tests/test_conformance.py": f'''"""``{block}`` honours the revkit block contract (revkit's conformance kit)."""

from revkit.testing import check_block


def test_{block}_conforms():
    check_block("{block}", shapes=[(2,), (6,), (2, 4, 4)])
''',
    }


def write_plugin_skeleton(name: str, parent: Path) -> Path:
    """Write the skeleton of plugin ``name`` into ``parent/revkit-NAME`` and return that folder.

    Raises:
        RevkitError: ``name`` is not a lower-case identifier (``[a-z][a-z0-9_]*``), ``parent`` is (or lies
            under) a file, or the folder exists.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise RevkitError(
            f"plugin name {name!r}: use a lower-case identifier such as 'splines' or 'my_blocks' "
            "(letters, digits, underscores; starting with a letter)"
        )
    blocked = next((p for p in (Path(parent), *Path(parent).parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise RevkitError(f"--dir {parent}: {blocked} is a file, not a folder")
    root = Path(parent) / f"revkit-{name}"
    if root.exists():
        raise RevkitError(f"{root} already exists; choose another name or folder (--dir)")
    for relative, text in _files(name).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def skeleton_paths(name: str) -> list[str]:
    """The files the skeleton of ``name`` holds, relative to its folder."""
    return sorted(_files(name))


__all__ = ["NAME_PATTERN", "skeleton_paths", "write_plugin_skeleton"]
