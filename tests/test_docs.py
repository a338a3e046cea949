"""The code in README.md and CONTRIBUTING.md runs as written."""

from __future__ import annotations

import re
import types
from pathlib import Path

import torch

from revkit.plugins import load_registries
from revkit.testing import check_block

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.S)


def test_contributing_plugin_example_registers_a_block_that_passes_the_kit():
    blocks = python_blocks(ROOT / "CONTRIBUTING.md")
    block_code = next(b for b in blocks if "class MyCoupling" in b)
    hook_code = next(b for b in blocks if "def register_blocks" in b)

    coupling = types.ModuleType("revkit_myblocks.coupling")
    exec(compile(block_code, "CONTRIBUTING.md", "exec"), coupling.__dict__)
    plugin = types.ModuleType("revkit_myblocks.plugin")
    hook_code = hook_code.replace("from revkit_myblocks.coupling import MyCoupling", "")
    plugin.__dict__["MyCoupling"] = coupling.MyCoupling
    exec(compile(hook_code, "CONTRIBUTING.md", "exec"), plugin.__dict__)

    registries = load_registries(extra_plugins=[("myblocks", plugin)], entry_points=False)
    assert registries.blocks.source("my_coupling") == "myblocks"
    check_block("my_coupling", shapes=[(2,), (6,)], registries=registries, max_examples=5)


def test_readme_python_api_example_runs(monkeypatch):
    code = next(b for b in python_blocks(ROOT / "README.md") if "flow.encode" in b)
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    x, x_back = namespace["x"], namespace["x_back"]
    assert isinstance(x, torch.Tensor) and isinstance(x_back, torch.Tensor)
    assert torch.allclose(x, x_back, atol=1e-4)
    assert namespace["samples"].shape == (16, 1, 28, 28)  # type: ignore[union-attr]
