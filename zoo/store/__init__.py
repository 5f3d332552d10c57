"""The weight store: fetch artifacts into a verified cache, from local folders, mirrors or upstream sources.

Every write goes to a unique temporary file in the target folder, is hashed and length-checked while
streaming, and is renamed over the final path only once verified, so the final path never holds bytes
whose sha256 differs from its record. One lock per file makes N concurrent fetches one download; under
torchrun only local rank 0 downloads. Sources (`https:`, `hf:`, `file:`, `pkg:`) live in
`zoo.store.sources`; GitHub repo snapshots for torch.hub in `zoo.store.github`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from zoo import settings
from zoo.errors import ChecksumError, DownloadError, OfflineError
from zoo.specs import Artifact, validate_filename
from zoo.store import pins
from zoo.store.cache import CacheEntry, CacheRecord, hash_file, move_into_place, now, parts_of, temp_path, weights_dir
from zoo.store.derived import Derivations
from zoo.store.formats import FormatError, check_format
from zoo.store.http import NO_NETWORK_HINT, Policy, Progress, Unreachable
from zoo.store.locking import ArtifactLock, is_follower, mark_failure, wait_for_leader
from zoo.store.sources import FetchContext, Fetched, candidate_urls, discard, local_candidates, source_for

__all__ = ["CacheEntry", "Store", "digest_matches", "get_store", "repo_snapshot"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def digest_matches(artifact: Artifact, sha256: str, size: int | None = None) -> bool:
    """True when a file's sha256 (and size) agree with what the artifact declares."""
    if artifact.sha256 and sha256 != artifact.sha256:
        return False
    if artifact.hash_prefix and not sha256.startswith(artifact.hash_prefix):
        return False
    return not (artifact.size is not None and size is not None and size != artifact.size)


class Store(Derivations):
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

    def _download(self, artifact: Artifact, pinned: bool, progress: Progress | None, offline: bool) -> CacheEntry:
        target = self.weights_dir / artifact.name
        urls = list(artifact.urls) if offline else candidate_urls(artifact)
        resumable = bool(artifact.sha256 or artifact.hash_prefix)
        ctx = FetchContext(
            target,
            self.root,
            Policy.from_env(),
            progress,
            self._claimer(artifact.name, resumable),
            require_length=not resumable and artifact.size is None,
        )
        self._sweep(artifact.name, keep_urls=set(urls))
        failures: list[str] = []
        bad_hash: ChecksumError | None = None
        last: DownloadError | None = None
        unreachable = False
        if not urls and not offline:
            raise DownloadError(
                f"{artifact.name!r} has no download URL: put it in a folder listed in ZOO_WEIGHTS_PATH."
            )
        for i, url in enumerate(urls):
            try:
                fetched = self._fetch_one(url, ctx, offline)
                if fetched is None:
                    continue
                return self.install(fetched, artifact, pinned=pinned)
            except ChecksumError as exc:
                bad_hash = exc
                failures.append(str(exc))
            except DownloadError as exc:
                if i + 1 < len(urls):  # the last failure is in the error raised below
                    log.warning("%s; trying the next source", exc)
                failures.append(str(exc))
                last = exc
                unreachable = unreachable or isinstance(exc, Unreachable)
            except OSError as exc:
                if exc.errno in _DISK_FULL:
                    raise DownloadError(
                        f"The disk holding the zoo cache ({self.root}) is full ({os.strerror(exc.errno)}) while "
                        f"writing {artifact.name!r}: nothing was installed. Free space, or set ZOO_HOME elsewhere."
                    ) from exc
                raise
        if bad_hash is not None and len(failures) == 1:
            raise bad_hash
        if offline:
            raise _offline_error(artifact)
        hint = f" {NO_NETWORK_HINT}" if unreachable else ""
        raise DownloadError(
            f"Could not fetch {artifact.name!r} from any source: " + " | ".join(failures) + hint,
            url=last.url if last is not None else (urls[-1] if urls else None),
            status=last.status if last is not None else None,
        )

    @staticmethod
    def _fetch_one(url: str, ctx: FetchContext, offline: bool) -> Fetched | None:
        source = source_for(url)
        if offline and source.network:
            return source.local(url, ctx)
        return source.fetch(url, ctx)

    def install(
        self, fetched: Fetched, artifact: Artifact, *, pinned: bool = False, origin_sha256: str | None = None
    ) -> CacheEntry:
        """Verify a fetched temporary file against `artifact` and rename it into the cache with its record.

        The caller holds the artifact's lock. `origin_sha256` marks a converted file (see `derive`).

        Raises:
            ChecksumError: wrong sha256 or size; the temporary file is removed, the cache is unchanged.
        """
        target = self.weights_dir / artifact.name
        if artifact.sha256 is None and artifact.hash_prefix is None and origin_sha256 is None:
            _check_unhashed(fetched, artifact)
        if not digest_matches(artifact, fetched.sha256, fetched.size):
            discard(fetched.part)
            expected = artifact.expected_digest or f"{artifact.size} bytes"
            why = " (the full sha256 recorded at its first download)" if pinned else ""
            hint = (
                f" If upstream changed it on purpose, `zoo cache rm {artifact.name}` forgets the pin." if pinned else ""
            )
            raise ChecksumError(
                f"{fetched.source} served {artifact.name!r} with sha256 {fetched.sha256[:16]}… ({fetched.size} bytes), "
                f"expected {expected[:16]}…{why}: nothing was installed. Check the mirror or the upstream file.{hint}",
                path=str(target),
                expected=expected,
                got=fetched.sha256,
            )
        (target.parent / f"{artifact.name}.record.json").unlink(missing_ok=True)
        move_into_place(fetched.part, target)
        discard(fetched.part)
        record = CacheRecord(
            artifact.name,
            fetched.sha256,
            fetched.size,
            artifact.format,
            fetched.source,
            now(),
            origin_sha256,
            fetched.revision,
        )
        try:
            record.write(target.parent)
        except BaseException:
            target.unlink(missing_ok=True)  # a file without its record is never used: do not keep it
            raise
        if artifact.sha256 is None and artifact.format != "repo" and origin_sha256 is None:
            pins.pin(
                self.root,
                artifact.name,
                fetched.sha256,
                fetched.size,
                fetched.source,
                published=artifact.hash_prefix is not None,
            )
        self._sweep(artifact.name)
        return CacheEntry(target, fetched.sha256, fetched.size, fetched.source, revision=fetched.revision)

    def _sweep(self, name: str, keep_urls: set[str] | None = None) -> None:
        """Remove temporary files of dead writers of `name`, except resumable downloads of `keep_urls`."""
        for part in parts_of(self.weights_dir, name):
            if part.abandoned() and (keep_urls is None or part.meta().get("url") not in keep_urls):
                log.info("removing %s, left by a process that is gone", part.path.name)
                part.remove()

    def _claimer(self, name: str, resumable: bool) -> Callable[[str], Path | None]:
        def claim(url: str) -> Path | None:
            candidates = []
            for part in parts_of(self.weights_dir, name):
                meta = part.meta()
                if (
                    part.abandoned()
                    and meta.get("url") == url
                    and (resumable or meta.get("etag") or meta.get("last_modified"))
                ):
                    with contextlib.suppress(FileNotFoundError):
                        candidates.append((part.path.stat().st_size, part))
            for _, part in sorted(candidates, key=lambda c: -c[0]):
                mine = temp_path(self.weights_dir / name)
                try:
                    os.rename(part.path, mine)  # atomic: of two claimants, one wins
                except FileNotFoundError:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.rename(part.meta_path, mine.with_name(mine.name + ".json"))
                log.info("resuming %s from the %d bytes a stopped download left", name, mine.stat().st_size)
                return mine
            return None

        return claim

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


def _check_unhashed(fetched: Fetched, artifact: Artifact) -> None:
    """A file upstream publishes no hash for is pinned on first download: it must first be a complete
    file of its declared format (its length was already checked against Content-Length or the spec)."""
    try:
        check_format(fetched.part, artifact.format)
    except FormatError as exc:
        discard(fetched.part)
        raise DownloadError(
            f"{artifact.name!r} from {fetched.source} ({fetched.size} bytes) is not a complete {artifact.format} "
            f"file ({exc}), and upstream publishes no hash to check it by: nothing was installed or pinned. Fetch "
            f"it again later, or bring a whole copy with `zoo cache import` or ZOO_WEIGHTS_PATH."
        ) from None


def _offline_error(artifact: Artifact) -> OfflineError:
    return OfflineError(
        f"Offline (ZOO_OFFLINE=1) and {artifact.name!r} is not cached: on a connected machine run `zoo fetch` for "
        f"this model and `zoo cache export weights.tar`, then here `zoo cache import weights.tar`; or put the "
        f"file in a folder listed in ZOO_WEIGHTS_PATH."
    )


def get_store() -> Store:
    """The store for the current settings."""
    return Store()


def repo_snapshot(
    owner: str, repo: str, ref: str = "main", *, refresh: bool = False, progress: Progress | None = None
) -> Path:
    """The files of GitHub repo `owner/repo` at `ref`, extracted safely and pinned to the commit.

    For torch.hub repos: the returned folder holds ``hubconf.py``; pass it to
    ``torch.hub.load(str(path), entry, source="local")``. Fetched through the store (mirrors, resume,
    locks, ``ZOO_OFFLINE``); a branch or tag keeps resolving to the commit first fetched until
    `refresh=True`. See `zoo.store.github.repo_snapshot` for the details and errors.
    """
    from zoo.store.github import repo_snapshot as snapshot

    return snapshot(owner, repo, ref, refresh=refresh, progress=progress)
