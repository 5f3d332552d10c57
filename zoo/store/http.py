"""Streaming HTTP(S) downloads into a unique temporary file, hashed and length-checked on the way."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from zoo._version import __version__
from zoo.errors import DownloadError
from zoo.store.cache import CHUNK, temp_path

__all__ = ["Progress", "download"]

log = logging.getLogger(__name__)

#: Called with (bytes done, total bytes or None) while a download runs.
Progress = Callable[[int, "int | None"], None]
TIMEOUT = 30.0


def download(url: str, target: Path, *, progress: Progress | None = None, timeout: float = TIMEOUT) -> tuple[Path, str, int]:
    """Download `url` to a unique temporary file beside `target`.

    Returns:
        `(temp_path, sha256, size)`; the caller verifies and renames it, or removes it.

    Raises:
        DownloadError: HTTP error, connection error, or a body shorter than its Content-Length.
    """
    request = urllib.request.Request(url, headers={"User-Agent": f"zoo-sdk/{__version__}"})
    tmp = temp_path(target)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            sha, size = _stream(response, tmp, total, progress)
        if total is not None and size != total:
            raise DownloadError(f"{url} ended after {size} of {total} bytes: the server closed early. Try again.")
        return tmp, sha, size
    except urllib.error.HTTPError as exc:
        _discard(tmp)
        raise DownloadError(f"{url} answered HTTP {exc.code} {exc.reason}.") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        _discard(tmp)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"{url} could not be downloaded: {reason}.") from exc
    except BaseException:
        _discard(tmp)
        raise


def _stream(response: http.client.HTTPResponse, tmp: Path, total: int | None, progress: Progress | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(tmp, "wb") as f:
        while True:
            n = response.readinto(buf)
            if not n:
                break
            chunk = view[:n]
            f.write(chunk)
            digest.update(chunk)
            size += n
            if progress is not None:
                progress(size, total)
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest(), size


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
