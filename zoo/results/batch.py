"""`ResultList` and `SkippedInput`: what a prediction over many inputs returns when some could not be read."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zoo.errors import InputError, SkippedInputsWarning

__all__ = ["ON_ERROR", "ResultList", "SkippedInput", "check_on_error", "finish", "should_raise"]

#: The values `on_error=` takes (None: "raise" for inputs named by the caller, "skip" for files a folder or glob found).
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class SkippedInput:
    """An input that was skipped because it could not be read.

    Attributes:
        source: the input's name (a path, or `<input 3>`).
        error: the one-line reason, as the `InputError` said it.
    """

    source: str
    error: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready dict: `{"source": ..., "error": ...}`."""
        return {"source": self.source, "error": self.error}


class ResultList(list):  # type: ignore[type-arg]
    """The results of a prediction over many inputs: a plain list of results, plus `skipped`.

    Attributes:
        skipped: the inputs that could not be read and were left out, in input order (empty when all were read).
    """

    def __init__(self, results: Iterable[Any] = (), skipped: Iterable[SkippedInput] = ()) -> None:
        super().__init__(results)
        self.skipped: tuple[SkippedInput, ...] = tuple(skipped)


def check_on_error(on_error: str | None) -> None:
    """Refuse an `on_error=` value other than None, "raise" or "skip"."""
    if on_error is not None and on_error not in ON_ERROR:
        raise InputError(f"on_error={on_error!r} is not valid: use 'raise' or 'skip'.")


def should_raise(on_error: str | None, found: bool, is_batch: bool) -> bool:
    """Whether an unreadable input raises: always for a single input; else as `on_error` says, by default
    only for an input the caller named (a file a folder or glob found is skipped)."""
    if not is_batch:
        return True
    return on_error == "raise" or (on_error is None and not found)


def finish(results: list[Any], skipped: list[SkippedInput], is_batch: bool) -> Any:
    """The value a task returns: the single result, or a `ResultList` that warns once when inputs were skipped."""
    if not is_batch:
        return results[0]
    if skipped:
        names = ", ".join(s.source for s in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        warnings.warn(
            SkippedInputsWarning(f"skipped {len(skipped)} unreadable input(s): {names}; see the results' .skipped"),
            stacklevel=4,  # finish <- task.predict <- Model.predict <- the caller
        )
    return ResultList(results, skipped)
