"""Name → component tables filled by the plugin hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from revkit.errors import PluginError

T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    """One kind of component (``"block"``, ``"prior"``, …) by registered name.

    Each entry remembers the plugin that registered it, so a name registered twice is reported
    with both sources.
    """

    kind: str
    _items: dict[str, T] = field(default_factory=dict)
    _sources: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, component: T, source: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(
                f"plugin {source!r} registered a {self.kind} named {name!r}: names are "
                "identifiers such as 'affine_coupling'"
            )
        if name in self._items:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {self._sources[name]!r} and by {source!r}"
            )
        self._items[name] = component
        self._sources[name] = source

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def source(self, name: str) -> str:
        return self._sources[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def by_source(self, source: str) -> list[str]:
        return sorted(n for n, s in self._sources.items() if s == source)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class PluginInfo:
    """A loaded plugin: its name, distribution version and what it registered."""

    name: str
    version: str
    builtin: bool
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "registered": self.registered,
        }


@dataclass
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "error": self.error}


@dataclass
class Registries:
    """Everything the plugins registered, plus what loaded and what failed."""

    blocks: Registry[Any] = field(default_factory=lambda: Registry("block"))
    priors: Registry[Any] = field(default_factory=lambda: Registry("prior"))
    objectives: Registry[Any] = field(default_factory=lambda: Registry("objective"))
    datasets: Registry[Any] = field(default_factory=lambda: Registry("dataset"))
    models: Registry[Any] = field(default_factory=lambda: Registry("model kind"))
    loggers: Registry[Any] = field(default_factory=lambda: Registry("logger"))
    discriminators: Registry[Any] = field(default_factory=lambda: Registry("discriminator"))
    block_hints: dict[str, str] = field(default_factory=dict)
    logger_hints: dict[str, str] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)

    def of_kind(self, kind: str) -> Registry[Any]:
        return {
            "blocks": self.blocks,
            "priors": self.priors,
            "objectives": self.objectives,
            "datasets": self.datasets,
            "models": self.models,
            "loggers": self.loggers,
            "discriminators": self.discriminators,
        }[kind]

    def hints(self, kind: str) -> dict[str, str]:
        """Names of ``kind`` (``"blocks"``, ``"loggers"``) that other distributions provide → the distribution."""
        return {"blocks": self.block_hints, "loggers": self.logger_hints}.get(kind, {})
