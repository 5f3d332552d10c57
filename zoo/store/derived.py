"""Files the cache makes from other files (a pickle's safetensors conversion), held to their origin.

A derived file's record names the sha256 of its origin. Conversions are byte-stable (a safetensors result
is brought to one canonical header), so a derived file can be made again and compared (`remake`), which is
how `zoo cache import`, `zoo cache verify` and `zoo fetch --locked` check one instead of trusting its record.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zoo._atomic import DISK_FULL, atomic_path
from zoo.errors import DiskFullError
from zoo.specs import validate_filename
from zoo.store.cache import CacheEntry, CacheRecord, hash_file, move_into_place, now, temp_path
from zoo.store.formats import canonicalize_safetensors
from zoo.store.locking import ArtifactLock, is_follower, wait_for_leader

__all__ = ["Derivations"]


class Derivations:
    """The derived-file half of `zoo.store.Store` (a mixin: `self` is the store)."""

    if TYPE_CHECKING:  # provided by Store

        @property
        def weights_dir(self) -> Path: ...

        def cached(self, name: str) -> CacheEntry | None: ...

        def record(self, name: str) -> CacheRecord | None: ...

        def _quarantine(self, name: str, reason: str) -> Path | None: ...

    def derive(self, name: str, fmt: str, origin: CacheEntry, make: Callable[[Path], None]) -> CacheEntry:
        """A file made from another (e.g. a pickle converted to safetensors), cached under `name`.

        `make(tmp_path)` writes the new file; it is hashed and renamed into place, with a record that
        names the origin's sha256, so it is remade if the origin changes. Under torchrun, local ranks
        other than 0 wait for rank 0's file instead of making it.
        """
        validate_filename(name)
        entry = self.derived(name, origin.sha256)
        if entry is not None:
            return entry
        if is_follower():
            return wait_for_leader(lambda: self.derived(name, origin.sha256), self.weights_dir, name)
        target = self.weights_dir / name
        with ArtifactLock(self.weights_dir, name):
            entry = self.derived(name, origin.sha256)
            if entry is not None:
                return entry
            with atomic_path(target) as tmp:
                sha, size = self.make(tmp, fmt, make)
                (target.parent / f"{name}.record.json").unlink(missing_ok=True)
            record = CacheRecord(
                name,
                sha,
                size,
                fmt,
                f"converted:{origin.path.name}",
                now(),
                origin.sha256,
                origin_size=origin.size,
            )
            record.write(target.parent)
        return CacheEntry(target, sha, size, record.source)

    @staticmethod
    def make(tmp: Path, fmt: str, make: Callable[[Path], None]) -> tuple[str, int]:
        """Run `make(tmp)`, bring a safetensors result to its byte-stable form, fsync; returns (sha256, size).

        Equal inputs give equal bytes in any process (the safetensors library alone writes its metadata
        keys in hash order), so a conversion can be made again and compared (`zoo cache verify`).

        Raises:
            ZooError: the disk is full (the caller removes `tmp`).
        """
        try:
            make(tmp)
            if fmt == "safetensors":
                canonicalize_safetensors(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise DiskFullError(
                    f"The disk holding {tmp.parent} is full ({os.strerror(exc.errno)}): the conversion was not "
                    f"written. Free space, or set ZOO_HOME elsewhere.",
                    path=str(tmp),
                ) from None
            raise
        return hash_file(tmp)

    def derived(
        self, name: str, origin_sha256: str | None = None, origin_prefix: str | None = None
    ) -> CacheEntry | None:
        """The cached file `name` if it was made from an origin with that sha256 (or sha256 prefix)."""
        entry = self.cached(name)
        if entry is None:
            return None
        record = CacheRecord.read(self.weights_dir, name)
        origin = record.origin_sha256 if record else None
        if origin is None:
            return None
        if origin_sha256 is not None and origin != origin_sha256:
            return None
        if origin_prefix is not None and not origin.startswith(origin_prefix):
            return None
        return entry

    def remake(self, name: str, fmt: str, origin: CacheEntry, make: Callable[[Path], None]) -> tuple[CacheEntry, bool]:
        """Make the derived file `name` from `origin` again and hold the cached one to it.

        Conversions are byte-stable, so a cached conversion that is not byte for byte what `make` gives
        now was not made from `origin` (or changed since): it is quarantined and replaced.

        Returns:
            The entry now cached, and True when the cached file was already equal to the new one.
        """
        validate_filename(name)
        target = self.weights_dir / name
        with ArtifactLock(self.weights_dir, name):
            tmp = temp_path(target)
            try:
                sha, size = self.make(tmp, fmt, make)
                current = self.cached(name)
                record = self.record(name)
                if (
                    current is not None
                    and record is not None
                    and record.origin_sha256 == origin.sha256
                    and hash_file(target) == (sha, size) == (current.sha256, current.size)
                ):
                    return current, True
                detail = f"it is not what converting its origin {origin.path.name} gives (sha256 {sha[:16]}…)"
                self._quarantine(name, detail)
                (target.parent / f"{name}.record.json").unlink(missing_ok=True)
                move_into_place(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            new = CacheRecord(
                name, sha, size, fmt, f"converted:{origin.path.name}", now(), origin.sha256, origin_size=origin.size
            )
            new.write(target.parent)
        return CacheEntry(target, sha, size, new.source), False
