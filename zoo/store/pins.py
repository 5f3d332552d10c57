"""Full sha256 digests learned at first download, enforced afterwards.

Upstreams often publish only a hash prefix (torchvision's file names carry 8 hex digits) or nothing at
all. The first verified download records the file's full sha256 in ``<root>/pins.json``; every later
download, import or resume of that file must match it. `zoo cache rm NAME` forgets the pin with the file.
Quarantining a corrupt file keeps its pin, so the refetch is held to the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from zoo.specs import Artifact
from zoo.store.cache import now, write_json

__all__ = ["enforce", "forget", "is_first_use", "pin", "read_pins"]


def _path(root: Path) -> Path:
    return root / "pins.json"


def read_pins(root: Path) -> dict[str, dict[str, Any]]:
    """Every pin, by cache file name."""
    try:
        data = json.loads(_path(root).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def enforce(root: Path, artifact: Artifact) -> tuple[Artifact, bool]:
    """The artifact with its pinned full sha256 filled in, and whether a pin was applied.

    A pin that contradicts the artifact's own hash prefix is ignored (the plugin now declares another file).
    """
    if artifact.sha256 is not None or artifact.format == "repo":
        return artifact, False
    pinned = read_pins(root).get(artifact.name)
    if pinned is None:
        return artifact, False
    if artifact.hash_prefix and not pinned["sha256"].startswith(artifact.hash_prefix):
        return artifact, False
    return dataclasses.replace(artifact, sha256=pinned["sha256"], size=artifact.size or pinned.get("size")), True


def _update(root: Path, change: Any) -> None:
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".pins.lock")):
        pins = read_pins(root)
        change(pins)
        write_json(_path(root), pins)


def pin(root: Path, name: str, sha256: str, size: int, source: str, *, published: bool = True) -> None:
    """Record the full sha256 of `name` if none is recorded yet.

    `published` says whether upstream published part of the hash (a prefix the bytes matched); a pin
    without one is trust on first use, which `is_first_use` tells, so a pinned file that then fails to
    load may be forgotten and fetched again.
    """
    if name in read_pins(root):
        return
    entry = {"sha256": sha256, "size": size, "source": source, "time": now(), "first_use": not published}
    _update(root, lambda pins: pins.setdefault(name, entry))


def is_first_use(root: Path, name: str) -> bool:
    """True when the pin of `name` is all that vouches for it: upstream published no hash for it."""
    return bool(read_pins(root).get(name, {}).get("first_use"))


def forget(root: Path, names: list[str] | None = None) -> None:
    """Drop the pins of `names` (all of them when None)."""
    if not _path(root).exists():
        return
    _update(root, lambda pins: pins.clear() if names is None else [pins.pop(n, None) for n in names])
