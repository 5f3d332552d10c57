"""Moving weights between machines: `zoo cache export` and `zoo cache import`, for air-gapped machines.

An export is a folder or a tar (`.tar`, `.tar.gz`, `.tgz`) holding ``weights/<file>`` and its
``weights/<file>.record.json``. An import verifies every file before it enters the cache: a file named
like a known artifact must match its declared hash; any other file must match the record it came with,
or the hash of a known artifact; anything else is refused. Archives with unsafe member names, links or
devices are refused whole, before anything is written.

A conversion (a file whose record names an origin, or the safetensors copy of a known pickle) is never
taken on the word of its record: it is made again from its origin, once the origin itself is verified
in the cache, and the copy in the archive is only compared with it. Without its origin it is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO

from zoo._atomic import atomic_path
from zoo.errors import ChecksumError, DownloadError, InputError, ZooError
from zoo.specs import Artifact, validate_filename
from zoo.store import CacheEntry, Store, pins
from zoo.store.archive import is_tar, member_path, open_tar, regular_members
from zoo.store.cache import CHUNK, CacheRecord, temp_path
from zoo.store.locking import ArtifactLock
from zoo.store.maintenance import entries
from zoo.store.sources import Fetched, discard

__all__ = ["ImportReport", "export", "import_paths", "is_archive"]

_RECORD = ".record.json"


def is_archive(path: Path) -> bool:
    """True for names `export` writes as a tar: `.tar`, `.tar.gz`, `.tgz`."""
    return path.name.endswith((".tar", ".tar.gz", ".tgz"))


def export(store: Store, dest: Path, names: Iterable[str] | None = None) -> list[str]:
    """Copy cached files and their records to a folder or a tar; returns the file names exported.

    Raises:
        InputError: a name that is not cached, or a destination that cannot be written.
    """
    wanted = None if names is None else [validate_filename(n) for n in names]
    chosen = [e.name for e in entries(store) if wanted is None or e.name in wanted]
    missing = sorted(set(wanted or ()) - set(chosen))
    if missing:
        raise InputError(f"Not in the cache: {', '.join(missing)}. See `zoo cache ls`.")
    files = [(n, store.weights_dir / n) for n in chosen] + [
        (n + _RECORD, store.weights_dir / (n + _RECORD)) for n in chosen
    ]
    try:
        if is_archive(dest):
            _export_tar(dest, files)
        else:
            (dest / "weights").mkdir(parents=True, exist_ok=True)
            for name, path in files:
                shutil.copyfile(path, dest / "weights" / name)
    except OSError as exc:
        if isinstance(exc, ZooError):
            raise
        raise InputError(
            f"Cannot export to {dest}: {exc.strerror or exc}. Choose a folder you can write.", path=dest
        ) from None
    return chosen


def _export_tar(dest: Path, files: list[tuple[str, Path]]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if dest.name.endswith(("gz", "tgz")) else "w"

    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o644
        return info

    pax = tarfile.PAX_FORMAT
    with atomic_path(dest) as tmp, tarfile.open(tmp, mode, format=pax) as tar:  # type: ignore[call-overload]
        for name, path in files:
            tar.add(path, arcname=f"weights/{name}", recursive=False, filter=anonymous)


@dataclass
class ImportReport:
    """What `import_paths` did.

    Attributes:
        imported: cache file names installed.
        refused: `(file, reason)` for every file left out.
    """

    imported: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    conversions: list[tuple[str, str, int]] = field(default_factory=list, repr=False)


#: Makes cache file `name` again from its verified origin (a conversion); returns the entry, or None when
#: it does not know `name` or its origin is not in the cache. Raises `ZooError` when making it fails.
Rebuild = Callable[[str], "CacheEntry | None"]


def import_paths(
    store: Store, sources: Iterable[Path], known: Iterable[Artifact] = (), rebuild: Rebuild | None = None
) -> ImportReport:
    """Import weight files from folders, tar archives and single files into the cache, verified.

    Args:
        store: the cache to fill.
        sources: folders (their files and ``weights/`` files), tar archives, or weight files.
        known: the artifacts of the installed plugins, to match files against.
        rebuild: makes a conversion again from its origin (see `Rebuild`); without it every conversion
            is refused.

    Raises:
        InputError: an archive with unsafe member names, links or devices (nothing of it is imported),
            or a source that does not exist.
    """
    matcher = _Matcher(list(known), rebuild)
    report = ImportReport()
    for source in sources:
        if source.is_dir():
            _import_dir(store, source, matcher, report)
        elif source.is_file() and is_tar(source):
            _import_tar(store, source, matcher, report)
        elif source.is_file():
            record = CacheRecord.load(source.with_name(source.name + _RECORD))
            with open(source, "rb") as f:
                _import_one(store, f, source.name, record, f"import:{source}", matcher, report)
        else:
            raise InputError(f"{source}: no such file or folder.")
    for name, sha, size in report.conversions:  # after every origin is in
        _rebuild_one(store, name, sha, size, rebuild, report)
    return report


def _rebuild_one(store: Store, name: str, sha: str, size: int, rebuild: Rebuild | None, report: ImportReport) -> None:
    try:
        entry = rebuild(name) if rebuild is not None else None
    except ZooError as exc:
        report.refused.append((name, f"a conversion, and making it again from its origin failed: {exc}"))
        return
    if entry is None:
        report.refused.append(
            (
                name,
                "a conversion, which zoo makes again from its origin rather than trust its record, and its origin "
                "is neither in the import nor in the cache: export the origin with it (`zoo cache export` does)",
            )
        )
    elif (entry.sha256, entry.size) != (sha, size):
        report.refused.append(
            (
                name,
                f"not the conversion of its origin (sha256 {sha[:16]}…, zoo's conversion is {entry.sha256[:16]}…): "
                f"refused; the cache holds zoo's own conversion",
            )
        )
    else:
        report.imported.append(name)


def _import_dir(store: Store, folder: Path, matcher: _Matcher, report: ImportReport) -> None:
    for base in (folder, folder / "weights"):
        if not base.is_dir() or base.is_symlink():
            continue
        for path in sorted(base.iterdir()):
            if path.name.endswith(_RECORD) or path.name.startswith("."):
                continue
            if path.is_symlink() or not path.is_file():
                if not path.is_dir():
                    report.refused.append((str(path), "a link or special file: refused"))
                continue
            record = CacheRecord.load(path.with_name(path.name + _RECORD))
            with open(path, "rb") as f:
                _import_one(store, f, path.name, record, f"import:{path}", matcher, report)


def _import_tar(store: Store, archive: Path, matcher: _Matcher, report: ImportReport) -> None:
    with open_tar(archive) as tar:
        members = list(regular_members(tar, archive=archive.name))  # refuses the whole archive when unsafe
        files, records = [], {}
        for member in members:
            if member.isdir():
                continue
            parts = member_path(member.name, archive=archive.name).parts
            if len(parts) > 2 or (len(parts) == 2 and parts[0] != "weights"):
                report.refused.append((member.name, "not at the top or in weights/: skipped"))
            elif parts[-1].endswith(_RECORD):
                records[parts[-1].removesuffix(_RECORD)] = _read_record(tar, member)
            else:
                files.append((parts[-1], member))
        for name, member in files:
            stream = tar.extractfile(member)
            if stream is not None:
                with stream:
                    _import_one(store, stream, name, records.get(name), f"import:{archive.name}", matcher, report)


def _read_record(tar: tarfile.TarFile, member: tarfile.TarInfo) -> CacheRecord | None:
    stream = tar.extractfile(member)
    if stream is None or member.size > 1 << 20:
        return None
    try:
        data = json.loads(stream.read())
        known = {f.name for f in fields(CacheRecord)}
        record = CacheRecord(**{k: v for k, v in data.items() if k in known})
        validate_filename(record.name)
        return record
    except (ValueError, TypeError, AttributeError):
        return None


class _Matcher:
    """Finds the artifact a file is, by name, by record, or by hash; tells conversions apart."""

    def __init__(self, known: list[Artifact], rebuild: Rebuild | None = None) -> None:
        self.rebuild = rebuild
        self.by_name = {a.name: a for a in known}
        self.by_sha = {a.sha256: a for a in known if a.sha256}
        self.by_prefix = [a for a in known if a.hash_prefix and not a.sha256]

    def match(self, name: str, sha: str, size: int, record: CacheRecord | None) -> tuple[Artifact | None, str]:
        if name in self.by_name:
            return self.by_name[name], ""
        if record is not None and record.name == name:
            if (record.sha256, record.size) != (sha, size):
                return None, f"its sha256 {sha[:16]}… does not match its record ({record.sha256[:16]}…): refused"
            return Artifact(name, sha256=record.sha256, size=record.size, format=record.format), ""
        found = self.by_sha.get(sha) or next((a for a in self.by_prefix if sha.startswith(a.hash_prefix or "-")), None)
        if found is not None:
            return found, ""
        return None, "matches no known artifact and came with no record: put it in a ZOO_WEIGHTS_PATH folder instead"


def _import_one(
    store: Store,
    stream: IO[bytes],
    name: str,
    record: CacheRecord | None,
    origin: str,
    matcher: _Matcher,
    report: ImportReport,
) -> None:
    try:
        validate_filename(name)
    except ValueError as exc:
        report.refused.append((name, str(exc)))
        return
    part = temp_path(store.weights_dir / name)
    digest, size = hashlib.sha256(), 0
    try:
        with open(part, "wb") as out:
            while chunk := stream.read(CHUNK * 4):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        discard(part)
        raise
    sha = digest.hexdigest()
    if name not in matcher.by_name and record is not None and record.origin_sha256 is not None:
        discard(part)  # a conversion: made again from its origin once every file is in, never installed as is
        report.conversions.append((name, sha, size))
        return
    artifact, reason = matcher.match(name, sha, size, record)
    if artifact is None:
        discard(part)
        report.refused.append((name, reason))
        return
    source = record.source if record is not None else origin
    fetched = Fetched(part, sha, size, source, record.revision if record else None)
    with ArtifactLock(store.weights_dir, artifact.name):
        artifact, pinned = pins.enforce(store.root, artifact)
        try:
            store.install(fetched, artifact, pinned=pinned)
        except (ChecksumError, DownloadError) as exc:
            report.refused.append((name, str(exc)))
            return
    report.imported.append(artifact.name)
