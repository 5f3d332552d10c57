"""The one error hierarchy of zoo: every class also inherits the matching builtin.

Messages say what happened and what to do next; errors carry the fields a caller may want to act on.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ChecksumError",
    "DownloadError",
    "InputError",
    "OfflineError",
    "PluginError",
    "RandomWeightsWarning",
    "SkippedInputsWarning",
    "UnknownModelError",
    "UnsupportedError",
    "UntrustedCodeError",
    "ZooError",
    "ZooWarning",
]


class ZooError(Exception):
    """Base class of every error zoo raises on purpose; the CLI turns it into one line and exit code 1."""


class UnknownModelError(ZooError, LookupError):
    """A model name, weights tag or plugin that does not exist.

    Attributes:
        name: the name that was asked for.
        suggestions: close matches, best first.
    """

    def __init__(self, message: str, *, name: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.suggestions = tuple(suggestions)


class PluginError(ZooError):
    """A plugin that cannot be imported, is malformed, or declares something invalid."""


class ChecksumError(ZooError, ValueError):
    """Bytes whose sha256 (or size) is not the one recorded for them.

    Attributes:
        path: the file that was checked (already removed if it was a temporary file).
        expected: the expected digest (or digest prefix, or size).
        got: what was found.
    """

    def __init__(self, message: str, *, path: str, expected: str, got: str) -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.got = got


class DownloadError(ZooError, OSError):
    """A download that failed on every source (network error, HTTP error, truncated body)."""


class OfflineError(ZooError, ConnectionError):
    """A file is needed from the network while `ZOO_OFFLINE=1` is set."""


class UntrustedCodeError(ZooError, PermissionError):
    """Code from the network would run, but nobody trusted its source."""


class UnsupportedError(ZooError, NotImplementedError):
    """A valid request that this model, task or format does not support."""


class InputError(ZooError, ValueError):
    """Input data zoo cannot use (missing file, not an image, wrong shape)."""


class ZooWarning(UserWarning):
    """Base class of the warnings zoo issues (`warnings.simplefilter("ignore", zoo.ZooWarning)` silences them)."""


class RandomWeightsWarning(ZooWarning):
    """A model predicts with randomly initialised weights (loaded without a weights tag, or as `name:none`)."""


class SkippedInputsWarning(ZooWarning):
    """Some inputs of a folder, glob or list could not be read and were skipped; the results' `skipped` names them."""
