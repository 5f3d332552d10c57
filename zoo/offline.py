"""One cache and one offline switch for every backend library a plugin drives, as the plugin declares them.

A plugin declares each library it drives with `Plugin.backend(name, home_env=..., offline_env=...)`: the
environment variable that points the library's folder (set to ``<zoo root>/<name>``) and the library's own
offline switches. `configure_backends()` applies every declaration of the loaded plugins: it points each
folder under the zoo cache root and, with ``ZOO_OFFLINE=1``, sets each offline switch, so code that calls
the library directly (a plugin's own calls into a hub or model library) makes no network call
either. zoo calls it from the store and the loaders, never at `import zoo`; plugins call it before using
such a library. The core names no library.

A folder variable the user already set is left alone (their cache is reused); the offline switches are
always set when zoo is offline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from zoo import settings
from zoo.backends import Backend

__all__ = ["Backend", "backend_dirs", "configure_backends", "declared_backends"]

log = logging.getLogger(__name__)


def declared_backends() -> list[Backend]:
    """The backends the loaded plugins declare, in plugin load order."""
    from zoo.registry import get_registry

    return get_registry().backends()


def backend_dirs(root: Path | None = None, backends: Iterable[Backend] | None = None) -> dict[str, Path]:
    """Where each declared backend keeps its files under the zoo root: ``{"hf": <root>/hf, ...}``."""
    root = root or settings.cache_root()
    return {b.name: root / b.name for b in (declared_backends() if backends is None else backends)}


def configure_backends(*, offline: bool | None = None, backends: Iterable[Backend] | None = None) -> dict[str, str]:
    """Point the backends' folders under the zoo root and set their offline switches when zoo is offline.

    Idempotent and cheap; safe to call before every load. Libraries already imported are updated too,
    through their backend's `refresh`.

    Args:
        offline: whether to set the offline switches; default: `settings.offline()`. False leaves them
            as they are (a switch the user set stays set).
        backends: the backends to configure; default: every one the loaded plugins declare.

    Returns:
        The environment variables this call set, with their values.
    """
    offline = settings.offline() if offline is None else offline
    chosen = declared_backends() if backends is None else list(backends)
    root = settings.cache_root()
    changed: dict[str, str] = {}
    for backend in chosen:
        mine: dict[str, str] = {}
        if backend.home_env and not os.environ.get(backend.home_env):
            os.environ[backend.home_env] = mine[backend.home_env] = str(root / backend.name)
        for var in backend.offline_env if offline else ():
            if os.environ.get(var) != "1":
                os.environ[var] = mine[var] = "1"
        if backend.refresh is not None:
            backend.refresh(offline, mine)
        changed.update(mine)
    if changed:
        log.debug("configured backends: %s", changed)
    return changed
