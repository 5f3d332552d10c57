"""The weight store: fetch artifacts into a verified cache, from local folders, mirrors or upstream.

Every write goes to a unique temporary file in the target folder, is hashed and length-checked while
streaming, and is renamed over the final path only once verified, so the final path never holds
unverified bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo import settings
from zoo.errors import ChecksumError, DownloadError, OfflineError
from zoo.specs import Artifact, validate_filename
from zoo.store.cache import CacheRecord, hash_file, now, temp_path, weights_dir
from zoo.store.http import Progress, download
from zoo.store.sources import candidate_urls, local_candidates

__all__ = ["CacheEntry", "Store", "get_store"]

log = logging.getLogger(__name__)
LOCK_TIMEOUT = 600.0


@dataclass(frozen=True)
class CacheEntry:
    """A verified local file for an artifact.

    Attributes:
        path: the file (in the cache, or in a `ZOO_WEIGHTS_PATH` folder).
        sha256: its full sha256.
        size: its size in bytes.
        source: where it came from.
        in_cache: False when it was found in a `ZOO_WEIGHTS_PATH` folder and used in place.
    """

    path: Path
    sha256: str
    size: int
    source: str
    in_cache: bool = True


def digest_matches(artifact: Artifact, sha256: str, size: int | None = None) -> bool:
    """True when a file's sha256 (and size) agree with what the artifact declares."""
    if artifact.sha256 and sha256 != artifact.sha256:
        return False
    if artifact.hash_prefix and not sha256.startswith(artifact.hash_prefix):
        return False
    return not (artifact.size is not None and size is not None and size != artifact.size)


class Store:
    """Fetches artifacts into the cache under `root` (default: `settings.cache_root()`, read each use)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        """The cache root."""
        return self._root if self._root is not None else settings.cache_root()

    @property
    def weights_dir(self) -> Path:
        """The folder of weight files."""
        return weights_dir(self.root)

    def cached(self, name: str) -> CacheEntry | None:
        """The cache entry for file `name` if its file and record agree on size, else None."""
        folder = self.weights_dir
        record = CacheRecord.read(folder, validate_filename(name))
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        if record is None or record.size != size:
            return None
        return CacheEntry(path, record.sha256, record.size, record.source)

    def fetch_entry(self, artifact: Artifact, *, progress: Progress | None = None) -> CacheEntry:
        """Return a verified local file for `artifact`, downloading it if needed.

        Order: the cache, then `ZOO_WEIGHTS_PATH` folders (hash-checked, used in place), then each URL
        with its mirrors first.

        Raises:
            OfflineError: `ZOO_OFFLINE=1` and the file is nowhere local.
            ChecksumError: every source served bytes with the wrong hash.
            DownloadError: every source failed.
        """
        entry = self.cached(artifact.name)
        if entry is not None and digest_matches(artifact, entry.sha256, entry.size):
            return entry
        for path in local_candidates(artifact):
            sha, size = hash_file(path)
            if digest_matches(artifact, sha, size):
                log.info("using %s from ZOO_WEIGHTS_PATH", path)
                return CacheEntry(path, sha, size, str(path), in_cache=False)
            log.warning("ignoring %s: its sha256 %s does not match %s", path, sha[:12], artifact.expected_digest)
        if settings.offline():
            raise OfflineError(
                f"Offline (ZOO_OFFLINE=1) and {artifact.name!r} is not cached: run `zoo fetch` for it on a connected "
                f"machine, or put the file in a folder listed in ZOO_WEIGHTS_PATH."
            )
        if not artifact.urls:
            raise DownloadError(f"{artifact.name!r} has no download URL: put it in a folder listed in ZOO_WEIGHTS_PATH.")
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.weights_dir / f".{artifact.name}.lock"))
        try:
            with lock.acquire(timeout=LOCK_TIMEOUT):
                entry = self.cached(artifact.name)
                if entry is not None and digest_matches(artifact, entry.sha256, entry.size):
                    return entry
                return self._download(artifact, progress)
        except Timeout as exc:
            raise DownloadError(
                f"Another process has held the lock {lock.lock_file} for {LOCK_TIMEOUT:.0f} s: if none is running, delete it."
            ) from exc

    def fetch(self, artifact: Artifact, *, progress: Progress | None = None) -> Path:
        """Path of a verified local file for `artifact` (see `fetch_entry`)."""
        return self.fetch_entry(artifact, progress=progress).path

    def _download(self, artifact: Artifact, progress: Progress | None) -> CacheEntry:
        target = self.weights_dir / artifact.name
        failures: list[str] = []
        bad_hash: ChecksumError | None = None
        for url in candidate_urls(artifact):
            try:
                tmp, sha, size = download(url, target, progress=progress)
            except DownloadError as exc:
                log.warning("%s", exc)
                failures.append(str(exc))
                continue
            if not digest_matches(artifact, sha, size):
                tmp.unlink()
                expected = artifact.expected_digest or "?"
                bad_hash = ChecksumError(
                    f"{url} served {artifact.name!r} with sha256 {sha[:16]}…, expected {expected[:16]}…: nothing was "
                    f"installed. Check the mirror or the upstream file.",
                    path=str(target),
                    expected=expected,
                    got=sha,
                )
                failures.append(str(bad_hash))
                continue
            os.replace(tmp, target)
            CacheRecord(artifact.name, sha, size, artifact.format, url, now()).write(target.parent)
            return CacheEntry(target, sha, size, url)
        if bad_hash is not None and len(failures) == 1:
            raise bad_hash
        raise DownloadError(f"Could not fetch {artifact.name!r} from any source: " + " | ".join(failures))

    def derive(self, name: str, fmt: str, origin: CacheEntry, make: Callable[[Path], None]) -> CacheEntry:
        """A file made from another (e.g. a pickle converted to safetensors), cached under `name`.

        `make(tmp_path)` writes the new file; it is hashed and renamed into place, with a record that
        names the origin's sha256, so it is remade if the origin changes.
        """
        entry = self.derived(name, origin.sha256)
        if entry is not None:
            return entry
        target = self.weights_dir / validate_filename(name)
        from filelock import FileLock

        with FileLock(str(target.with_name(f".{name}.lock")), timeout=LOCK_TIMEOUT):
            entry = self.derived(name, origin.sha256)
            if entry is not None:
                return entry
            tmp = temp_path(target)
            try:
                make(tmp)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                sha, size = hash_file(tmp)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            record = CacheRecord(name, sha, size, fmt, f"converted:{origin.path.name}", now(), origin.sha256)
            record.write(target.parent)
        return CacheEntry(target, sha, size, record.source)

    def derived(self, name: str, origin_sha256: str | None = None, origin_prefix: str | None = None) -> CacheEntry | None:
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


def get_store() -> Store:
    """The store for the current settings."""
    return Store()
