"""The distribution is a revkit plugin: installed, its entry point registers ``rq_spline_coupling``,
``revkit plugins`` lists it with its version, and a spec table for the block is validated by its
``Params`` model exactly like a built-in block's."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from revkit.cli import main
from revkit.errors import SpecError
from revkit.plugins import load_registries
from revkit.spec import load_spec
from revkit_splines import RQSplineAutoregressive, RQSplineCoupling, __version__


def test_the_entry_point_registers_the_block_under_the_plugin_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVKIT_LOAD_PLUGINS", "splines")
    regs = load_registries()
    assert regs.blocks.get("rq_spline_coupling") is RQSplineCoupling
    assert regs.blocks.source("rq_spline_coupling") == "splines"
    (info,) = [p for p in regs.plugins if p.name == "splines"]
    assert info.version == metadata.version("revkit-splines") == __version__
    assert regs.blocks.get("rq_spline_autoregressive") is RQSplineAutoregressive
    assert info.registered == {"blocks": ["rq_spline_autoregressive", "rq_spline_coupling"]}
    assert not regs.failures


def test_revkit_plugins_lists_the_plugin_its_version_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (entry,) = [p for p in doc["plugins"] if p["name"] == "splines"]
    assert entry == {"name": "splines", "version": __version__, "builtin": False,
                     "registered": {"blocks": ["rq_spline_autoregressive", "rq_spline_coupling"]}}


def _spec_text(layer: str) -> str:
    return f"""
[model]
input_shape = [2]
[[model.layers]]
block = "rq_spline_coupling"
{layer}
[data]
kind = "toy2d"
"""


def test_a_spec_table_is_validated_by_the_blocks_params(tmp_path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(_spec_text("bins = 4\nbound = 2.5\nrepeat = 2"))
    spec = load_spec(path)
    assert spec.model.layers[0].params.bins == 4
    path.write_text(_spec_text("bins = 1"))
    with pytest.raises(SpecError, match=r"model\.layers\[0\]\.bins"):
        load_spec(path)
    path.write_text(_spec_text("bnis = 4"))
    with pytest.raises(SpecError, match="did you mean 'bins'"):
        load_spec(path)


def test_the_plugin_imports_only_revkits_public_modules() -> None:
    """A plugin needs only ``revkit``, ``revkit.blocks`` (and ``revkit.testing`` in its tests)."""
    import ast
    from pathlib import Path

    import revkit_splines

    imported: set[str] = set()
    for path in Path(revkit_splines.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    assert {m for m in imported if m.split(".")[0] == "revkit"} <= {"revkit", "revkit.blocks"}
