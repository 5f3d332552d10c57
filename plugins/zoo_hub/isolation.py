"""Running hub code in isolation: its top-level modules in their own `sys.modules` scope, under the sandbox
(`zoo_hub.sandbox`: no package installers, no network when offline).

A repo's `models`, `utils` or `model` packages must not collide with the user's or another repo's. Each
repo gets a `RepoScope`: while it is active, `sys.modules` holds the repo's own modules under their plain
names (so its absolute imports and pickles resolve) and its folder leads `sys.path`; on exit they are
put aside and whatever was there before is put back. Scopes are entered under one process-wide lock.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from zoo_hub.sandbox import guarded

__all__ = ["RepoScope", "guarded", "scoped"]

_LOCK = threading.RLock()


class RepoScope:
    """The module namespace of one repo folder.

    Args:
        root: the repo folder (holds hubconf.py).
        token: a short unique id (the commit, or a digest of the path), used in the hubconf's module name.
    """

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.hubconf_name = f"_zoo_hub_{''.join(c if c.isalnum() else '_' for c in token)}_hubconf"
        self.names = _top_level_names(root)
        self._modules: dict[str, ModuleType] = {}
        self._depth = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make the repo's modules the importable ones for the duration of the block."""
        with _LOCK:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            saved = {name: mod for name, mod in sys.modules.items() if _top(name) in self.names}
            for name in saved:
                del sys.modules[name]
            sys.modules.update(self._modules)
            root = str(self.root)
            sys.path.insert(0, root)
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                self._modules = {name: mod for name, mod in sys.modules.items() if _top(name) in self.names}
                for name in self._modules:
                    del sys.modules[name]
                sys.modules.update(saved)
                sys.path[:] = [p for p in sys.path if not (p == root or p.startswith(root + "/"))]

    def hubconf(self) -> ModuleType:
        """The repo's hubconf module, imported once (call inside `active()`)."""
        module = sys.modules.get(self.hubconf_name)
        if module is not None:
            return module
        spec = importlib.util.spec_from_file_location(self.hubconf_name, self.root / "hubconf.py")
        if spec is None or spec.loader is None:  # pragma: no cover - the file exists, checked before
            raise ImportError(f"cannot import {self.root / 'hubconf.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.hubconf_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[self.hubconf_name]
            raise
        return module

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` run inside this scope and the guard (for a hub module's forward, which may import lazily)."""

        @functools.wraps(fn)
        def scoped_call(*args: Any, **kwargs: Any) -> Any:
            with self.active(), guarded():
                return fn(*args, **kwargs)

        scoped_call.__zoo_scope__ = self  # type: ignore[attr-defined]
        return scoped_call


def scoped(module: Any, scope: RepoScope) -> Any:
    """Make `module.forward` (for an nn.Module) run inside `scope`; returns the module."""
    forward = getattr(module, "forward", None)
    if forward is not None and not hasattr(forward, "__zoo_scope__"):
        module.forward = scope.wrap(forward)
    return module


def _top(name: str) -> str:
    return name.partition(".")[0]


#: Top-level names so generic that a repo's own module must win even over an installed package of that name.
GENERIC = frozenset(
    {
        "models",
        "model",
        "utils",
        "util",
        "common",
        "data",
        "datasets",
        "config",
        "configs",
        "lib",
        "src",
        "tools",
        "scripts",
        "nets",
        "network",
        "networks",
        "modules",
        "layers",
        "helpers",
    }
)


@functools.cache
def _installed() -> frozenset[str]:
    """Top-level names that installed distributions provide (torchvision, numpy, ...)."""
    from importlib.metadata import packages_distributions

    return frozenset(packages_distributions())


def _top_level_names(root: Path) -> frozenset[str]:
    """The repo's own top-level modules, less installed libraries it vendors (pytorch/vision's `torchvision`):
    those stay the installed ones, as compiled extensions and registered ops cannot be imported twice."""
    names = set()
    for child in root.iterdir():
        if child.name.startswith((".", "__")):
            continue
        if child.is_dir() and child.name.isidentifier():
            names.add(child.name)
        elif child.suffix in {".py", ".so", ".pyd"} and child.stem.split(".")[0].isidentifier():
            names.add(child.stem.split(".")[0])
    return frozenset(n for n in names if n in GENERIC or n not in _installed())
