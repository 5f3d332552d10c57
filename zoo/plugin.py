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
from typing import Any, TypeVar

from zoo.backends import Backend, Refresh
from zoo.errors import PluginError
from zoo.specs import ImagePreprocess, ModelSpec, Weights

__all__ = ["Plugin", "SchemeResolver"]

F = TypeVar("F", bound=Callable[..., Any])
_PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch only
#: A resolver for a name scheme such as `hub:` receives the text after the colon and returns a spec
#: plus the weights tag to load (or None for the spec's default).
SchemeResolver = Callable[[str], "tuple[ModelSpec, str | None]"]


class Plugin:
    """A named collection of model specs, tasks and name schemes.

    Args:
        name: the plugin's name, used in qualified model names (`name/model`).
        description: one line for `zoo plugins`.
        version: shown by `zoo plugins`; defaults to the distribution's version.
    """

    def __init__(self, name: str, *, description: str = "", version: str | None = None) -> None:
        if not _PLUGIN_NAME.fullmatch(name or ""):
            raise PluginError(f"Plugin name {name!r} is invalid: use letters, digits, '.', '_' and '-'.")
        self.name = name
        self.description = description
        self.version = version
        self._specs: dict[str, ModelSpec] = {}
        self._schemes: dict[str, SchemeResolver] = {}
        self._tasks: dict[str, str] = {}
        self._commands: dict[str, str] = {}
        self._backends: dict[str, Backend] = {}

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
            raise PluginError(f"Plugin {self.name!r} declares {spec.name!r} twice.")
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
            raise PluginError(f"Scheme {prefix!r} must be a plain word such as 'hub'.")

        def decorate(resolver: SchemeResolver) -> SchemeResolver:
            self._schemes[prefix.lower()] = resolver
            return resolver

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
            raise PluginError(f"Command {name!r} -> {target!r} must look like 'name', 'package.module:command'.")
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
            raise PluginError(f"Task target {target!r} must look like 'package.module:Class'.")
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
