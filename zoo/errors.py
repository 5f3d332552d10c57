"""The one error hierarchy of zoo: every class also inherits the matching builtin.

Messages say what happened and what to do next, in one line; errors carry the fields a caller may want to
act on. The CLI turns any `ZooError` into ``error: <message>`` and exit code 1; any other exception
reaching it is a bug. No built-in exception escapes a public call on purpose: each is one of these.

```text
Exception
└── ZooError                                  base; `except zoo.ZooError` catches every error below
    ├── UnknownModelError (LookupError)       a model name, weights tag, task or plugin that does not exist
    │                                         (zoo.load/info/fetch, `zoo info`). Fields: name, suggestions
    ├── PluginError                           a plugin that cannot be imported, is malformed, or declares
    │                                         something invalid or twice (two plugins, one source scheme).
    │                                         Field: plugin
    ├── InputError (ValueError)               data or arguments zoo cannot use: a missing or unreadable file,
    │                                         not an image, a bad builder keyword, an unsafe file name, a bad
    │                                         digest, URL or pin, a bad CLI option. Field: path (or None)
    ├── ChecksumError (ValueError)            bytes whose sha256 or size is not the recorded one (a download,
    │                                         an import, a lock file). Fields: path, expected, got
    ├── DownloadError (OSError)               a fetch that failed on every source: network or HTTP error, a
    │   │                                     truncated body, no source for the URL's scheme, a lock timeout.
    │   │                                     Fields: url (or None), status (the HTTP status, or None)
    │   └── zoo.store.http.Unreachable        no connection at all (DNS, refused): a no-network hint follows
    ├── DiskFullError (OSError)               a write that ran out of space (ENOSPC, EFBIG, EDQUOT); nothing
    │                                         half-written is left. Field: path
    ├── OfflineError (ConnectionError)        a file is needed from the network while ZOO_OFFLINE=1 is set
    ├── UntrustedCodeError (PermissionError)  code from the network would run, but nobody trusted its source
    │   └── zoo_hub SandboxError              a torch.hub repo did something its sandbox forbids
    └── UnsupportedError (NotImplementedError) a valid request this model, task or format does not support
        └── zoo.store.formats.FormatError     a file that is not a complete file of its declared format

Warning
└── UserWarning
    └── ZooWarning                            base of zoo's warnings
        ├── RandomWeightsWarning              predicting with randomly initialised weights
        └── SkippedInputsWarning              some inputs of a folder, glob or list were skipped
```

Every constructor takes the message first; the fields are keyword arguments (optional, except where a
class has always required them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = [
    "ChecksumError",
    "DiskFullError",
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
    """A plugin that cannot be imported, is malformed, or declares something invalid.

    Attributes:
        plugin: the name of the plugin at fault (the entry point or `Plugin` name), or None when unknown.
    """

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


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
    """A download that failed on every source (network error, HTTP error, truncated body).

    Attributes:
        url: the URL that failed last (after every mirror), or None when no single URL is at fault.
        status: the HTTP status code the server answered, or None (no HTTP answer, or not HTTP).
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class DiskFullError(ZooError, OSError):
    """A write that ran out of disk space; the temporary file was removed and the target left as it was.

    Attributes:
        path: the file that was being written.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class OfflineError(ZooError, ConnectionError):
    """A file is needed from the network while `ZOO_OFFLINE=1` is set."""


class UntrustedCodeError(ZooError, PermissionError):
    """Code from the network would run, but nobody trusted its source."""


class UnsupportedError(ZooError, NotImplementedError):
    """A valid request that this model, task or format does not support."""


class InputError(ZooError, ValueError):
    """Input data or arguments zoo cannot use (missing file, not an image, wrong shape, a bad name or option).

    Attributes:
        path: the file at fault, or None when no file is involved.
    """

    def __init__(self, message: str = "", *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class ZooWarning(UserWarning):
    """Base class of the warnings zoo issues (`warnings.simplefilter("ignore", zoo.ZooWarning)` silences them)."""


class RandomWeightsWarning(ZooWarning):
    """A model predicts with randomly initialised weights (loaded without a weights tag, or as `name:none`)."""


class SkippedInputsWarning(ZooWarning):
    """Some inputs of a folder, glob or list could not be read and were skipped; the results' `skipped` names them."""
