"""Looking after the cache: list, measure, remove, prune and re-verify entries (what `zoo cache` runs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from zoo.specs import validate_filename
from zoo.store import Store, pins
from zoo.store.cache import CacheRecord, hash_file, now, parts_of
from zoo.store.locking import ArtifactLock

__all__ = ["VerifyResult", "disk_usage", "entries", "prune", "remove", "verify"]

#: Folders under the root that `zoo cache rm --all` empties (the config file is never touched).
CACHE_FOLDERS = ("weights", "repos", "quarantine", "hf", "torch", "ultralytics")


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-hashing one entry.

    Attributes:
        name: file name in the cache.
        status: "ok", "corrupt" (sha256 or size differs from the record, or a conversion differs from what
            its origin gives: quarantined), "missing", or "unverifiable" (a conversion whose origin is gone).
        detail: what was found.
        quarantined: where the file went, for corrupt entries.
    """

    name: str
    status: str
    detail: str = ""
    quarantined: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _records(store: Store) -> list[CacheRecord]:
    folder = store.weights_dir
    out = []
    for path in sorted(folder.glob("*.record.json")):
        record = CacheRecord.load(path)
        if record is not None:
            out.append(record)
    return out


def entries(store: Store) -> list[CacheRecord]:
    """The records of every cached file whose record and size agree, sorted by name."""
    return [record for record in _records(store) if store.cached(record.name) is not None]


def _tree_size(path: Path, seen: set[tuple[int, int]]) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(folder, name))
                if (st.st_dev, st.st_ino) not in seen:  # hard links (hf blobs) count once
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


def disk_usage(store: Store) -> dict[str, int]:
    """Bytes on disk per part of the cache: weights, partial downloads, repos, quarantine, hf, torch, ultralytics."""
    seen: set[tuple[int, int]] = set()
    parts = sum(p.path.stat().st_size for p in parts_of(store.weights_dir) if p.path.is_file())
    usage = {"weights": _tree_size(store.weights_dir, seen) - parts, "partial": parts}
    for name in CACHE_FOLDERS[1:]:
        usage[name] = _tree_size(store.root / name, seen)
    usage["total"] = sum(usage.values())
    return usage


def remove(store: Store, names: list[str] | None) -> list[str]:
    """Remove cached files (with their records and pins), or everything with `names=None`.

    Returns:
        The file names removed (with `None`: the folders emptied).

    Raises:
        ValueError: an unsafe name (checked before any filesystem access).
    """
    if names is None:
        for folder in CACHE_FOLDERS:
            shutil.rmtree(store.root / folder, ignore_errors=True)
        (store.root / "pins.json").unlink(missing_ok=True)
        return list(CACHE_FOLDERS)
    for name in names:
        validate_filename(name)
    removed = []
    for name in names:
        with ArtifactLock(store.weights_dir, name):
            hit = False
            for path in (store.weights_dir / name, store.weights_dir / f"{name}.record.json"):
                if path.exists():
                    path.unlink()
                    hit = True
        if hit:
            removed.append(name)
    pins.forget(store.root, names)
    return removed


def prune(store: Store, older_than_days: float | None = None) -> dict[str, list[str]]:
    """Remove what no one needs: partial files of dead processes, the quarantine, and with
    `older_than_days`, entries not fetched or read for that many days.

    Returns:
        ``{"partial": [...], "quarantine": [...], "entries": [...]}``: the names removed.
    """
    report: dict[str, list[str]] = {"partial": [], "quarantine": [], "entries": []}
    for part in parts_of(store.weights_dir):
        if part.abandoned():
            part.remove()
            report["partial"].append(part.path.name)
    quarantine = store.root / "quarantine"
    if quarantine.is_dir():
        for path in sorted(quarantine.iterdir()):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            if not path.name.endswith((".record.json", ".reason.txt")):
                report["quarantine"].append(path.name)
    if older_than_days is not None:
        limit = time.time() - older_than_days * 86400
        stale = []
        for entry in entries(store):
            with contextlib.suppress(FileNotFoundError):
                used = max(entry.fetched, (store.weights_dir / entry.name).stat().st_atime)
                if used < limit:
                    stale.append(entry.name)
        report["entries"] = remove(store, stale)
    return report


#: Re-checks a cached conversion against its origin: None (not a known conversion), or (status, detail).
Recheck = Callable[[CacheRecord], "tuple[str, str] | None"]


def verify(store: Store, recheck: Recheck | None = None) -> list[VerifyResult]:
    """Re-hash every cached file against its record, offline; quarantine the ones that differ.

    A record without its file is fine when a converted file names it as origin (the pickle was replaced
    by its safetensors copy); otherwise it is reported as "missing". With `recheck`, a conversion is
    also compared with what converting its origin gives now (a record never vouches for itself): one
    that differs is "corrupt" and quarantined, one whose origin is gone is "unverifiable".

    A read-only cache is verified all the same: what cannot be written (the verified time, the
    quarantine) is said in the detail instead.
    """
    records = _records(store)
    origins = {r.origin_sha256 for r in records if r.origin_sha256}
    results = []
    for record in records:
        path = store.weights_dir / record.name
        if not path.is_file():
            if record.sha256 not in origins:
                results.append(VerifyResult(record.name, "missing", "the record has no file"))
            continue
        sha, size = hash_file(path)
        if (sha, size) != (record.sha256, record.size):
            detail = f"sha256 {sha[:16]}… ({size} bytes), recorded {record.sha256[:16]}… ({record.size} bytes)"
            results.append(_bad(store, record.name, "corrupt", detail))
            continue
        checked = recheck(record) if recheck is not None else None
        if checked is not None and checked[0] != "ok":
            status, detail = checked
            results.append(
                _bad(store, record.name, status, detail)
                if status == "corrupt"
                else VerifyResult(record.name, status, detail)
            )
            continue
        try:
            replace(record, verified=now()).write(store.weights_dir)
        except OSError as exc:
            results.append(VerifyResult(record.name, "ok", f"not marked verified: {exc.strerror or exc}"))
            continue
        results.append(VerifyResult(record.name, "ok"))
    return results


def _bad(store: Store, name: str, status: str, detail: str) -> VerifyResult:
    """A bad entry, quarantined when the cache can be written."""
    try:
        moved = store.quarantine(name, f"zoo cache verify: {detail}")
    except OSError as exc:
        return VerifyResult(name, status, f"{detail}; not quarantined: {exc.strerror or exc}")
    return VerifyResult(name, status, detail, str(moved) if moved else None)
