"""The ``revkit`` plugin manager: built-ins and third-party plugins through the same hooks.

Third-party distributions declare an entry point in the group ``revkit``::

    [project.entry-points.revkit]
    splines = "revkit_splines.plugin"

The module it names implements hooks from :mod:`revkit.plugins.hookspecs`. A plugin that fails to
import (or whose hook raises) is recorded in :attr:`Registries.failures` and the rest keeps working.
``REVKIT_LOAD_PLUGINS`` limits which entry-point plugins load: unset loads all, an empty string
loads none, ``a,b`` loads only those named.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import pluggy

from revkit.errors import PluginError
import revkit.plugins.hookspecs as hookspecs
from revkit.plugins.registry import PluginFailure, PluginInfo, Registries

ENTRY_POINT_GROUP = "revkit"
ENV_LOAD = "REVKIT_LOAD_PLUGINS"

#: Internal plugin modules that register the built-in components.
BUILTIN_MODULES = (
    "revkit.blocks.builtin",
    "revkit.priors.builtin",
    "revkit.objectives.builtin",
    "revkit.data.builtin",
    "revkit.kinds",
    "revkit.vae.plugin",
    "revkit.loggers.builtin",
    "revkit.discriminators.builtin",
    "revkit.alignflow.plugin",
)

_HOOKS = {
    "blocks": "register_blocks",
    "priors": "register_priors",
    "objectives": "register_objectives",
    "datasets": "register_datasets",
    "models": "register_models",
    "loggers": "register_loggers",
    "discriminators": "register_discriminators",
}

#: hint hooks: a name another distribution provides → that distribution (``Registries.<attribute>``).
_HINT_HOOKS = {"register_block_hints": "block_hints", "register_logger_hints": "logger_hints"}


def _revkit_version() -> str:
    try:
        return metadata.version("revkit")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        from revkit.version import __version__

        return __version__


def _selected(name: str) -> bool:
    wanted = os.environ.get(ENV_LOAD)
    if wanted is None:
        return True
    return name in {w.strip() for w in wanted.split(",") if w.strip()}


def load_registries(
    extra_plugins: Iterable[tuple[str, Any]] = (),
    entry_points: bool = True,
) -> Registries:
    """Build a fresh plugin manager and collect every registration.

    Args:
        extra_plugins: ``(name, plugin_object_or_module)`` pairs registered after the built-ins,
            as an installed plugin would be (tests use this to prove the hook path).
        entry_points: load the plugins of the ``revkit`` entry-point group.

    Raises:
        PluginError: when two sources register the same name.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    regs = Registries()
    version = _revkit_version()
    for modname in BUILTIN_MODULES:
        pm.register(importlib.import_module(modname), name=modname)
        regs.plugins.append(PluginInfo(name=modname, version=version, builtin=True))

    plugins: list[tuple[str, Any, str]] = []
    if entry_points:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if not _selected(ep.name):
                continue
            dist_version = ep.dist.version if ep.dist is not None else "unknown"
            try:
                plugins.append((ep.name, ep.load(), dist_version))
            except Exception as exc:  # a broken plugin must not take the rest down
                regs.failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}"))
    for name, obj in extra_plugins:
        plugins.append((name, obj, getattr(obj, "__version__", "unknown")))
    for name, obj, dist_version in plugins:
        try:
            pm.register(obj, name=name)
        except ValueError as exc:
            regs.failures.append(PluginFailure(name, f"could not register: {exc}"))
            continue
        regs.plugins.append(PluginInfo(name=name, version=str(dist_version), builtin=False))

    by_name = {p.name: p for p in regs.plugins}
    for kind, hook_name in _HOOKS.items():
        registry = regs.of_kind(kind)
        for impl in getattr(pm.hook, hook_name).get_hookimpls():  # in registration order
            source = impl.plugin_name
            try:
                impl.function(register=functools.partial(registry.add, source=source))
            except PluginError:
                raise
            except Exception as exc:
                regs.failures.append(PluginFailure(source, f"{hook_name} failed: {type(exc).__name__}: {exc}"))
                continue
            names = registry.by_source(source)
            if names and source in by_name:
                by_name[source].registered[kind] = names
    for hook_name, attribute in _HINT_HOOKS.items():
        hints: dict[str, str] = getattr(regs, attribute)
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(register=hints.__setitem__)
            except Exception as exc:
                regs.failures.append(PluginFailure(impl.plugin_name, f"{hook_name} failed: {exc}"))
    return regs


@functools.cache
def get_registries() -> Registries:
    """The process-wide registries (built once, on first use)."""
    return load_registries()


def reset_registries() -> None:
    """Forget the cached registries (tests, or after installing a plugin in-process)."""
    get_registries.cache_clear()

