"""`Backend`: a library a plugin drives, declared with where its files go and how it is switched offline."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zoo.errors import PluginError

__all__ = ["Backend", "Refresh"]

_ENV = re.compile(r"[A-Z][A-Z0-9_]*")  # fullmatch only
_DIR = re.compile(r"[a-z0-9][a-z0-9._-]*")  # fullmatch only: a plain folder name under the zoo root

#: Called after the variables are set, with `(offline, variables set)`, to update a library that is already
#: imported and read its environment at import (huggingface_hub).
Refresh = Callable[[bool, Mapping[str, str]], None]


@dataclass(frozen=True)
class Backend:
    """A library a plugin drives, with where zoo keeps its files and how zoo switches it offline.

    Attributes:
        name: the folder under the zoo root (`hf`, `ultralytics`) and the key of `backend_dirs()`.
        home_env: the variable that points the library's folder (`HF_HOME`), set to ``<root>/<name>`` unless
            the user set it; None when the library has none.
        offline_env: variables set to ``1`` when zoo is offline (`HF_HUB_OFFLINE`).
        refresh: updates the library when it was imported before these were set (see `Refresh`); None for none.
        plugin: the plugin that declared it.
    """

    name: str
    home_env: str | None = None
    offline_env: tuple[str, ...] = ()
    refresh: Refresh | None = None
    plugin: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "offline_env", tuple(self.offline_env))
        if not _DIR.fullmatch(self.name or ""):
            raise PluginError(f"Backend name {self.name!r} must be a plain lower-case folder name such as 'hf'.")
        for var in (self.home_env, *self.offline_env):
            if var is not None and not _ENV.fullmatch(var):
                raise PluginError(f"Backend {self.name!r}: {var!r} is not an environment variable name.")
