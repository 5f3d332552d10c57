"""Who may write a cache file: a lock per file that names its holder, and torchrun's local rank 0 only.

The lock is an optimisation (one download instead of N), never the only guard: writers use unique
temporary files and verify before renaming, because `flock` silently succeeds for everyone on some network
filesystems.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import DownloadError, ZooError
from zoo.store.cache import parts_of

__all__ = ["ArtifactLock", "is_follower", "lock_timeout", "wait_for_leader"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 600.0
#: A failure marker older than this (seconds) is from an earlier run, not from this one's rank 0.
FAILURE_WINDOW = 60.0


def lock_timeout() -> float:
    """Seconds to wait without any sign of progress from a lock's holder (``ZOO_LOCK_TIMEOUT``, default 600)."""
    raw = os.environ.get("ZOO_LOCK_TIMEOUT")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise ZooError(f"ZOO_LOCK_TIMEOUT={raw!r} is not a number of seconds.") from None


def _activity(folder: Path, name: str) -> tuple[int, ...]:
    """Changes when the holder makes progress: its partial files grow or its holder file changes."""
    stamps = []
    for path in [p.path for p in parts_of(folder, name)] + [folder / f".{name}.lock.holder"]:
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            stamps += [st.st_size, st.st_mtime_ns]
    return tuple(stamps)


class ArtifactLock:
    """An exclusive lock on one cache file, for processes and threads alike.

    While held, `.<name>.lock.holder` says who holds it (pid, host, command, since when). A waiter gives
    up only after `timeout` seconds without progress from the holder (a long download keeps it waiting),
    with a message naming the holder.
    """

    def __init__(self, folder: Path, name: str, timeout: float | None = None) -> None:
        self.folder, self.name = folder, name
        self.path = folder / f".{name}.lock"
        self.holder_path = folder / f".{name}.lock.holder"
        self.timeout = lock_timeout() if timeout is None else timeout

    def __enter__(self) -> ArtifactLock:
        from filelock import FileLock, Timeout

        self._lock = FileLock(str(self.path))
        last, deadline = _activity(self.folder, self.name), time.monotonic() + self.timeout
        while True:
            try:
                self._lock.acquire(timeout=max(0.0, min(0.5, deadline - time.monotonic())), poll_interval=0.02)
                break
            except Timeout:
                now = _activity(self.folder, self.name)
                if now != last:
                    last, deadline = now, time.monotonic() + self.timeout
                elif time.monotonic() >= deadline:
                    raise DownloadError(self._timeout_message()) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": _command()}
        with contextlib.suppress(OSError):
            self.holder_path.write_text(json.dumps(holder))
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.holder_path.unlink()
        self._lock.release()

    def holder(self) -> dict[str, Any] | None:
        """What the holder file says, or None."""
        try:
            data = json.loads(self.holder_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _timeout_message(self) -> str:
        holder = self.holder()
        if holder is None:
            who = "a process that left no holder file"
        else:
            since = datetime.fromtimestamp(float(holder.get("since", 0))).strftime("%Y-%m-%d %H:%M:%S")
            who = f"pid {holder.get('pid')} on {holder.get('host')} since {since} ({holder.get('command', '?')})"
        return (
            f"Waited {self.timeout:.0f} s for the lock on {self.name!r} without progress: it is held by {who}. "
            f"Wait for that process or stop it; if it is not running, delete {self.path} "
            f"(ZOO_LOCK_TIMEOUT sets the wait)."
        )


def _command() -> str:
    argv = [os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]] if sys.argv else ["python"]
    if argv[0] in {"__main__.py", "-c"}:
        argv[0] = "zoo" if "zoo" in (sys.argv[0] or "") else "python"
    return " ".join(argv)[:120]


def local_rank() -> int | None:
    """This process's ``LOCAL_RANK`` under torchrun with several local processes, else None."""
    raw = os.environ.get("LOCAL_RANK")
    if raw is None or os.environ.get("LOCAL_WORLD_SIZE", "2") == "1":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def is_follower() -> bool:
    """True for local ranks other than 0: they wait for rank 0's files instead of fetching."""
    rank = local_rank()
    return rank is not None and rank != 0


def mark_failure(folder: Path, name: str, error: BaseException | None) -> None:
    """As local rank 0, tell waiting ranks that fetching `name` failed (None clears the mark)."""
    if local_rank() != 0:
        return
    path = folder / f".{name}.failed"
    with contextlib.suppress(OSError):
        if error is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(json.dumps({"error": str(error), "time": time.time(), "pid": os.getpid()}))


def wait_for_leader(check: Callable[[], T | None], folder: Path, name: str, timeout: float | None = None) -> T:
    """As a non-zero local rank, wait until `check()` returns a value (local rank 0 made the file).

    Raises:
        DownloadError: rank 0 reported a failure, or nothing happened for `timeout` seconds.
    """
    timeout = lock_timeout() if timeout is None else timeout
    start = time.time()
    last, deadline = _activity(folder, name), time.monotonic() + timeout
    while (result := check()) is None:
        failure = _failure(folder, name)
        if failure is not None and float(failure.get("time", 0)) >= start - FAILURE_WINDOW:
            raise DownloadError(f"Local rank 0 failed to fetch {name!r}: {failure.get('error')}")
        now = _activity(folder, name)
        if now != last:
            last, deadline = now, time.monotonic() + timeout
        elif time.monotonic() >= deadline:
            raise DownloadError(
                f"Waited {timeout:.0f} s for local rank 0 to fetch {name!r} (this is LOCAL_RANK "
                f"{os.environ.get('LOCAL_RANK')}; only rank 0 downloads). Is rank 0 loading the same model?"
            )
        time.sleep(0.05)
    return result


def _failure(folder: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / f".{name}.failed").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
