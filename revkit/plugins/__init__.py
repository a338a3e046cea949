"""Plugin hooks and registries (see :mod:`revkit.plugins.hookspecs`)."""

from revkit.plugins.hookspecs import hookimpl, hookspec
from revkit.plugins.manager import ENTRY_POINT_GROUP, get_registries, load_registries, reset_registries
from revkit.plugins.registry import PluginFailure, PluginInfo, Registries, Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginFailure",
    "PluginInfo",
    "Registries",
    "Registry",
    "get_registries",
    "hookimpl",
    "hookspec",
    "load_registries",
    "reset_registries",
]
