"""Atomic file writes: the one temp-file-then-rename helper every writer in zoo and its plugins uses.

A write goes to a unique temporary file in the target's folder (same filesystem, so the rename is atomic),
is flushed and fsynced, gets the mode the user's umask gives new files, and is renamed over the target;
the folder is then fsynced where the platform allows, so the rename survives a power cut. On any error,
``KeyboardInterrupt`` included, the temporary file is removed and the target is left as it was. A full disk
(``ENOSPC``, ``EFBIG``, ``EDQUOT``) is a one-line `DiskFullError`.

Example:
    ```python
    from zoo._atomic import atomic_path, atomic_write, atomic_write_text

    atomic_write_text(folder / "config.json", text)
    with atomic_write(folder / "data.bin") as f:      # a file object
        f.write(data)
    with atomic_path(folder / "model.pt") as tmp:     # a path, for writers that take one (torch.save)
        torch.save(state, tmp)
    ```

Temporary names are ``.<name>.<host>-<pid>-<id>.part``: the store recognises those a dead process left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from zoo.errors import DiskFullError, UnsupportedError

__all__ = [
    "DISK_FULL",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "commit",
    "file_mode",
    "fsync_dir",
    "host_tag",
    "temp_path",
]

#: The errno values of a write that failed for want of space.
DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def host_tag() -> str:
    """This machine's name, reduced to what a temporary file name may hold."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32] or "host"


def temp_path(target: Path) -> Path:
    """A unique temporary path in the target's folder (same filesystem, so `os.replace` is atomic).

    The name carries the host and pid of its writer, so files left by dead processes can be found.
    """
    return target.with_name(f".{target.name}.{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.part")


_UMASK: list[int] = []
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask: read from /proc (Linux; no side effect), else set and restored once, then kept."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        if not _UMASK:
            old = os.umask(0o022)
            os.umask(old)
            _UMASK.append(old)
    return _UMASK[0]


def file_mode() -> int:
    """The mode a new file gets under the user's umask (0o644 under umask 022, 0o664 under 002)."""
    return 0o666 & ~_umask()


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it is durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory: the rename is still atomic
    finally:
        os.close(fd)


def commit(tmp: Path, target: Path) -> None:
    """Give a finished temporary file the user's umask mode, rename it over `target`, fsync the folder.

    Temporary files may be created 0600 (`tempfile.mkstemp`, safetensors' `save_file`); a cache or a
    checkpoint shared by a team needs the mode any other new file of the user would get. The caller has
    fsynced the file's bytes (`atomic_path` and `atomic_write` do).
    """
    os.chmod(tmp, file_mode())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def disk_full(exc: OSError, target: Path) -> DiskFullError:
    """The one-line error for a write to `target` that failed with a full disk (`exc.errno` in `DISK_FULL`)."""
    error = DiskFullError(
        f"The disk holding {target.parent} is full ({os.strerror(exc.errno or errno.ENOSPC)}): {target.name} was "
        f"not written. Free space or write elsewhere.",
        path=str(target),
    )
    error.errno = exc.errno  # callers that map a full disk by errno (the store) still recognise it
    return error


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; when the block succeeds, fsync it and rename it over `target`.

    For writers that take a path (``torch.save``, safetensors' ``save_file``, ``tarfile.open``). On any
    error (``KeyboardInterrupt`` too) the temporary file is removed and `target` is unchanged.

    Raises:
        DiskFullError: the disk filled up while writing; nothing was left behind.
    """
    target = Path(target)
    tmp = temp_path(target)
    try:
        yield tmp
        _fsync_file(tmp)
        commit(tmp, target)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full(exc, target) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], *, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Yield a file object open on a temporary file beside `target`, renamed over it when the block succeeds.

    Args:
        target: the final path (its folder must exist).
        mode: ``"wb"`` (bytes) or ``"w"`` (text).
        encoding: for text mode; ``"utf-8"`` when not given.

    Raises:
        DiskFullError: the disk filled up while writing; nothing was left behind.
    """
    if mode not in ("w", "wb"):
        raise UnsupportedError(f"atomic_write writes new files: mode must be 'w' or 'wb', not {mode!r}")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(target) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f
        f.flush()


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `target` atomically (see `atomic_write`)."""
    with atomic_write(target) as f:
        f.write(data)


def atomic_write_text(target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write `text` to `target` atomically (see `atomic_write`)."""
    with atomic_write(target, mode="w", encoding=encoding) as f:
        f.write(text)
