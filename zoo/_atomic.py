"""Atomic file writes: a temporary file in the target's folder, fsynced, renamed over the target.

PROVISIONAL (branch `ext`): the helper named in issue 11's split, owned by the `errors` branch; at merge its
version replaces this file. Implemented over the store's own temporary-path and rename helpers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a unique temporary file beside `path`, moved over it only if the block succeeds.

    The file is flushed and fsynced before the rename and gets the user's umask mode; on any error the
    temporary file is removed and `path` is left as it was.
    """
    from zoo.store.cache import move_into_place, temp_path

    target = Path(path)
    tmp = temp_path(target)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        move_into_place(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path, mode="wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, mode="w") as f:
        f.write(text)
