"""Conversions in the cache held to their origin: made again at import, re-checked by verify and `--locked`.

A conversion's record names the sha256 of the pickle it was made from, but a record never vouches for
itself: conversions are byte-stable, so the check is to convert the verified origin again and compare.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.checkpoint.weights import PICKLES, StateDictHook, convert_into_cache, convert_pickle, safetensors_name
from zoo.errors import ZooError
from zoo.specs import Artifact
from zoo.store import CacheEntry, Store
from zoo.store.cache import CacheRecord, hash_file

__all__ = ["Catalog", "Check", "known_conversions", "rebuild", "recheck", "recheck_locked"]

Check = tuple[str, str]
#: The weights the installed plugins declare, as (artifact, state_dict hook) pairs: the caller reads them
#: from the registry (this layer never does).
Catalog = Iterable[tuple[Artifact, "StateDictHook | None"]]


def known_conversions(name: str, catalog: Catalog) -> list[tuple[Artifact, StateDictHook | None]]:
    """The pickle artifacts of `catalog` whose conversion is cache file `name`, with their hooks."""
    return [
        (artifact, hook)
        for artifact, hook in catalog
        if artifact.format in PICKLES and safetensors_name(artifact) == name
    ]


def _origin(
    store: Store, name: str, origin_sha256: str | None, catalog: Catalog
) -> tuple[CacheEntry, StateDictHook | None] | None:
    """A verified local origin of conversion `name` (the cache or ZOO_WEIGHTS_PATH, no network), with its hook."""
    for artifact, hook in known_conversions(name, catalog):
        entry = store.local_entry(artifact)
        if entry is not None and (origin_sha256 is None or entry.sha256 == origin_sha256):
            return entry, hook
    return None


def rebuild(store: Store, name: str, catalog: Catalog) -> CacheEntry | None:
    """Make conversion `name` again from its verified origin, replacing a cached copy that differs.

    For `zoo cache import`: returns the cached conversion as zoo made it, or None when `name` is no
    conversion of a `catalog` artifact or its origin is not local.
    """
    found = _origin(store, name, None, list(catalog))
    if found is None:
        return None
    origin, hook = found
    entry, _ = store.remake(name, "safetensors", origin, lambda tmp: convert_pickle(origin.path, tmp, hook=hook))
    return entry


def recheck(store: Store, record: CacheRecord, catalog: Catalog) -> Check | None:
    """Convert the origin of cached conversion `record` again and compare (for `zoo cache verify`).

    Returns:
        None when `record` is no conversion of a `catalog` artifact (nothing more to check than its hash);
        ("ok", "") when the conversion is byte for byte what its origin gives; ("corrupt", why) when not;
        ("unverifiable", why) when its origin is not local.
    """
    catalog = list(catalog)
    if record.origin_sha256 is None or not known_conversions(record.name, catalog):
        return None
    found = _origin(store, record.name, record.origin_sha256, catalog)
    if found is None:
        return (
            "unverifiable",
            f"its origin (sha256 {record.origin_sha256[:16]}…) is not in the cache, so this conversion cannot be "
            f"checked: `zoo cache rm {record.name}` and fetch the model again (or `zoo cache import` its origin)",
        )
    origin, hook = found
    sha, size = _convert_aside(store, origin, hook)
    if (sha, size) == (record.sha256, record.size):
        return "ok", ""
    return (
        "corrupt",
        f"not what converting its origin {origin.path.name} gives (sha256 {sha[:16]}…, recorded {record.sha256[:16]}…)",
    )


def _convert_aside(store: Store, origin: CacheEntry, hook: StateDictHook | None) -> tuple[str, int]:
    """sha256 and size of a fresh conversion of `origin`, written to a temporary folder and removed."""
    folder = Path(tempfile.mkdtemp(prefix="zoo-verify-"))
    tmp = folder / "conversion.safetensors"
    try:
        return Store.make(tmp, "safetensors", lambda path: convert_pickle(origin.path, path, hook=hook))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        folder.rmdir()


def recheck_locked(
    store: Store, artifact: Artifact, hook: StateDictHook | None, entry: CacheEntry, progress: Any = None
) -> tuple[CacheEntry, bool]:
    """For `zoo fetch --locked`: the conversion `entry` of `artifact`, held to a new conversion of its origin.

    The origin is fetched (held to the lockfile's sha256) when it is not local. Returns the entry now
    cached and True when the cached conversion was already right (else it was quarantined and replaced).
    """
    if artifact.format not in PICKLES:
        return entry, True
    origin = store.fetch_entry(artifact, progress=progress)
    sha, size = hash_file(origin.path)
    if (sha, size) != (origin.sha256, origin.size):
        raise ZooError(
            f"{origin.path} changed since it was verified (sha256 {sha[:16]}…): run `zoo cache verify`, then fetch "
            f"again."
        )
    name = safetensors_name(artifact)
    if not entry.in_cache or entry.path.name != name:
        return convert_into_cache(store, name, origin, hook), True
    return store.remake(name, "safetensors", origin, lambda tmp: convert_pickle(origin.path, tmp, hook=hook))
