"""Recovering from damaged cache files: re-hash, quarantine, and fetch once more when that can help."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from zoo.specs import validate_filename
from zoo.store import pins
from zoo.store.cache import CacheEntry, CacheRecord, hash_file
from zoo.store.formats import FormatError, check_format
from zoo.store.locking import ArtifactLock

__all__ = ["Recovery"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Recovery:
    """The self-healing half of `zoo.store.Store` (a mixin: `self` is the store)."""

    if TYPE_CHECKING:  # provided by Store

        @property
        def root(self) -> Path: ...

        @property
        def weights_dir(self) -> Path: ...

        def record(self, name: str) -> CacheRecord | None: ...

    def intact(self, name: str) -> bool:
        """Re-hash cache file `name`: True when its bytes match its record (no network, no lock)."""
        record = self.record(name)
        path = self.weights_dir / name
        if record is None or not path.is_file():
            return False
        return hash_file(path) == (record.sha256, record.size)

    def quarantine(self, name: str, reason: str) -> Path | None:
        """Move cache file `name` and its record to ``<root>/quarantine`` so the next fetch gets it anew.

        Its pin (full sha256) stays, so the refetch is held to the bytes first recorded. Returns the
        quarantined path, or None when there was no file.
        """
        validate_filename(name)
        with ArtifactLock(self.weights_dir, name):
            return self._quarantine(name, reason)

    def _quarantine(self, name: str, reason: str) -> Path | None:
        """`quarantine`, for a caller that holds the lock of `name`."""
        folder = self.root / "quarantine"
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}-{name}"
        record = self.weights_dir / f"{name}.record.json"
        with contextlib.suppress(FileNotFoundError):
            os.replace(record, dest.with_name(dest.name + ".record.json"))
        try:
            os.replace(self.weights_dir / name, dest)
        except FileNotFoundError:
            return None
        dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n")
        log.warning("quarantined %s: %s (moved to %s)", name, reason, dest)
        return dest

    def heal(self, entry: CacheEntry, fmt: str, reason: str) -> bool:
        """Quarantine a cached file that failed to load, when a new fetch can help; True when it was moved.

        That is when its bytes no longer match its record (its pin stays, so the new fetch is held to
        the bytes first recorded), or when only a first-use pin vouches for it (upstream publishes no
        hash) and it is not a complete file of its format: such a pin is forgotten with the file.
        A readable file that upstream vouches for is left alone: fetching it again would give it again.
        """
        name = entry.path.name
        if not entry.in_cache or entry.path.parent != self.weights_dir:
            return False
        if not self.intact(name):
            return self.quarantine(name, reason) is not None
        if not pins.is_first_use(self.root, name):
            return False
        try:
            check_format(entry.path, fmt)
        except FormatError as exc:
            moved = self.quarantine(name, f"{reason} ({exc}); its first-use pin is forgotten")
            pins.forget(self.root, [name])
            return moved is not None
        return False

    def recovering(self, fetch: Callable[[], CacheEntry], use: Callable[[CacheEntry], T]) -> T:
        """`use(fetch())`; when `use` fails on a cached file that `heal` quarantines, try once more with a
        fresh fetch.

        A failure on an intact, vouched-for file (e.g. weights that do not fit the model) is raised as is.
        """
        entry = fetch()
        try:
            return use(entry)
        except Exception as exc:
            record = self.record(entry.path.name) if entry.in_cache else None
            if not self.heal(entry, record.format if record else "safetensors", f"failed to load: {exc}"):
                raise
        return use(fetch())
