"""Reading tar archives safely: member names validated before anything is written, links skipped, no devices.

Used for GitHub repo archives (`zoo.store.github`) and `zoo cache import FILE.tar`. Nothing here ever
calls `TarFile.extract*`: each regular file is streamed to a path built from its validated name under
the destination, so no member can write outside it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from zoo.errors import InputError

__all__ = ["MAX_MEMBERS", "archive_commit", "extract_tree", "is_tar", "member_path", "open_tar", "regular_members"]

log = logging.getLogger(__name__)
MAX_MEMBERS = 200_000
MAX_BYTES = 20 << 30
_DRIVE = re.compile(r"^[A-Za-z]:")


def member_path(name: str, *, archive: str = "archive") -> PurePosixPath:
    """The relative path a member name stands for.

    Raises:
        InputError: an absolute path, a drive letter, a backslash, `..`, or a control character.
    """
    if (
        not name
        or name.startswith("/")
        or any(_DRIVE.match(part) for part in name.split("/"))  # "./C:x" too: Windows joins "C:x" as a drive
        or "\\" in name
        or any(ord(c) < 32 for c in name)
        or any(part == ".." for part in name.split("/"))
    ):
        raise InputError(f"{archive} holds an unsafe member name {name!r} (absolute, '..' or a drive): refused.")
    path = PurePosixPath(*[p for p in name.split("/") if p not in {"", "."}])
    if not path.parts:
        raise InputError(f"{archive} holds an empty member name: refused.")
    return path


def regular_members(tar: tarfile.TarFile, *, archive: str, skip_special: bool = False) -> Iterator[tarfile.TarInfo]:
    """Every file and folder member, names validated.

    Args:
        skip_special: skip links with a warning (repo snapshots: GitHub archives hold symbolic links, and a
            link never created cannot point anywhere) instead of refusing the whole archive (imports).
            Devices and fifos are refused either way.

    Raises:
        InputError: an unsafe name, a link (unless skipped), a device or fifo, or too many members or bytes.
    """
    count = total = 0
    for member in tar:
        member_path(member.name, archive=archive)
        count += 1
        total += max(member.size, 0)
        if count > MAX_MEMBERS or total > MAX_BYTES:
            raise InputError(f"{archive} has more than {MAX_MEMBERS} members or {MAX_BYTES >> 30} GiB: refused.")
        if member.isfile() or member.isdir():
            yield member
            continue
        link = member.issym() or member.islnk()
        if not link or not skip_special:
            kind = f"a link to {member.linkname!r}" if link else "a device or fifo"
            raise InputError(f"{archive} holds {member.name!r}, {kind}: refused, nothing was extracted.")
        log.warning("skipping %s in %s: a link to %s", member.name, archive, member.linkname)


def extract_tree(archive: Path, dest: Path, *, strip_top: bool = True) -> int:
    """Extract files and folders of a tar archive into `dest` (created), skipping links.

    With `strip_top`, the single top-level folder (GitHub's `repo-<ref>/`) is dropped. Returns the number
    of files written. The caller removes `dest` when this raises.

    Raises:
        InputError: an unsafe member (see `regular_members`), a name used twice or both as a file and a
            folder, or an archive that cannot be read.
    """
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    kinds: dict[PurePosixPath, str] = {}
    try:
        with open_tar(archive) as tar:
            for member in regular_members(tar, archive=archive.name, skip_special=True):
                rel = member_path(member.name, archive=archive.name)
                if strip_top:
                    if len(rel.parts) == 1:
                        continue
                    rel = PurePosixPath(*rel.parts[1:])
                _claim(kinds, rel, "folder" if member.isdir() else "file", archive.name)
                target = dest.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
                written += 1
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        why = " ".join(str(exc).split())
        raise InputError(f"{archive.name} is not a readable tar archive ({why}): nothing was extracted.") from None
    except OSError as exc:
        raise InputError(f"Cannot extract {archive.name} ({exc.strerror or exc}): nothing was extracted.") from None
    return written


def _claim(kinds: dict[PurePosixPath, str], rel: PurePosixPath, kind: str, archive: str) -> None:
    """Record `rel` as a file or folder; refuse a name used twice, or as both a file and a folder."""
    for parent in rel.parents:
        if kinds.get(parent) == "file":
            raise InputError(f"{archive} holds {parent} as a file and as a folder: refused, nothing was extracted.")
        kinds.setdefault(parent, "folder")
    seen = kinds.get(rel)
    if seen is not None and (seen != kind or kind == "file"):
        what = f"as a {seen} and as a {kind}" if seen != kind else "twice"
        raise InputError(f"{archive} holds {rel} {what}: refused, nothing was extracted.")
    kinds[rel] = kind


def archive_commit(archive: Path) -> str | None:
    """The commit `git archive` wrote in the archive's pax global header (GitHub archives carry it)."""
    try:
        with open_tar(archive) as tar:
            tar.next()
            comment = tar.pax_headers.get("comment", "")
    except (tarfile.TarError, OSError):
        return None
    return comment if re.fullmatch(r"[0-9a-f]{40}", comment or "") else None


#: Longest long-name, long-link or pax header data read from an archive (tarfile reads it whole, allocating
#: the length the header declares: a 1.5 KB archive declaring 1 TiB would allocate 1 TiB).
MAX_HEADER_DATA = 1 << 20
_HEADER_DATA_TYPES = {
    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
}  # fmt: skip


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses header data (long names, pax records) longer than `MAX_HEADER_DATA`."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _HEADER_DATA_TYPES and not 0 <= self.size <= MAX_HEADER_DATA:
            raise tarfile.ReadError(f"a header of {self.size} bytes, more than {MAX_HEADER_DATA}")
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]


def open_tar(archive: Path) -> tarfile.TarFile:
    """`tarfile.open(archive)` for reading, refusing long-name and pax headers over `MAX_HEADER_DATA` bytes.

    Raises:
        tarfile.ReadError: not a tar archive (compressed or not), or an oversized header (when it is met).
    """
    return tarfile.open(archive, tarinfo=_BoundedTarInfo)


def is_tar(path: Path) -> bool:
    """`tarfile.is_tarfile` without its allocation of whatever length a long-name or pax header declares."""
    try:
        with open_tar(path):
            return True
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False
