"""Lockfiles: which exact bytes each model's weights are, so another machine installs exactly those.

``zoo fetch NAME... --lock zoo.lock`` writes one; ``zoo fetch --locked zoo.lock`` installs what it says
or fails. The file is JSON::

    {"version": 1, "models": [{"model": "resnet18", "tag": "IMAGENET1K_V1", "file": "resnet18-f37072fd.pth",
      "format": "state_dict-pickle", "source": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
      "revision": null, "sha256": "f37072fd…", "size": 46830571}]}

`source` is the upstream file's location (``hf:org/repo@<commit>/file`` for the Hub, so `revision`
holds the commit), never a mirror's URL or a local path: mirrors stay local configuration
(``ZOO_MIRRORS``) and are applied to `source` when the lockfile is installed. `sha256` is always the
full hash of the upstream file, also where the plugin publishes only a prefix, and `size` its size.
A `hub:` model locks its code instead: the GitHub archive (`"tag": "code"`, `"format": "repo"`), its
sha256 and, in `revision`, the commit it holds; `--locked` installs those bytes only, whatever commit
another archive claims.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from zoo.errors import DownloadError, InputError
from zoo.specs import Artifact, validate_filename
from zoo.store import CacheEntry, Store, pins
from zoo.store.cache import write_json
from zoo.store.sources import source_for

__all__ = ["Locked", "lock_entry", "read_lock", "write_lock"]

VERSION = 1
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Locked:
    """One model's weights as a lockfile pins them.

    Attributes:
        model: the model name as given to `zoo fetch` (resolvable by the registry).
        tag: the canonical weights tag.
        file: the upstream file's cache name.
        format: the upstream file's format.
        source: where the upstream file was fetched from (pinned form).
        sha256: full sha256 of the upstream file.
        size: its size in bytes.
        revision: the commit `source` was resolved to, when it has one.
    """

    model: str
    tag: str
    file: str
    format: str
    source: str
    sha256: str
    size: int | None = None
    revision: str | None = None

    def artifact(self, fallback_urls: tuple[str, ...] = ()) -> Artifact:
        """The artifact to fetch: the locked source first, then the plugin's own URLs, held to `sha256`."""
        urls = tuple(dict.fromkeys(u for u in (self.source, *fallback_urls) if _fetchable(u)))
        return Artifact(self.file, urls=urls, sha256=self.sha256, size=self.size, format=self.format)


def _fetchable(url: str) -> bool:
    try:
        source_for(url)
    except DownloadError:
        return False
    return True


def lock_entry(store: Store, model: str, tag: str, artifact: Artifact, entry: CacheEntry) -> Locked:
    """The lock line for a model whose weights `artifact` were fetched as `entry` (maybe converted).

    The line names the upstream file, whatever brought it here: a mirror's URL (mirrors are local
    configuration), a `ZOO_WEIGHTS_PATH` folder or an import is replaced by the artifact's own URL, and
    the size is filled in for all of them.
    """
    record = store.record(artifact.name)
    derived = store.record(entry.path.name) if entry.in_cache and entry.path.name != artifact.name else None
    size: int | None
    if record is not None and record.origin_sha256 is None:
        sha, size, revision, came_from = record.sha256, record.size, record.revision, record.source
    elif derived is not None and derived.origin_sha256:
        sha, size, revision, came_from = derived.origin_sha256, derived.origin_size, entry.revision, None
    else:
        sha, size, revision, came_from = entry.sha256, entry.size, entry.revision, entry.source
    if size is None:
        size = _size_of(store, artifact, sha)
    return Locked(model, tag, artifact.name, artifact.format, _upstream(artifact, came_from), sha, size, revision)


def _upstream(artifact: Artifact, came_from: str | None) -> str:
    """The artifact's own URL the bytes stand for (a Hub file keeps its commit-pinned `hf:` form)."""
    if came_from is not None and (
        came_from in artifact.urls or (came_from.startswith("hf:") and _fetchable(came_from))
    ):
        return came_from
    return next((url for url in artifact.urls if _fetchable(url)), "")


def _size_of(store: Store, artifact: Artifact, sha256: str) -> int | None:
    """The size of the upstream file with this sha256, from the spec, its pin, or a local copy."""
    if artifact.size is not None:
        return artifact.size
    pinned = pins.read_pins(store.root).get(artifact.name, {})
    if pinned.get("sha256") == sha256 and isinstance(pinned.get("size"), int):
        return int(pinned["size"])
    entry = store.local_entry(replace(artifact, sha256=sha256))
    return entry.size if entry is not None else None


def write_lock(path: Path, models: list[Locked]) -> None:
    """Write a lockfile atomically."""
    write_json(path.absolute(), {"version": VERSION, "models": [asdict(m) for m in models]})


def read_lock(path: Path) -> list[Locked]:
    """Read and validate a lockfile.

    Raises:
        InputError: missing, not JSON, another version, or an entry with a bad file name or sha256.
    """
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"No lockfile at {path}: write one with `zoo fetch NAME... --lock {path}`.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a zoo lockfile ({exc}).", path=path) from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("models"), list):
        raise InputError(f"{path} is not a version {VERSION} zoo lockfile.", path=path)
    out = []
    for item in data["models"]:
        try:
            locked = Locked(**item)
            validate_filename(locked.file)
            if not _SHA.fullmatch(locked.sha256):
                raise InputError(f"sha256 {locked.sha256!r} is not a full sha256")
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: bad entry {item!r}: {exc}", path=path) from None
        out.append(locked)
    return out
