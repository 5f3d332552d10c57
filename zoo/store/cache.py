"""The on-disk cache: where each artifact lives, its record, temporary files, and atomic writes into it.

Layout under the cache root (``ZOO_HOME``)::

    weights/<file>                        verified files (downloaded, imported, or converted to safetensors)
    weights/<file>.record.json            what is known of each: sha256, size, format, source, fetched time
    weights/.<file>.<host>-<pid>-<id>.part      bytes being written (never at the final path)
    weights/.<file>.<host>-<pid>-<id>.part.json where a partial download came from (to resume it)
    weights/.<file>.lock, .<file>.lock.holder   the per-file lock and who holds it
    quarantine/<time>-<file>              files that failed verification, with their record
    pins.json                             full sha256 learned at first download where upstream publishes less
    repos/<owner>/<repo>/<commit>/        extracted GitHub repo snapshots
    hf/, torch/, ultralytics/             the Hugging Face, torch.hub and ultralytics caches
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

from zoo._atomic import atomic_write, file_mode, host_tag, temp_path
from zoo._atomic import commit as move_into_place
from zoo.specs import Artifact, validate_filename

__all__ = [
    "CacheEntry",
    "CacheRecord",
    "Part",
    "atomic_file",
    "digest_matches",
    "file_mode",
    "hash_file",
    "host_tag",
    "move_into_place",
    "parts_of",
    "pid_alive",
    "temp_path",
    "weights_dir",
]

CHUNK = 1 << 20
#: A partial file untouched this long is abandoned even when its pid looks alive (pid reuse, other hosts).
STALE_AFTER = 3600.0
_PART = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]{1,32})-(?P<pid>\d+)-(?P<id>[0-9a-f]{8})\.part$")


@dataclass(frozen=True)
class CacheRecord:
    """What the cache knows about one file.

    Attributes:
        name: file name in the cache.
        sha256: full sha256 of the cached bytes.
        size: byte size of the cached bytes.
        format: artifact format of the cached file.
        source: where the bytes came from (URL, `hf:` or `pkg:` source, path, or `converted:<file>`).
        fetched: Unix time the entry was written.
        origin_sha256: for converted files, the sha256 of the file they were made from.
        revision: the commit a `hf:` file or GitHub archive was resolved to, when there is one.
        verified: Unix time `zoo cache verify` last re-hashed the file, or None.
        origin_size: for converted files, the byte size of the file they were made from.
    """

    name: str
    sha256: str
    size: int
    format: str
    source: str
    fetched: float
    origin_sha256: str | None = None
    revision: str | None = None
    verified: float | None = None
    origin_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what `zoo cache ls --json` prints per file)."""
        return asdict(self)

    def write(self, directory: Path) -> None:
        """Write the record beside its file, atomically."""
        target = directory / f"{self.name}.record.json"
        with atomic_file(target, mode="w") as f:
            json.dump(asdict(self), f, indent=1, sort_keys=True)

    @classmethod
    def read(cls, directory: Path, name: str) -> CacheRecord | None:
        """The record of `name`, or None when missing or unreadable (unknown keys are ignored)."""
        return cls.load(directory / f"{name}.record.json")

    @classmethod
    def load(cls, path: Path) -> CacheRecord | None:
        """The record stored at `path`, or None when missing or unreadable."""
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            record = cls(**{k: v for k, v in data.items() if k in known})
            validate_filename(record.name)
            return record
        except (OSError, ValueError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class CacheEntry:
    """A verified local file for an artifact.

    Attributes:
        path: the file (in the cache, or in a `ZOO_WEIGHTS_PATH` folder).
        sha256: its full sha256.
        size: its size in bytes.
        source: where it came from.
        in_cache: False when it was found in a `ZOO_WEIGHTS_PATH` folder and used in place.
        revision: the commit its source was resolved to (`hf:` files, GitHub archives), when known.
    """

    path: Path
    sha256: str
    size: int
    source: str
    in_cache: bool = True
    revision: str | None = None


def weights_dir(root: Path) -> Path:
    """The folder of weight files under a cache root (created if needed)."""
    path = root / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hash_file(path: Path, *, limit: int | None = None) -> tuple[str, int]:
    """sha256 hex digest and size of a file (or of its first `limit` bytes), streamed."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK * 8)
        view = memoryview(buf)
        while limit is None or size < limit:
            want = len(buf) if limit is None else min(len(buf), limit - size)
            n = f.readinto(view[:want])
            if not n:
                break
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Part:
    """A temporary file in the cache, parsed from its name.

    Attributes:
        path: the `.part` file.
        name: the cache file it was meant to become.
        host: the host tag of its writer.
        pid: the pid of its writer.
    """

    path: Path
    name: str
    host: str
    pid: int

    @property
    def meta_path(self) -> Path:
        """The sidecar that says where its bytes came from (written by resumable sources)."""
        return self.path.with_name(self.path.name + ".json")

    def meta(self) -> dict[str, Any]:
        """The sidecar's content, or {} when there is none."""
        try:
            data = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def abandoned(self, now_: float | None = None) -> bool:
        """True when its writer is gone: a dead pid on this host, or no change for `STALE_AFTER` seconds."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        if (now_ or time.time()) - mtime > STALE_AFTER and self.pid != os.getpid():
            return True
        return self.host == host_tag() and self.pid != os.getpid() and not pid_alive(self.pid)

    def remove(self) -> None:
        """Delete the file (or unfinished folder) and its sidecar."""
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        for path in (self.path, self.meta_path):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                path.unlink()


def parts_of(folder: Path, name: str | None = None) -> list[Part]:
    """Temporary files in `folder` (only those meant to become `name`, when given)."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _PART.fullmatch(entry.name)
        if match and (name is None or match["name"] == name):
            out.append(Part(Path(entry.path), match["name"], match["host"], int(match["pid"])))
    return out


@contextlib.contextmanager
def atomic_file(target: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """`zoo._atomic.atomic_write` for a cache file: its name (or its record's file name) must be safe."""
    validate_filename(target.name.removesuffix(".record.json"))
    with atomic_write(target, mode=mode) as f:
        yield f


def write_json(target: Path, data: Any) -> None:
    """Write JSON to `target` atomically (any file name; the folder must exist)."""
    with atomic_write(target, mode="w") as f:
        json.dump(data, f, indent=1, sort_keys=True)


def digest_matches(artifact: Artifact, sha256: str, size: int | None = None) -> bool:
    """True when a file's sha256 (and size) agree with what the artifact declares."""
    if artifact.sha256 and sha256 != artifact.sha256:
        return False
    if artifact.hash_prefix and not sha256.startswith(artifact.hash_prefix):
        return False
    return not (artifact.size is not None and size is not None and size != artifact.size)


def now() -> float:
    """Current Unix time (a function so tests can reason about it)."""
    return time.time()
