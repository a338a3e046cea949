"""Plugins: third-party blocks arrive through the same pluggy hooks as the built-ins.

A plugin's block is registered, attributed to its source and held to the same conformance
checks; a name registered twice is an error naming both sources; a plugin that fails to import
is reported by name while everything else keeps working; ``REVKIT_LOAD_PLUGINS`` selects which
entry-point plugins load.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from pydantic import Field
from torch import Tensor, nn

from revkit.errors import PluginError
from revkit.invertible import BlockParams, Invertible, Shape, check_rank
from revkit.plugins import ENTRY_POINT_GROUP, hookimpl, load_registries, reset_registries
from revkit.plugins import manager
from revkit.plugins.hookspecs import Register
from revkit.testing import check_block


class ToyParams(BlockParams):
    init_scale: float = Field(0.0, ge=-1.0, le=1.0)


class ToyBlock(Invertible):
    r"""A plugin's block: elementwise :math:`y = x·e^{s} + t`, ``logdet = Σ s``."""

    Params = ToyParams

    def __init__(self, input_shape: Shape, init_scale: float = 0.0):
        super().__init__()
        check_rank("toy_block", input_shape, self.supported_ranks)  # the kit's shape_errors check holds it to them
        self.log_scale = nn.Parameter(torch.full(tuple(input_shape), float(init_scale)))
        self.shift = nn.Parameter(torch.zeros(tuple(input_shape)))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return (y - self.shift) * (-self.log_scale).exp(), (-self.log_scale.sum()).expand(y.shape[0])


class BlockPlugin:
    """A plugin object whose hook registers ``blocks`` (name → class)."""

    __version__ = "1.2.3"

    def __init__(self, blocks: dict[str, type[Invertible]]):
        self.blocks = blocks

    @hookimpl
    def register_blocks(self, register: Register) -> None:
        for name, block in self.blocks.items():
            register(name, block)


# --------------------------------------------------------------------------------------------
# fake entry points (the shape importlib.metadata's have, as manager.py uses them)
# --------------------------------------------------------------------------------------------
class FakeDist:
    version = "0.0.1"


class FakeEntryPoint:
    """An entry point whose ``load()`` returns ``plugin`` or raises ``error``; counts its loads."""

    def __init__(self, name: str, plugin: Any = None, error: Exception | None = None):
        self.name = name
        self.group = ENTRY_POINT_GROUP
        self.dist = FakeDist()
        self._plugin = plugin
        self._error = error
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        if self._error is not None:
            raise self._error
        return self._plugin


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[FakeEntryPoint]]:
    """Install fake entry points in the ``revkit`` group; returns the installer."""

    def install(*eps: FakeEntryPoint) -> list[FakeEntryPoint]:
        def fake(**kwargs: Any) -> list[FakeEntryPoint]:
            return list(eps) if kwargs.get("group") == ENTRY_POINT_GROUP else []

        monkeypatch.setattr(manager.metadata, "entry_points", fake)
        return list(eps)

    monkeypatch.delenv(manager.ENV_LOAD, raising=False)
    return install


@pytest.fixture
def fresh_registries() -> Iterator[None]:
    """Forget the cached process-wide registries before and after the test."""
    reset_registries()
    yield
    reset_registries()


def _broken() -> FakeEntryPoint:
    return FakeEntryPoint("brokenplugin", error=ImportError("No module named 'brokenplugin_impl'"))


# --------------------------------------------------------------------------------------------
# (1) a plugin's block is registered, attributed and conformant
# --------------------------------------------------------------------------------------------
def test_plugin_block_is_registered_attributed_and_conforms() -> None:
    regs = load_registries(extra_plugins=[("toyplugin", BlockPlugin({"toy_block": ToyBlock}))], entry_points=False)
    assert regs.blocks["toy_block"] is ToyBlock
    assert regs.blocks.source("toy_block") == "toyplugin"
    info = {p.name: p for p in regs.plugins}["toyplugin"]
    assert not info.builtin
    assert info.version == "1.2.3"
    assert info.registered == {"blocks": ["toy_block"]}
    assert "split" in regs.blocks  # the built-ins are still there
    check_block("toy_block", registries=regs, max_examples=5)


def test_plugin_can_be_a_module() -> None:
    module = types.ModuleType("toyplugin_module")

    @hookimpl
    def register_blocks(register: Register) -> None:
        register("toy_block", ToyBlock)

    module.register_blocks = register_blocks  # type: ignore[attr-defined]
    regs = load_registries(extra_plugins=[("toymodule", module)], entry_points=False)
    assert regs.blocks.source("toy_block") == "toymodule"
    assert {p.name: p for p in regs.plugins}["toymodule"].registered == {"blocks": ["toy_block"]}


# --------------------------------------------------------------------------------------------
# (2) a name registered twice names both sources
# --------------------------------------------------------------------------------------------
def test_name_clash_with_a_builtin_names_both_sources() -> None:
    clash = r"'split' is registered twice: by 'revkit\.blocks\.builtin' and by 'toyplugin'"
    with pytest.raises(PluginError, match=clash):
        load_registries(extra_plugins=[("toyplugin", BlockPlugin({"split": ToyBlock}))], entry_points=False)


def test_name_clash_between_two_plugins_names_both_sources() -> None:
    plugins = [("first", BlockPlugin({"toy_block": ToyBlock})), ("second", BlockPlugin({"toy_block": ToyBlock}))]
    with pytest.raises(PluginError, match="'toy_block' is registered twice: by 'first' and by 'second'"):
        load_registries(extra_plugins=plugins, entry_points=False)


# --------------------------------------------------------------------------------------------
# (3) a plugin that fails to import is reported; the rest loads
# --------------------------------------------------------------------------------------------
def test_plugin_that_fails_to_import_is_listed_and_builtins_still_load(
    entry_points: Callable[..., list[FakeEntryPoint]],
) -> None:
    entry_points(_broken(), FakeEntryPoint("goodplugin", BlockPlugin({"toy_block": ToyBlock})))
    regs = load_registries()
    failures = {f.name: f.error for f in regs.failures}
    assert list(failures) == ["brokenplugin"]
    assert "ImportError" in failures["brokenplugin"] and "brokenplugin_impl" in failures["brokenplugin"]
    assert "brokenplugin" not in {p.name for p in regs.plugins}
    assert "split" in regs.blocks
    assert regs.blocks.source("toy_block") == "goodplugin"
    assert {p.name: p.version for p in regs.plugins}["goodplugin"] == "0.0.1"


# --------------------------------------------------------------------------------------------
# (4) REVKIT_LOAD_PLUGINS
# --------------------------------------------------------------------------------------------
def _three(entry_points: Callable[..., list[FakeEntryPoint]]) -> list[FakeEntryPoint]:
    return entry_points(
        FakeEntryPoint("a", BlockPlugin({"block_a": ToyBlock})),
        FakeEntryPoint("b", BlockPlugin({"block_b": ToyBlock})),
        FakeEntryPoint("c", BlockPlugin({"block_c": ToyBlock})),
    )


def test_empty_load_plugins_loads_no_entry_point_plugin(
    entry_points: Callable[..., list[FakeEntryPoint]], monkeypatch: pytest.MonkeyPatch
) -> None:
    eps = _three(entry_points)
    monkeypatch.setenv("REVKIT_LOAD_PLUGINS", "")
    regs = load_registries()
    assert [ep.loads for ep in eps] == [0, 0, 0]
    assert all(p.builtin for p in regs.plugins)
    assert not {"block_a", "block_b", "block_c"} & set(regs.blocks.names())
    assert "split" in regs.blocks


def test_load_plugins_list_loads_only_those_named(
    entry_points: Callable[..., list[FakeEntryPoint]], monkeypatch: pytest.MonkeyPatch
) -> None:
    eps = _three(entry_points)
    monkeypatch.setenv("REVKIT_LOAD_PLUGINS", "a, b")
    regs = load_registries()
    assert [ep.loads for ep in eps] == [1, 1, 0]
    assert {p.name for p in regs.plugins if not p.builtin} == {"a", "b"}
    assert {"block_a", "block_b"} <= set(regs.blocks.names())
    assert "block_c" not in regs.blocks


def test_unset_load_plugins_loads_every_entry_point_plugin(entry_points: Callable[..., list[FakeEntryPoint]]) -> None:
    eps = _three(entry_points)
    regs = load_registries()
    assert [ep.loads for ep in eps] == [1, 1, 1]
    assert {p.name for p in regs.plugins if not p.builtin} == {"a", "b", "c"}


# --------------------------------------------------------------------------------------------
# (5) the CLI keeps working with a broken plugin
# --------------------------------------------------------------------------------------------
def _dicts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)


def test_cli_lists_a_broken_plugin_and_exits_0(
    entry_points: Callable[..., list[FakeEntryPoint]],
    fresh_registries: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from revkit.cli import main

    entry_points(_broken())
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    failures = [d for d in _dicts(listing) if d.get("name") == "brokenplugin" and "error" in d]
    assert failures, f"the broken plugin is not listed as a failure in {listing}"
    assert "ImportError" in failures[0]["error"]
    names = {d.get("name") for d in _dicts(listing)}
    assert "revkit.blocks.builtin" in names  # the built-ins are still listed
