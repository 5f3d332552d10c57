"""`Store`: the verified weight cache under one root, and how a fetch finds or makes a local file.

A fetch looks in the cache, then in `ZOO_WEIGHTS_PATH` folders, then downloads (`zoo.store.downloads`).
One lock per file makes N concurrent fetches one download; under torchrun only local rank 0 downloads.
Damaged files are quarantined and fetched again (`zoo.store.recovery`); files made from others, such as
conversions to safetensors, are `zoo.store.derived`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from zoo import settings
from zoo.specs import Artifact, validate_filename
from zoo.store import pins
from zoo.store.cache import CacheEntry, CacheRecord, digest_matches, hash_file, weights_dir
from zoo.store.derived import Derivations
from zoo.store.downloads import Downloads
from zoo.store.http import Progress
from zoo.store.locking import ArtifactLock, is_follower, mark_failure, wait_for_leader
from zoo.store.recovery import Recovery
from zoo.store.sources import local_candidates

__all__ = ["Store", "get_store"]

log = logging.getLogger(__name__)


class Store(Downloads, Recovery, Derivations):
    """Fetches artifacts into the cache under `root` (default: `settings.cache_root()`, read each use)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        """The cache root."""
        return self._root if self._root is not None else settings.cache_root()

    @property
    def weights_dir(self) -> Path:
        """The folder of weight files (created if needed)."""
        return weights_dir(self.root)

    def record(self, name: str) -> CacheRecord | None:
        """The record of cache file `name` (it may outlive its file: a converted pickle's does)."""
        return CacheRecord.read(self.weights_dir, validate_filename(name))

    def cached(self, name: str) -> CacheEntry | None:
        """The cache entry for file `name` if its file and record agree on size, else None."""
        validate_filename(name)
        folder = self.weights_dir
        record = CacheRecord.read(folder, name)
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if record is None or record.size != size:
            return None
        return CacheEntry(path, record.sha256, record.size, record.source, revision=record.revision)

    def fetch_entry(self, artifact: Artifact, *, progress: Progress | None = None) -> CacheEntry:
        """Return a verified local file for `artifact`, downloading it if needed.

        Order: the cache, then `ZOO_WEIGHTS_PATH` folders (hash-checked, used in place), then each
        source with its mirrors first. Where upstream publishes only a hash prefix (or none), the full
        sha256 recorded at the first download is enforced. A download draws a progress bar on a
        terminal unless `progress` is given (see `zoo.store.progress`).

        Raises:
            OfflineError: `ZOO_OFFLINE=1` and the file is nowhere local (raised before any network call).
            ChecksumError: every source served bytes with the wrong hash; nothing was installed.
            DownloadError: every source failed, the disk is full, or the lock timed out.
        """
        from zoo.offline import configure_backends

        configure_backends()
        artifact, pinned = pins.enforce(self.root, artifact)
        entry = self._usable(artifact)
        if entry is not None:
            return entry
        offline = settings.offline()
        if is_follower() and not offline:
            log.info("LOCAL_RANK %s waits for local rank 0 to fetch %s", os.environ.get("LOCAL_RANK"), artifact.name)
            return wait_for_leader(lambda: self._done_by_leader(artifact), self.weights_dir, artifact.name)
        with ArtifactLock(self.weights_dir, artifact.name):
            entry = self._cached_match(artifact)
            if entry is not None:
                return entry
            try:
                with contextlib.ExitStack() as stack:
                    if progress is None and not offline:
                        from zoo.store.progress import download_bar

                        progress = stack.enter_context(download_bar(artifact.name))
                    entry = self._download(artifact, pinned, progress, offline)
            except Exception as exc:
                mark_failure(self.weights_dir, artifact.name, exc)
                raise
            mark_failure(self.weights_dir, artifact.name, None)
            return entry

    def fetch(self, artifact: Artifact, *, progress: Progress | None = None) -> Path:
        """Path of a verified local file for `artifact` (see `fetch_entry`)."""
        return self.fetch_entry(artifact, progress=progress).path

    def local_entry(self, artifact: Artifact) -> CacheEntry | None:
        """The verified local file for `artifact` (the cache, then `ZOO_WEIGHTS_PATH`), pins applied; no network."""
        artifact, _ = pins.enforce(self.root, artifact)
        return self._usable(artifact)

    def _cached_match(self, artifact: Artifact) -> CacheEntry | None:
        entry = self.cached(artifact.name)
        return entry if entry is not None and digest_matches(artifact, entry.sha256, entry.size) else None

    def _usable(self, artifact: Artifact) -> CacheEntry | None:
        entry = self._cached_match(artifact)
        if entry is not None:
            return entry
        for path in local_candidates(artifact):
            sha, size = hash_file(path)
            if digest_matches(artifact, sha, size):
                log.info("using %s from ZOO_WEIGHTS_PATH", path)
                return CacheEntry(path, sha, size, str(path), in_cache=False)
            log.warning("ignoring %s: its sha256 %s does not match %s", path, sha[:12], artifact.expected_digest)
        return None

    def _done_by_leader(self, artifact: Artifact) -> CacheEntry | None:
        """The entry rank 0 made; also when its file was already converted and removed (its record stays)."""
        entry = self._cached_match(artifact)
        if entry is not None:
            return entry
        record = self.record(artifact.name)
        path = self.weights_dir / artifact.name
        if record is not None and not path.exists() and digest_matches(artifact, record.sha256, record.size):
            return CacheEntry(path, record.sha256, record.size, record.source, revision=record.revision)
        return None


def get_store() -> Store:
    """The store for the current settings."""
    return Store()
