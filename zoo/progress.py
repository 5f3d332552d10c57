"""Progress bars and log lines on stderr that do not break each other (rich, imported only when a bar is shown).

A bar is shown only when stderr is a terminal and `ZOO_PROGRESS` is not `0`. Every bar and the CLI's log
handler share one rich console, so a log line printed while a bar runs lands above the bar.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["console", "log_handler", "progress_bar", "progress_enabled"]


def progress_enabled() -> bool:
    """True when bars may be drawn: stderr is a terminal and `ZOO_PROGRESS` (or the config's `progress`) is not off."""
    from zoo import settings

    if settings.progress() is False:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


_console: Any = None


def console() -> Any:
    """The one rich console on stderr that bars and log lines share (made anew when `sys.stderr` is replaced)."""
    global _console
    if _console is None or _console.file is not sys.stderr:
        from rich.console import Console

        _console = Console(file=sys.stderr)
    return _console


def log_handler() -> Any:
    """A logging handler that prints through `console()`, above any live bar (rich's `RichHandler`)."""
    from rich.logging import RichHandler

    return RichHandler(console=console(), show_time=False, show_path=False, markup=False)


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A bar of `total` steps while the block runs; yields `advance(n)`. A no-op when `total` < 2 or bars are off."""
    if total < 2 or not progress_enabled():
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.update(task, advance=n)
