"""One cache and one offline switch for every backend: Hugging Face, torch.hub and ultralytics.

`configure_backends()` points each library's folders under the zoo cache root and, with
``ZOO_OFFLINE=1``, sets the library's own offline switch, so code that calls the library directly (a
plugin calling `transformers`, `torch.hub` or `ultralytics`) makes no network call either. zoo calls it
from the store and the loaders, never at `import zoo`; plugins call it before using such a library.

| library | folder (under the zoo root) | offline switch |
|---|---|---|
| huggingface_hub, transformers | ``HF_HOME=<root>/hf`` | ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` |
| torch.hub | ``TORCH_HOME=<root>/torch`` | none: zoo fetches hub repos itself (`zoo.store.repo_snapshot`) |
| ultralytics | ``YOLO_CONFIG_DIR=<root>/ultralytics`` | ``YOLO_OFFLINE=1`` |

A folder variable the user already set is left alone (their cache is reused); the offline switches are
always set when zoo is offline.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from zoo import settings

__all__ = ["backend_dirs", "configure_backends"]

log = logging.getLogger(__name__)

_OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE")


def backend_dirs(root: Path | None = None) -> dict[str, Path]:
    """Where each backend keeps its files under the zoo root: ``{"hf": ..., "torch": ..., "ultralytics": ...}``."""
    root = root or settings.cache_root()
    return {"hf": root / "hf", "torch": root / "torch", "ultralytics": root / "ultralytics"}


def configure_backends(*, offline: bool | None = None) -> dict[str, str]:
    """Point the backends' folders under the zoo root and set their offline switches when zoo is offline.

    Idempotent and cheap; safe to call before every load. Libraries already imported are updated too
    (huggingface_hub reads its environment at import).

    Args:
        offline: whether to set the offline switches; default: `settings.offline()`. False leaves them
            as they are (a user's own `HF_HUB_OFFLINE=1` stays).

    Returns:
        The environment variables this call set, with their values.
    """
    offline = settings.offline() if offline is None else offline
    dirs = backend_dirs()
    changed: dict[str, str] = {}
    for var, path in (("HF_HOME", dirs["hf"]), ("TORCH_HOME", dirs["torch"]), ("YOLO_CONFIG_DIR", dirs["ultralytics"])):
        if not os.environ.get(var):
            os.environ[var] = changed[var] = str(path)
    if offline:
        for var in _OFFLINE_SWITCHES:
            if os.environ.get(var) != "1":
                os.environ[var] = changed[var] = "1"
    _update_imported(offline, changed)
    if changed:
        log.debug("configured backends: %s", changed)
    return changed


def _update_imported(offline: bool, changed: dict[str, str]) -> None:
    constants: Any = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return
    if offline:
        constants.HF_HUB_OFFLINE = True
    if "HF_HOME" in changed:
        constants.HF_HOME = changed["HF_HOME"]
        constants.HF_HUB_CACHE = os.path.join(changed["HF_HOME"], "hub")
