"""The on-disk cache: where each artifact lives, its record, and atomic writes into it.

Layout under the cache root (``ZOO_HOME``)::

    weights/<file>               verified files (downloaded, or converted to safetensors)
    weights/<file>.record.json   what is known of each: sha256, size, format, source, fetched time
    weights/.<file>.<id>.part    temporary files while writing (never at the final path)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from zoo.specs import validate_filename

__all__ = ["CacheRecord", "atomic_file", "hash_file", "weights_dir"]

CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheRecord:
    """What the cache knows about one file.

    Attributes:
        name: file name in the cache.
        sha256: full sha256 of the cached bytes.
        size: byte size of the cached bytes.
        format: artifact format of the cached file.
        source: where the bytes came from (URL, path, or `converted:<file>`).
        fetched: Unix time the entry was written.
        origin_sha256: for converted files, the sha256 of the file they were made from.
    """

    name: str
    sha256: str
    size: int
    format: str
    source: str
    fetched: float
    origin_sha256: str | None = None

    def write(self, directory: Path) -> None:
        """Write the record beside its file, atomically."""
        target = directory / f"{self.name}.record.json"
        with atomic_file(target, mode="w") as f:
            json.dump(asdict(self), f, indent=1, sort_keys=True)

    @classmethod
    def read(cls, directory: Path, name: str) -> CacheRecord | None:
        """The record of `name`, or None when missing or unreadable."""
        try:
            data = json.loads((directory / f"{name}.record.json").read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def weights_dir(root: Path) -> Path:
    """The folder of weight files under a cache root (created if needed)."""
    path = root / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK * 8)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def temp_path(target: Path) -> Path:
    """A unique temporary path in the target's folder (same filesystem, so `os.replace` is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")


@contextlib.contextmanager
def atomic_file(target: Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a unique temporary file and move it over `target` only if the block succeeds.

    The file is flushed and fsynced before the rename; on any error the temporary file is removed
    and `target` is left as it was.
    """
    validate_filename(target.name.removesuffix(".record.json"))
    tmp = temp_path(target)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def now() -> float:
    """Current Unix time (a function so tests can reason about it)."""
    return time.time()
