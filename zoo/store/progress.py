"""Download progress bars: rich, on stderr, only when stderr is a terminal, off with ``ZOO_PROGRESS=0``.

Every download shows one (`zoo fetch`, and the downloads `zoo.load` and `zoo predict` start), unless the
caller passes its own progress callback. While a bar is drawn, log lines (retry warnings) are printed
above it instead of inside it. rich is imported only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

from zoo.progress import console as shared_console
from zoo.progress import progress_enabled
from zoo.store.http import Progress

__all__ = ["bars", "download_bar", "enabled", "silent"]


def silent(done: int, total: int | None) -> None:
    """A progress callback that draws nothing (passing it keeps the store from drawing a bar)."""


def enabled() -> bool:
    """True when bars should be drawn: ``ZOO_PROGRESS`` unset (or 1) and stderr a terminal; never with 0."""
    return progress_enabled()


@contextlib.contextmanager
def bars(show: bool = True) -> Iterator[Callable[[str], Progress | None]]:
    """Yields `for_file(name) -> callback or None`: one rich bar per file on a terminal, None elsewhere.

    Args:
        show: False yields silent callbacks, which also keep the store from drawing its own bar (for
            `--quiet`); bars also need `enabled()`.
    """
    if not show:
        yield lambda name: silent
        return
    if not enabled():
        yield lambda name: None
        return
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn
    from rich.progress import Progress as Bars

    console = shared_console()  # the one the CLI's log handler and the other bars print through
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Bars(*columns, console=console, redirect_stdout=False) as progress, _logs_above(console):

        def for_file(name: str) -> Progress | None:
            task = progress.add_task(name, total=None)
            return lambda done, total: progress.update(task, completed=done, total=total)

        yield for_file


@contextlib.contextmanager
def download_bar(name: str) -> Iterator[Progress | None]:
    """A progress callback drawing one bar for the download of `name` (None when bars are off)."""
    with bars() as for_file:
        yield for_file(name)


@contextlib.contextmanager
def _logs_above(console: Any) -> Iterator[None]:
    """Send the root logger's stderr handlers through the console, so their lines print above the bar.

    rich's live display redirects `sys.stderr`, but a `logging.StreamHandler` keeps the stream it was
    given (``logging.basicConfig(stream=sys.stderr)``); those handlers are pointed at the console for
    the bar's lifetime and restored after.
    """
    from rich.file_proxy import FileProxy

    swapped = []
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and handler.stream in (sys.__stderr__, console.file):
            swapped.append((handler, handler.setStream(FileProxy(console, handler.stream))))
    try:
        yield
    finally:
        for handler, stream in swapped:
            proxy = handler.setStream(stream)
            if proxy is not None:
                proxy.flush()
