"""`Plugin`: what a plugin package exposes to declare models, tasks and name schemes.

A plugin module must be cheap to import (no torch): builders import their heavy libraries inside.

Example:
    ```python
    import zoo
    plugin = zoo.Plugin("my-models")

    @plugin.model("tinynet", task="image-classification", labels=["cat", "dog"])
    def tinynet(num_classes: int = 2):
        import torch.nn as nn
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    ```
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from zoo.backends import Backend, Refresh
from zoo.errors import PluginError
from zoo.specs import ImagePreprocess, ModelSpec, Weights

__all__ = ["Plugin", "SchemeResolver", "SourceDeclaration"]

F = TypeVar("F", bound=Callable[..., Any])
_PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch only
#: A resolver for a name scheme such as `hub:` receives the text after the colon and returns a spec
#: plus the weights tag to load (or None for the spec's default).
SchemeResolver = Callable[[str], "tuple[ModelSpec, str | None]"]
#: Download schemes zoo handles itself; a plugin may not redeclare them.
CORE_SOURCE_SCHEMES = frozenset({"http", "https", "file", "pkg", "hf"})
_SOURCE_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")  # RFC 3986 scheme, lower case


@dataclass(frozen=True)
class SourceDeclaration:
    """A download scheme a plugin declares with `Plugin.source`.

    Attributes:
        scheme: the URL scheme, lower case, without the colon (`s3`).
        fetch: `fetch(url, ctx)` (see `Plugin.source`), or a `zoo.store.sources.Source` subclass.
        plugin: the name of the declaring plugin.
        network: False when the source reads local files only (it then works with `ZOO_OFFLINE=1`).
    """

    scheme: str
    fetch: Callable[..., Any]
    plugin: str
    network: bool = True


class Plugin:
    """A named collection of model specs, tasks and name schemes.

    Args:
        name: the plugin's name, used in qualified model names (`name/model`).
        description: one line for `zoo plugins`.
        version: shown by `zoo plugins`; defaults to the distribution's version.
    """

    def __init__(self, name: str, *, description: str = "", version: str | None = None) -> None:
        if not isinstance(name, str) or not _PLUGIN_NAME.fullmatch(name):
            raise PluginError(f"Plugin name {name!r} is invalid: use letters, digits, '.', '_' and '-'.", plugin=name)
        self.name = name
        self.description = description
        self.version = version
        self._specs: dict[str, ModelSpec] = {}
        self._schemes: dict[str, SchemeResolver] = {}
        self._tasks: dict[str, str] = {}
        self._commands: dict[str, str] = {}
        self._backends: dict[str, Backend] = {}
        self._sources: dict[str, SourceDeclaration] = {}

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, models={len(self._specs)})"

    @property
    def specs(self) -> Mapping[str, ModelSpec]:
        """The declared model specs by name."""
        return dict(self._specs)

    @property
    def schemes(self) -> Mapping[str, SchemeResolver]:
        """Name schemes (such as `hub`) this plugin resolves."""
        return dict(self._schemes)

    @property
    def tasks(self) -> Mapping[str, str]:
        """Tasks this plugin adds, as `module:Class` import paths."""
        return dict(self._tasks)

    def add(self, spec: ModelSpec) -> ModelSpec:
        """Declare a model from a ready `ModelSpec`; its `plugin` field is set to this plugin's name."""
        if spec.name in self._specs:
            raise PluginError(f"Plugin {self.name!r} declares {spec.name!r} twice.", plugin=self.name)
        if spec.plugin != self.name:
            from dataclasses import replace

            spec = replace(spec, plugin=self.name)
        self._specs[spec.name] = spec
        return spec

    def model(
        self,
        name: str,
        *,
        task: str,
        labels: Sequence[str] | None = None,
        weights: Mapping[str, Weights] | None = None,
        default_weights: str | None = None,
        preprocess: ImagePreprocess | None = None,
        description: str | None = None,
        state_dict_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        caller_only: Sequence[str] = (),
        head: str | Sequence[str] | None = None,
        **meta: Any,
    ) -> Callable[[F], F]:
        """Decorator that declares the decorated builder as model `name`.

        The first weights tag is the default unless `default_weights` names another. The builder's
        keyword defaults are recorded (shown by `zoo info`); its docstring's first line is the
        description unless one is given. `caller_only` names the builder parameters that choose code,
        trust or a source: zoo never takes them from a file (see `ModelSpec.caller_only`). `head` says
        where a classifier keeps its head (see `ModelSpec.head`; default: its last Linear layer).
        """

        def decorate(builder: F) -> F:
            tags = dict(weights or {})
            self.add(
                ModelSpec(
                    name=name,
                    task=task,
                    builder=builder,
                    plugin=self.name,
                    labels=tuple(labels) if labels is not None else None,
                    preprocess=preprocess,
                    weights=tags,
                    default_weights=default_weights or next(iter(tags), None),
                    description=description if description is not None else _first_line(builder.__doc__),
                    defaults=_defaults(builder),
                    meta=meta,
                    state_dict_hook=state_dict_hook,
                    caller_only=frozenset(caller_only),
                    head=head if head is None or isinstance(head, str) else tuple(head),
                )
            )
            return builder

        return decorate

    def scheme(self, prefix: str) -> Callable[[SchemeResolver], SchemeResolver]:
        """Decorator that makes this plugin resolve names that start with `prefix:` (e.g. `hub:`)."""
        if not prefix.isidentifier():
            raise PluginError(f"Scheme {prefix!r} must be a plain word such as 'hub'.", plugin=self.name)

        def decorate(resolver: SchemeResolver) -> SchemeResolver:
            self._schemes[prefix.lower()] = resolver
            return resolver

        return decorate

    @property
    def sources(self) -> Mapping[str, SourceDeclaration]:
        """Download schemes (such as `s3`) this plugin declares, by scheme."""
        return dict(self._sources)

    def source(self, scheme: str, *, network: bool = True) -> Callable[[F], F]:
        """Decorator that makes the store fetch URLs of scheme `scheme:` (e.g. `s3://bucket/key`) with the
        decorated function.

        The function is called as `fetch(url, ctx)` with the URL and a `zoo.store.sources.FetchContext`, and
        returns one of: a URL of another scheme (`https://...`: the store fetches it there, with mirrors,
        resume and retries), a `pathlib.Path` of a local file (copied into the cache and verified), or a
        `zoo.store.sources.Fetched` it wrote beside `ctx.target` itself. A `zoo.store.sources.Source`
        subclass may be decorated instead. Either way the store still checks the bytes against the
        artifact's sha256 and size before anything enters the cache.

        Example:
            ```python
            @plugin.source("s3")
            def s3(url: str, ctx: object) -> str:
                bucket, _, key = url.removeprefix("s3://").partition("/")
                return f"https://{bucket}.s3.amazonaws.com/{key}"
            ```

        Args:
            scheme: the URL scheme, without the colon; zoo's own (`http`, `https`, `file`, `pkg`, `hf`) are refused.
            network: False for a source that reads local files only (it then works with `ZOO_OFFLINE=1`).

        Raises:
            PluginError: a malformed scheme, one of zoo's own, or one this plugin already declares. Two plugins
                that declare the same scheme are reported by `zoo plugins`, and a fetch of that scheme raises
                a `PluginError` naming both.
        """
        key = scheme.lower() if isinstance(scheme, str) else scheme
        if not isinstance(key, str) or not _SOURCE_SCHEME.fullmatch(key):
            raise PluginError(f"Source scheme {scheme!r} must be a URL scheme such as 's3'.", plugin=self.name)
        if key in CORE_SOURCE_SCHEMES:
            raise PluginError(
                f"Plugin {self.name!r} declares the source scheme '{key}:', which zoo handles itself: pick another.",
                plugin=self.name,
            )
        if key in self._sources:
            raise PluginError(f"Plugin {self.name!r} declares the source scheme '{key}:' twice.", plugin=self.name)

        def decorate(fetch: F) -> F:
            if not callable(fetch):
                raise PluginError(
                    f"Source '{key}:' of {self.name!r} must be a function or a Source class.", plugin=self.name
                )
            self._sources[key] = SourceDeclaration(key, fetch, self.name, network)
            return fetch

        return decorate

    @property
    def commands(self) -> Mapping[str, str]:
        """CLI commands this plugin adds, as `module:attribute` import paths of click commands."""
        return dict(self._commands)

    def command(self, name: str, target: str) -> None:
        """Add `zoo NAME` to the command line: the click command at `target` (`"package.cli:group"`).

        The module is imported only when the command runs or `zoo --help` lists commands; zoo's own
        commands win over a plugin's of the same name.
        """
        if ":" not in target or not _PLUGIN_NAME.fullmatch(name):
            raise PluginError(
                f"Command {name!r} -> {target!r} must look like 'name', 'package.module:command'.", plugin=self.name
            )
        self._commands[name] = target

    @property
    def backends(self) -> Mapping[str, Backend]:
        """Libraries this plugin drives, whose cache folder and offline switch zoo sets (see `backend`)."""
        return dict(self._backends)

    def backend(
        self,
        name: str,
        *,
        home_env: str | None = None,
        offline_env: Sequence[str] = (),
        refresh: Refresh | None = None,
    ) -> Backend:
        """Declare a library this plugin drives, so zoo keeps its files and its offline switch with zoo's.

        zoo points `home_env` at ``<zoo root>/<name>`` (unless the user set it) and, with ``ZOO_OFFLINE=1``,
        sets each of `offline_env` to ``1`` before any load (`zoo.offline.configure_backends`).

        Example:
            `plugin.backend("hf", home_env="HF_HOME", offline_env=["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])`

        Args:
            name: the folder under the zoo root, a plain lower-case name.
            home_env: the variable that points the library's folder, or None.
            offline_env: the library's offline switches.
            refresh: called with `(offline, variables set)` to update the library when it is already imported.
        """
        if name in self._backends:
            raise PluginError(f"Plugin {self.name!r} declares backend {name!r} twice.")
        declared = Backend(name, home_env, tuple(offline_env), refresh, plugin=self.name)
        self._backends[name] = declared
        return declared

    def task(self, name: str, target: str) -> None:
        """Add a task implemented by the class at `target` (`"package.module:Class"`), imported when used."""
        if ":" not in target:
            raise PluginError(f"Task target {target!r} must look like 'package.module:Class'.", plugin=self.name)
        self._tasks[name] = target


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).splitlines()[0] if doc and doc.strip() else ""


def _defaults(builder: Callable[..., Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default
        for p in params
        if p.default is not inspect.Parameter.empty and isinstance(p.default, (int, float, str, bool, type(None)))
    }
