"""Downloading into the store: try each source in turn, verify the bytes, install them with their record.

Every write goes to a unique temporary file beside the cache target, is hashed and length-checked while
streaming, and is renamed over the final path only once verified (`zoo._atomic.commit`), so the final path
never holds bytes whose sha256 differs from its record. Partial downloads a dead process left are resumed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zoo._atomic import DISK_FULL
from zoo.errors import ChecksumError, DownloadError, OfflineError
from zoo.specs import Artifact
from zoo.store import pins
from zoo.store.cache import CacheEntry, CacheRecord, digest_matches, move_into_place, now, parts_of, temp_path
from zoo.store.formats import FormatError, check_format
from zoo.store.http import NO_NETWORK_HINT, Policy, Progress, Unreachable
from zoo.store.sources import FetchContext, Fetched, candidate_urls, discard, source_for

__all__ = ["Downloads"]

log = logging.getLogger(__name__)


class Downloads:
    """The download half of `zoo.store.Store` (a mixin: `self` is the store)."""

    if TYPE_CHECKING:  # provided by Store

        @property
        def root(self) -> Path: ...

        @property
        def weights_dir(self) -> Path: ...

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
                if exc.errno in DISK_FULL:
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
