"""The registry: discovers plugins through entry points, holds their specs, and resolves model names.

A plugin that fails to import, or declares a name another plugin declares too, never breaks the others:
its state is kept in `PluginInfo` for `zoo plugins` to show.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from zoo import settings
from zoo.errors import PluginError, UnknownModelError
from zoo.names import ModelName, parse_name
from zoo.plugin import Plugin, SchemeResolver
from zoo.specs import ModelSpec

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Registry", "get_registry", "reset_registry"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zoo.plugins"
#: Plugin name of models registered in-script with `zoo.register`.
USER_PLUGIN = "user"

#: Tasks the core implements, as lazy import paths.
CORE_TASKS = {
    "image-classification": "zoo.tasks.classification:ImageClassification",
    "sequence-classification": "zoo.tasks.sequence:SequenceClassification",
    "object-detection": "zoo.tasks.detection:ObjectDetection",
    "image-to-image": "zoo.tasks.image_to_image:ImageToImage",
}


@dataclass(frozen=True)
class PluginInfo:
    """What `zoo plugins` shows about one plugin.

    Attributes:
        name: entry-point (and plugin) name.
        status: "ok", "error" (failed to load) or "disabled" (not in `ZOO_PLUGINS`).
        source: the entry point's target, e.g. `zoo_torchvision:plugin`.
        version: the distribution's version, when known.
        models: number of models it declares.
        reason: why it failed, or which names clash.
        clashes: model names it shares with other plugins.
    """

    name: str
    status: str
    source: str = ""
    version: str | None = None
    description: str = ""
    models: int = 0
    reason: str = ""
    clashes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "status": self.status,
            "source": self.source,
            "version": self.version,
            "description": self.description,
            "models": self.models,
            "reason": self.reason,
            "clashes": list(self.clashes),
        }


@dataclass
class Registry:
    """Plugins and the specs they declare, with name resolution.

    Build one with `Registry.discover()` (entry points) or add plugins by hand with `add_plugin`.
    """

    plugins: dict[str, Plugin] = field(default_factory=dict)
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    _by_name: dict[str, list[ModelSpec]] = field(default_factory=dict, init=False, repr=False)
    _schemes: dict[str, SchemeResolver] = field(default_factory=dict, init=False, repr=False)
    _tasks: dict[str, str] = field(default_factory=lambda: dict(CORE_TASKS), init=False, repr=False)
    _commands: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def discover(cls, entry_points: Iterable[metadata.EntryPoint] | None = None) -> Registry:
        """Load every plugin of the `zoo.plugins` entry-point group, honouring `ZOO_PLUGINS`."""
        registry = cls()
        allow = settings.plugin_allowlist()
        eps = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(eps, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else None
            if allow is not None and ep.name not in allow:
                registry.infos[ep.name] = PluginInfo(
                    ep.name, "disabled", ep.value, version, reason="not in ZOO_PLUGINS"
                )
                continue
            try:
                plugin = _as_plugin(ep.load(), ep.value)
            except Exception as exc:  # a broken plugin must never break the others
                log.info("zoo plugin %r failed to load: %s", ep.name, exc)  # `zoo plugins` shows it
                registry.infos[ep.name] = PluginInfo(
                    ep.name, "error", ep.value, version, reason=f"{type(exc).__name__}: {exc}"
                )
                continue
            registry.add_plugin(plugin, source=ep.value, version=plugin.version or version, key=ep.name)
        return registry

    def add_plugin(
        self, plugin: Plugin, *, source: str = "", version: str | None = None, key: str | None = None
    ) -> None:
        """Add a loaded plugin; clashing names are recorded on both owners, never raised."""
        key = key or plugin.name
        if plugin.name in self.plugins:
            self.infos[key] = PluginInfo(key, "error", source, version, reason=f"plugin name {plugin.name!r} is taken")
            return
        self.plugins[plugin.name] = plugin
        for spec in plugin.specs.values():
            self._by_name.setdefault(spec.name, []).append(spec)
        for prefix, resolver in plugin.schemes.items():
            self._schemes.setdefault(prefix, resolver)
        for task, target in plugin.tasks.items():
            self._tasks.setdefault(task, target)
        for name, target in plugin.commands.items():
            self._commands.setdefault(name, target)
        self.infos[key] = PluginInfo(
            key, "ok", source, version, description=plugin.description, models=len(plugin.specs)
        )
        self._refresh_clashes()

    def add_spec(self, spec: ModelSpec) -> None:
        """Add one spec (used by `zoo.register`); it joins the in-script plugin."""
        plugin = self.plugins.get(spec.plugin)
        if plugin is None:
            plugin = Plugin(spec.plugin, description="models registered in this process")
            self.add_plugin(plugin)
        existing = plugin.specs.get(spec.name)
        if existing is not None:  # re-registering in a notebook replaces the old builder
            plugin._specs.pop(spec.name)
            self._by_name[spec.name].remove(existing)
        plugin.add(spec)
        self._by_name.setdefault(spec.name, []).append(spec)
        self.infos[spec.plugin] = PluginInfo(
            spec.plugin, "ok", "in-script", description=plugin.description, models=len(plugin.specs)
        )
        self._refresh_clashes()

    def _refresh_clashes(self) -> None:
        clashes: dict[str, list[str]] = {}
        for name, specs in self._by_name.items():
            if len(specs) > 1:
                for spec in specs:
                    clashes.setdefault(spec.plugin, []).append(name)
        for key, info in list(self.infos.items()):
            if info.status != "ok":
                continue
            names = tuple(sorted(clashes.get(info.name, ())))
            reason = ""
            if names:
                owners = {p for n in names for p in (s.plugin for s in self._by_name[n])} - {info.name}
                reason = f"names also declared by {', '.join(sorted(owners))}: {', '.join(names)}"
            self.infos[key] = PluginInfo(
                info.name, info.status, info.source, info.version, info.description, info.models, reason, names
            )

    # -- lookup -------------------------------------------------------------------------------------

    def specs(
        self, pattern: str | None = None, *, task: str | None = None, plugin: str | None = None
    ) -> list[ModelSpec]:
        """Specs sorted by name, filtered by an fnmatch `pattern`, a task and a plugin."""
        out = []
        for name in sorted(self._by_name):
            for spec in self._by_name[name]:
                if pattern and not (
                    fnmatch.fnmatchcase(name, pattern.lower())
                    or fnmatch.fnmatchcase(spec.qualified_name, pattern.lower())
                ):
                    continue
                if task and spec.task != task:
                    continue
                if plugin and spec.plugin != plugin:
                    continue
                out.append(spec)
        return out

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.specs())

    def task_target(self, task: str) -> str:
        """The `module:Class` that implements `task`."""
        try:
            return self._tasks[task]
        except KeyError:
            known = ", ".join(sorted(self._tasks))
            raise PluginError(f"No plugin implements task {task!r}. Known tasks: {known}.") from None

    def command_names(self) -> list[str]:
        """Names of the CLI commands plugins add."""
        return sorted(self._commands)

    def command(self, name: str) -> Any:
        """The click command a plugin adds under `name`, imported now; None when no plugin adds one."""
        target = self._commands.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"Command {name!r} cannot be imported from {target!r}: {exc}") from exc

    def resolve(self, name: str | ModelName) -> tuple[ModelSpec, str | None]:
        """Find the spec and canonical weights tag for a model name.

        Returns:
            `(spec, tag)` where `tag` is None for random init.

        Raises:
            UnknownModelError: no such model, plugin or tag, or a bare name two plugins declare.
        """
        parsed = parse_name(name, frozenset(self._schemes)) if isinstance(name, str) else name
        if parsed.scheme is not None:
            resolver = self._schemes.get(parsed.scheme)
            if resolver is None:
                raise UnknownModelError(
                    f"No plugin handles '{parsed.scheme}:' names. Install the plugin that does, and see `zoo plugins`.",
                    name=parsed.raw,
                )
            spec, tag = resolver(parsed.target)
            return spec, tag
        spec = self._spec(parsed)
        return spec, spec.weights_tag(parsed.tag)

    def _spec(self, parsed: ModelName) -> ModelSpec:
        candidates = self._by_name.get(parsed.model, [])
        if parsed.plugin is not None:
            if parsed.plugin not in self.plugins:
                info = self.infos.get(parsed.plugin)
                why = f" (it is {info.status}: {info.reason})" if info else ""
                raise UnknownModelError(
                    f"Unknown plugin {parsed.plugin!r} in {parsed.raw!r}{why}. See `zoo plugins`.", name=parsed.raw
                )
            candidates = [s for s in candidates if s.plugin == parsed.plugin]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            owners = [s.qualified_name for s in candidates]
            raise UnknownModelError(
                f"Model name {parsed.model!r} is declared by several plugins: use one of {', '.join(owners)}.",
                name=parsed.raw,
                suggestions=owners,
            )
        pool = [s.name for s in self.specs(plugin=parsed.plugin)]
        close = difflib.get_close_matches(parsed.model, pool, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        where = f" in plugin {parsed.plugin!r}" if parsed.plugin else ""
        raise UnknownModelError(
            f"Unknown model {parsed.model!r}{where}.{hint} See `zoo list {parsed.model[:3]}*`.",
            name=parsed.raw,
            suggestions=close,
        )


def _as_plugin(obj: Any, source: str) -> Plugin:
    if isinstance(obj, Plugin):
        return obj
    candidate = getattr(obj, "plugin", None)
    if isinstance(candidate, Plugin):
        return candidate
    if callable(obj):
        result = obj()
        if isinstance(result, Plugin):
            return result
    raise PluginError(
        f"entry point {source!r} is not a zoo.Plugin, a module with `plugin`, or a function returning one"
    )


_lock = threading.Lock()
_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, discovered on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry.discover()
        return _registry


def reset_registry() -> None:
    """Forget the discovered registry (and in-script registrations); the next use discovers again."""
    global _registry
    with _lock:
        _registry = None
