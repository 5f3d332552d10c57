"""HTTP(S) downloads into a temporary file: resumable with Range, retried with backoff, hashed on the way.

Reading from the socket and writing + hashing run on two threads (both release the GIL), so a download
runs at the speed of the slower of the two, not of their sum.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import logging
import os
import queue
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo._version import __version__
from zoo.errors import DownloadError, ZooError
from zoo.store.cache import CHUNK

__all__ = ["NO_NETWORK_HINT", "Policy", "Progress", "Unreachable", "download"]

log = logging.getLogger(__name__)

#: Called with (bytes done, total bytes or None) while a download runs.
Progress = Callable[[int, "int | None"], None]
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Policy:
    """How hard a download tries, read from the environment when used.

    Attributes:
        retries: retries after the first attempt on connection errors, timeouts, 5xx, 429 and early
            closes (``ZOO_RETRIES``).
        backoff: first delay in seconds, doubled each retry, with jitter (``ZOO_BACKOFF``).
        backoff_max: longest delay, also the cap on a server's ``Retry-After``.
        timeout: seconds to wait for a connection or for the next bytes (``ZOO_TIMEOUT``).
    """

    retries: int = 4
    backoff: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 30.0

    @classmethod
    def from_env(cls) -> Policy:
        """The policy set by ``ZOO_RETRIES``, ``ZOO_BACKOFF`` and ``ZOO_TIMEOUT``, defaults otherwise."""
        try:
            return cls(
                retries=int(os.environ.get("ZOO_RETRIES", cls.retries)),
                backoff=float(os.environ.get("ZOO_BACKOFF", cls.backoff)),
                timeout=float(os.environ.get("ZOO_TIMEOUT", cls.timeout)),
            )
        except ValueError as exc:
            raise ZooError(f"ZOO_RETRIES, ZOO_BACKOFF and ZOO_TIMEOUT must be numbers ({exc}).") from exc

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        return min(self.backoff_max, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)


#: What to do when the network is not there, said by every error about an unreachable host.
NO_NETWORK_HINT = (
    "Without network, set ZOO_OFFLINE=1 to use only local files; fetch from a reachable mirror with ZOO_MIRRORS; "
    "point ZOO_WEIGHTS_PATH at a folder holding the file; or `zoo cache import` an export of a connected machine."
)


class Unreachable(DownloadError):
    """The host could not be reached at all: its name does not resolve, or it refuses connections.

    Not retried: unlike a timeout or a 503, neither goes away in the seconds a retry waits.

    Attributes:
        url: the URL asked for.
    """

    def __init__(self, url: str, reason: BaseException) -> None:
        host = urllib.parse.urlsplit(url).netloc
        what = "does not resolve" if isinstance(reason, socket.gaierror) else "refused the connection"
        super().__init__(f"{host} {what} ({url}; {reason})", url=url)


class _Retry(Exception):
    """A failure worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


def download(
    url: str,
    part: Path,
    *,
    progress: Progress | None = None,
    policy: Policy | None = None,
    resume: bool = False,
    require_length: bool = False,
) -> tuple[str, int]:
    """Download `url` into `part`, retrying and resuming; returns `(sha256, size)` of the whole file.

    With `resume`, bytes already in `part` (left by an interrupted download of the same URL, as its
    sidecar says) are kept and the rest is asked for with ``Range``; when the server ignores the range
    or the file changed (``If-Range`` on its ETag or Last-Modified), the download restarts from zero.
    The caller verifies and renames `part`, or removes it (and its sidecar).

    With `require_length`, a body that ends with the connection, without a Content-Length or chunked
    framing to tell a complete file from a cut one, is refused.

    Raises:
        DownloadError: an HTTP error other than 429/5xx, an unframed body with `require_length`, or every
            attempt failed.
    """
    policy = policy or Policy.from_env()
    for attempt in range(policy.retries + 1):
        try:
            return _attempt(url, part, progress, policy, resume or attempt > 0, require_length)
        except _Retry as exc:
            if attempt == policy.retries:
                raise DownloadError(
                    f"{url} failed after {attempt + 1} attempts: {exc}", url=url, status=exc.status
                ) from None
            wait = policy.delay(attempt, exc.retry_after)
            log.warning("%s: %s; retry %d of %d in %.1f s", url, exc, attempt + 1, policy.retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(
    url: str, part: Path, progress: Progress | None, policy: Policy, resume: bool, require_length: bool
) -> tuple[str, int]:
    meta = _read_meta(part) if resume else {}
    offset = part.stat().st_size if meta.get("url") == url and part.exists() else 0
    headers = {"User-Agent": f"zoo-sdk/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator := _validator(meta):
            headers["If-Range"] = validator
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=policy.timeout) as response:
            offset, total = _start(response, url, part, offset, meta)
            if require_length and total is None and not getattr(response, "chunked", False):
                raise DownloadError(
                    f"{url} sent no Content-Length, and upstream publishes no hash or size for this file, so a "
                    f"cut-short download could not be told from a whole one: nothing was installed. Use a server "
                    f"or mirror that sends Content-Length, or bring the file with `zoo cache import` or "
                    f"ZOO_WEIGHTS_PATH.",
                    url=url,
                    status=response.status,
                )
            _write_meta(part, url, response, total)
            sha, size = _stream(response, part, offset, total, progress)
    except urllib.error.HTTPError as exc:
        _http_error(exc, url, part)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.gaierror, ConnectionRefusedError)):
            raise Unreachable(url, exc.reason) from None
        raise _Retry(str(exc.reason or exc) or type(exc).__name__) from None
    except (http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise _Retry(str(getattr(exc, "reason", None) or exc) or type(exc).__name__) from None
    if total is not None and size != total:
        raise _Retry(f"the server closed early after {size} of {total} bytes")
    return sha, size


def _start(
    response: http.client.HTTPResponse, url: str, part: Path, offset: int, meta: dict[str, Any]
) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's total size when known."""
    length = response.headers.get("Content-Length")
    length_int = int(length) if length and length.isdigit() else None
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        etag = response.headers.get("ETag")
        if match is None or int(match[1]) != offset or (meta.get("etag") and etag and etag != meta["etag"]):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise _Retry("the server sent another range or another version of the file; restarting", 0)
        log.info("%s: resuming at byte %d", url, offset)
        return offset, int(match[3]) if match[3] != "*" else None
    if offset:
        log.info("%s: the server ignored Range or the file changed; restarting from zero", url)
    return 0, length_int


def _http_error(exc: urllib.error.HTTPError, url: str, part: Path) -> None:
    if exc.code == 416:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise _Retry("the server refused the resume range; restarting", 0) from None
    if exc.code == 429 or exc.code >= 500:
        after = exc.headers.get("Retry-After") if exc.headers else None
        retry_after = float(after) if after and after.strip().isdigit() else None
        raise _Retry(f"HTTP {exc.code} {exc.reason}", retry_after, exc.code) from None
    raise DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}.", url=url, status=exc.code) from None


def _validator(meta: dict[str, Any]) -> str | None:
    etag = meta.get("etag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    return meta.get("last_modified") or None


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_meta(part: Path) -> dict[str, Any]:
    try:
        data = json.loads(_meta_path(part).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(part: Path, url: str, response: http.client.HTTPResponse, total: int | None) -> None:
    meta = {
        "url": url,
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
        "total": total,
    }
    _meta_path(part).write_text(json.dumps(meta))


def _stream(response: http.client.HTTPResponse, part: Path, offset: int, total: int | None, progress: Progress | None):
    """Append the body to `part` after its first `offset` bytes; returns (sha256, size) of the whole file."""
    digest = hashlib.sha256()
    with open(part, "r+b" if offset else "wb") as f:
        if offset:
            _hash_into(f, digest, offset)
            f.seek(offset)
            f.truncate()
        sink = _Sink(f, digest)
        size = offset
        try:
            while True:
                buf = sink.buffer()
                n = response.readinto(buf)
                if not n:
                    sink.give_back(buf)
                    break
                sink.submit(buf, n)
                size += n
                if progress is not None:
                    progress(size, total)
        finally:
            sink.close()
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest(), size


def _hash_into(f: Any, digest: Any, limit: int) -> None:
    buf = bytearray(CHUNK * 4)
    view = memoryview(buf)
    done = 0
    while done < limit:
        n = f.readinto(view[: min(len(buf), limit - done)])
        if not n:
            break
        digest.update(view[:n])
        done += n


#: Bytes written between two requests to the kernel to start writing them to disk.
WRITEBACK_EVERY = 16 << 20


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range, or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return call  # type: ignore[no-any-return]


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages now, without waiting, so the final fsync
    has little left to do (it is the fsync that makes the bytes durable; this only moves the work earlier)."""
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE: the whole file, asynchronously


class _Sink:
    """Writes and hashes chunks on a worker thread while the caller reads the next ones.

    (Splitting writing and hashing over two more threads measured slower on a 2-core machine.)
    """

    def __init__(self, f: Any, digest: Any, buffers: int = 6) -> None:
        self._f, self._digest = f, digest
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(bytearray(CHUNK))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zoo-download-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        unsynced = 0
        while (item := self._full.get()) is not None:
            buf, n = item
            if self._error is None:
                try:
                    view = memoryview(buf)[:n]
                    self._f.write(view)
                    self._digest.update(view)
                    unsynced += n
                    if unsynced >= WRITEBACK_EVERY:
                        self._f.flush()
                        _start_writeback(self._f.fileno())
                        unsynced = 0
                except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                    self._error = exc
            self._free.put(buf)

    def buffer(self) -> bytearray:
        """A free buffer to read into (raises the writer's error, e.g. a full disk, as soon as there is one)."""
        buf = self._free.get()
        if self._error is not None:
            self._free.put(buf)
            raise self._error
        return buf

    def give_back(self, buf: bytearray) -> None:
        """Return an unused buffer."""
        self._free.put(buf)

    def submit(self, buf: bytearray, n: int) -> None:
        """Queue the first `n` bytes of `buf` for writing and hashing."""
        self._full.put((buf, n))

    def close(self) -> None:
        """Wait for every queued chunk; raise the writer's error if there was one."""
        self._full.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
