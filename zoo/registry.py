"""The registry: discovers plugins through entry points, holds their specs, and resolves model names.

A plugin that fails to import, or declares a name another plugin declares too, never breaks the others:
its state is kept in `PluginInfo` for `zoo plugins` to show.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any

from zoo import settings
from zoo.errors import PluginError, UnknownModelError
from zoo.names import ModelName, parse_name
from zoo.plugin import Plugin, SchemeResolver, SourceDeclaration
from zoo.specs import ModelSpec
from zoo.task_names import canonical_task

if TYPE_CHECKING:
    from zoo.backends import Backend
    from zoo.tasks.base import Task, TaskCapabilities

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Registry", "get_registry", "reset_registry"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zoo.plugins"
#: zoo's own distribution: its plugins load first and keep their schemes and names in a clash.
CORE_DISTRIBUTION = "zoo-sdk"
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
        name: entry-point name (also the plugin name of zoo's own plugins).
        status: "ok", "error" (failed to load) or "disabled" (not selected by `ZOO_PLUGINS`).
        source: the entry point's target, e.g. `zoo_torchvision:plugin`.
        version: the distribution's version, when known.
        models: number of models it declares.
        reason: why it failed or is disabled, and every clash it is part of, in one line.
        clashes: model names it shares with other plugins.
        distribution: the installed distribution that declares the entry point (`zoo-sdk`), when known.
        conflicts: entry-point names, schemes and commands it shares with another owner, each naming both.
    """

    name: str
    status: str
    source: str = ""
    version: str | None = None
    description: str = ""
    models: int = 0
    reason: str = ""
    clashes: tuple[str, ...] = ()
    distribution: str | None = None
    conflicts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "status": self.status,
            "source": self.source,
            "version": self.version,
            "description": self.description,
            "models": self.models,
            "reason": self.reason,
            "clashes": list(self.clashes),
            "conflicts": list(self.conflicts),
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
    #: (plugin, task) -> the class a plugin implements the task with for its own models
    _plugin_tasks: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)
    _commands: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _sources: dict[str, list[SourceDeclaration]] = field(default_factory=dict, init=False, repr=False)
    #: `scheme` / `command` -> info keys of every plugin claiming it, the one that resolves it first.
    _owners: dict[tuple[str, str], list[str]] = field(default_factory=dict, init=False, repr=False)
    _base_reasons: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _ep_conflicts: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False)
    _plugin_names: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def discover(cls, entry_points: Iterable[metadata.EntryPoint] | None = None) -> Registry:
        """Load the plugins of the `zoo.plugins` entry-point group that `ZOO_PLUGINS` selects (all when unset).

        zoo's own distribution loads first, so its plugins keep their schemes and names when another
        distribution declares the same ones; every such clash is shown by `zoo plugins` on both owners.
        """
        registry = cls()
        eps = list(entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP))
        eps.sort(key=lambda e: (_dist_name(e) != CORE_DISTRIBUTION, _dist_name(e) or "", e.name))
        selection = Selection.parse(settings.plugin_allowlist(), eps)
        seen: dict[str, list[str]] = {}
        for ep in eps:
            seen.setdefault(ep.name, []).append(_dist_name(ep) or "?")
        for ep in eps:
            dist = _dist_name(ep)
            key = ep.name if ep.name not in registry.infos else f"{dist or '?'}:{ep.name}"
            dist_info = getattr(ep, "dist", None)
            version = dist_info.version if dist_info is not None else None
            others = [d for d in seen[ep.name] if d != (dist or "?")]
            dup = (f"entry point {ep.name!r} is also declared by {', '.join(others)}",) if others else ()
            refused = selection.refusal(ep)
            if refused:
                registry._set_info(
                    key, PluginInfo(ep.name, "disabled", ep.value, version, distribution=dist), refused, dup
                )
                continue
            try:
                plugin = _as_plugin(ep.load(), ep.value)
            except Exception as exc:  # a broken plugin must never break the others
                log.info("zoo plugin %r failed to load: %s", ep.name, exc)  # `zoo plugins` shows it
                info = PluginInfo(ep.name, "error", ep.value, version, distribution=dist)
                registry._set_info(key, info, f"{type(exc).__name__}: {exc}", dup)
                continue
            registry.add_plugin(
                plugin, source=ep.value, version=plugin.version or version, key=key, distribution=dist, conflicts=dup
            )
        return registry

    def _set_info(self, key: str, info: PluginInfo, reason: str, conflicts: tuple[str, ...] = ()) -> None:
        self._base_reasons[key] = " ".join(reason.split())
        self._ep_conflicts[key] = conflicts
        self.infos[key] = replace(info, conflicts=conflicts, reason=_join(self._base_reasons[key], *conflicts))

    def add_plugin(
        self,
        plugin: Plugin,
        *,
        source: str = "",
        version: str | None = None,
        key: str | None = None,
        distribution: str | None = None,
        conflicts: tuple[str, ...] = (),
    ) -> None:
        """Add a loaded plugin; clashing names, schemes and commands are recorded on every owner, never raised."""
        key = key or plugin.name
        if plugin.name in self.plugins:
            info = PluginInfo(key.rpartition(":")[2], "error", source, version, distribution=distribution)
            self._set_info(key, info, f"plugin name {plugin.name!r} is taken", conflicts)
            return
        self.plugins[plugin.name] = plugin
        self._plugin_names[key] = plugin.name
        for spec in plugin.specs.values():
            self._by_name.setdefault(spec.name, []).append(spec)
        for prefix, resolver in plugin.schemes.items():
            if prefix in self._schemes:  # never silently: `zoo plugins` shows it on both owners too
                first = self._owner_label(self._owners[("scheme", prefix)][0])
                log.warning("plugin %r (%s) also claims '%s:'; %s keeps it", key, distribution, prefix, first)
            self._schemes.setdefault(prefix, resolver)
            self._owners.setdefault(("scheme", prefix), []).append(key)
        for task, target in plugin.tasks.items():
            self._tasks.setdefault(task, target)
            self._plugin_tasks[(plugin.name, task)] = target
        for name, target in plugin.commands.items():
            self._commands.setdefault(name, target)
            self._owners.setdefault(("command", name), []).append(key)
        for scheme, declaration in plugin.sources.items():  # a clash is raised when the scheme is used
            self._sources.setdefault(scheme, []).append(declaration)
            self._owners.setdefault(("source", scheme), []).append(key)
        info = PluginInfo(
            key.rpartition(":")[2] if distribution else key, "ok", source, version,
            description=plugin.description, models=len(plugin.specs), distribution=distribution,
        )  # fmt: skip
        self._set_info(key, info, "", conflicts)
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
        info = PluginInfo(spec.plugin, "ok", "in-script", description=plugin.description, models=len(plugin.specs))
        self._set_info(spec.plugin, info, "")
        self._refresh_clashes()

    def _refresh_clashes(self) -> None:
        clashes: dict[str, list[str]] = {}
        for name, specs in self._by_name.items():
            if len(specs) > 1:
                for spec in specs:
                    clashes.setdefault(spec.plugin, []).append(name)
        claims: dict[str, list[str]] = {}
        for (kind, what), keys in self._owners.items():
            for key in keys if len(keys) > 1 else ():
                others = ", ".join(self._owner_label(k) for k in keys if k != key)
                winner = "it resolves it" if key == keys[0] else f"{self._owner_label(keys[0])} resolves it"
                label = f"zoo {what}" if kind == "command" else f"{what}:"
                claims.setdefault(key, []).append(f"{kind} {label!r} is also claimed by {others} ({winner})")
        for key, info in list(self.infos.items()):
            if info.status != "ok":
                continue
            plugin_name = self._plugin_names.get(key, info.name)
            names = tuple(sorted(clashes.get(plugin_name, ())))
            reason = ""
            if names:
                owners = {p for n in names for p in (s.plugin for s in self._by_name[n])} - {plugin_name}
                reason = f"names also declared by {', '.join(sorted(owners))}: {', '.join(names)}"
            conflicts = self._ep_conflicts.get(key, ()) + tuple(claims.get(key, ()))
            self.infos[key] = replace(
                info,
                clashes=names,
                conflicts=conflicts,
                reason=_join(self._base_reasons.get(key, ""), reason, *conflicts),
            )

    def _owner_label(self, key: str) -> str:
        info = self.infos.get(key)
        dist = info.distribution if info else None
        name = info.name if info else key
        return f"{name} (distribution {dist})" if dist else name

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
                if task and canonical_task(spec.task) != canonical_task(task):
                    continue
                if plugin and spec.plugin != plugin:
                    continue
                out.append(spec)
        return out

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.specs())

    def source(self, scheme: str) -> SourceDeclaration | None:
        """The download source a plugin declares for `scheme` (`Plugin.source`), or None when none does.

        Raises:
            PluginError: more than one plugin declares `scheme`; the message names them all.
        """
        declared = self._sources.get(scheme.lower(), [])
        if len(declared) > 1:
            owners = [self._owner_label(k) for k in self._owners[("source", scheme.lower())]]
            raise PluginError(
                f"The plugins {' and '.join(owners)} both declare the download scheme '{scheme}:': disable one "
                f"with ZOO_PLUGINS (see `zoo plugins`).",
                plugin=declared[1].plugin,
            )
        return declared[0] if declared else None

    def source_schemes(self) -> list[str]:
        """Download schemes plugins declare, sorted."""
        return sorted(self._sources)

    def task_target(self, task: str, plugin: str | None = None) -> str:
        """The `module:Class` that implements `task` (an old name is read as its vocabulary name).

        Several plugins implement one task for their own models (`object-detection`: YOLOv5 in the core,
        ultralytics, torchvision's detectors): `plugin`'s own implementation wins, then the first one loaded.
        """
        task = canonical_task(task)
        own = self._plugin_tasks.get((plugin, task)) if plugin is not None else None
        if own is not None:
            return own
        try:
            return self._tasks[task]
        except KeyError:
            known = ", ".join(sorted(self._tasks))
            raise PluginError(f"No plugin implements task {task!r}. Known tasks: {known}.") from None

    def backends(self) -> list[Backend]:
        """The backend libraries the loaded plugins declare (`Plugin.backend`), in load order."""
        return [backend for plugin in self.plugins.values() for backend in plugin.backends.values()]

    def scheme_names(self) -> list[str]:
        """The name schemes (`hf`, `hub`, ...) loaded plugins resolve."""
        return sorted(self._schemes)

    def task_class(self, task: str, plugin: str | None = None) -> type[Task]:
        """The `Task` subclass that implements `task` (for `plugin`'s models), imported now (no model is built).

        Raises:
            PluginError: no plugin implements `task`, or its target is not a `Task` subclass.
        """
        from zoo.tasks.base import Task

        target = self.task_target(task, plugin)
        module_name, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"Task {task!r} cannot be imported from {target!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise PluginError(f"Task {task!r} at {target!r} is not a zoo Task subclass.")
        return cls

    def task_capabilities(self, task: str, plugin: str | None = None) -> TaskCapabilities:
        """What the task named `task` (for `plugin`'s models) declares it can do, without building a model."""
        return self.task_class(task, plugin).capabilities(canonical_task(task))

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


class Selection:
    """Which entry points `ZOO_PLUGINS` selects.

    Each entry names a distribution (`zoo-sdk`: all its entry points; compared after PEP 503 normalisation)
    or one entry point of one distribution (`zoo-sdk:torchvision`). A bare entry-point name (`torchvision`,
    the form of zoo before 0.2) still selects that entry point when a single distribution declares it and no
    other distribution is named so; otherwise it selects nothing and the entry points it could mean say why.
    """

    def __init__(self, entries: list[str] | None, eps: list[metadata.EntryPoint]) -> None:
        self.entries = entries
        self.chosen: set[tuple[str, str]] = set()
        self.ambiguous: dict[tuple[str, str], str] = {}
        for entry in entries or ():
            dist, sep, name = entry.strip().partition(":")
            if not dist.strip():
                continue
            if sep:
                self.chosen.add((_normalise(dist), name.strip()))
                continue
            by_dist = [e for e in eps if _normalise(_dist_name(e) or "") == _normalise(dist)]
            by_name = [e for e in eps if e.name == dist]
            owners = {_dist_name(e) or "?" for e in by_dist + by_name}
            if len(owners) > 1 or len([e for e in by_name if e not in by_dist]) > 1:
                for e in by_dist + by_name:
                    self.ambiguous[_ep_key(e)] = (
                        f"ZOO_PLUGINS entry {dist!r} is ambiguous: it names entry points of "
                        f"{', '.join(sorted(owners))}; write DISTRIBUTION or DISTRIBUTION:ENTRY-POINT"
                    )
                continue
            self.chosen.update(_ep_key(e) for e in by_dist + by_name)

    @classmethod
    def parse(cls, entries: list[str] | None, eps: list[metadata.EntryPoint]) -> Selection:
        """The selection of `entries` (None: everything) among `eps`."""
        return cls(entries, eps)

    def refusal(self, ep: metadata.EntryPoint) -> str:
        """Why `ep` must not be imported, or "" when it is selected."""
        if self.entries is None or _ep_key(ep) in self.chosen:
            return ""
        return self.ambiguous.get(_ep_key(ep), "not in ZOO_PLUGINS")


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower().strip()


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    try:
        name = dist.metadata["Name"] if dist is not None else None
    except (KeyError, OSError, ValueError):  # a dist-info without METADATA
        name = None
    return _normalise(name) if isinstance(name, str) and name else None


def _ep_key(ep: metadata.EntryPoint) -> tuple[str, str]:
    return (_dist_name(ep) or "", ep.name)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


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
