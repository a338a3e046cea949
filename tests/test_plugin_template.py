"""``revkit new-plugin NAME`` writes a plugin distribution that works as written: its entry point names
its hook module, the hook registers ``NAME_coupling``, and that block passes the conformance kit."""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from pathlib import Path

import pytest

from revkit.blocks import Coupling
from revkit.cli import main
from revkit.plugin_template import skeleton_paths, write_plugin_skeleton
from revkit.plugins import load_registries
from revkit.testing import check_block


def test_the_command_writes_the_skeleton_and_says_what_to_do_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", "wavelets", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "revkit-wavelets"
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == skeleton_paths("wavelets")
    assert {"pyproject.toml", "src/revkit_wavelets/plugin.py", "tests/test_conformance.py"} <= set(written)
    assert f"pip install -e {root}" in capsys.readouterr().out


def test_the_entry_point_names_the_hook_module(tmp_path: Path) -> None:
    root = write_plugin_skeleton("wavelets", tmp_path)
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "revkit-wavelets"
    assert project["project"]["entry-points"]["revkit"] == {"wavelets": "revkit_wavelets.plugin"}
    assert (root / "src" / "revkit_wavelets" / "plugin.py").is_file()


def test_the_skeleton_block_registers_and_passes_the_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_plugin_skeleton("wavelets", tmp_path)
    monkeypatch.syspath_prepend(str(root / "src"))
    try:
        plugin = importlib.import_module("revkit_wavelets.plugin")
        regs = load_registries(extra_plugins=[("wavelets", plugin)], entry_points=False)
        assert regs.blocks.source("wavelets_coupling") == "wavelets"
        check_block("wavelets_coupling", shapes=[(2,), (6,), (2, 4, 4)], registries=regs, max_examples=5)
        block = regs.blocks["wavelets_coupling"]
        assert issubclass(block, Coupling) and "inverse_and_vjp" not in vars(block)  # inherits the one-pass step
    finally:
        for module in [m for m in sys.modules if m.startswith("revkit_wavelets")]:
            del sys.modules[module]


def test_the_skeleton_imports_only_revkits_public_modules(tmp_path: Path) -> None:
    root = write_plugin_skeleton("wavelets", tmp_path)
    imported = set()
    for path in (root / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    assert {m for m in imported if m.split(".")[0] == "revkit"} <= {"revkit", "revkit.blocks"}


def test_the_generated_test_calls_the_kit_on_the_registered_name(tmp_path: Path) -> None:
    root = write_plugin_skeleton("wavelets", tmp_path)
    text = (root / "tests" / "test_conformance.py").read_text()
    assert 'check_block("wavelets_coupling"' in text


@pytest.mark.parametrize("name", ["My-Blocks", "2d", "", "Splines"])
def test_a_name_that_is_not_a_lower_case_identifier_is_refused(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 2
    assert "lower-case identifier" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_existing_folder_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "revkit-wavelets").mkdir()
    assert main(["new-plugin", "wavelets", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not any((tmp_path / "revkit-wavelets").iterdir())
