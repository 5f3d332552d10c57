"""Reading tar archives safely: member names validated before anything is written, no links, no devices.

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
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from zoo.errors import InputError

__all__ = ["MAX_MEMBERS", "archive_commit", "extract_tree", "member_path", "regular_members"]

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
        skip_special: skip links, devices and fifos with a warning (repo snapshots) instead of refusing
            the whole archive (imports).

    Raises:
        InputError: an unsafe name, a special member (unless skipped), or too many members or bytes.
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
        kind = "link" if member.issym() or member.islnk() else "device or fifo"
        if not skip_special:
            raise InputError(f"{archive} holds {member.name!r}, a {kind}: archives with links or devices are refused.")
        log.warning("skipping %s in %s: a %s", member.name, archive, kind)


def extract_tree(archive: Path, dest: Path, *, strip_top: bool = True) -> int:
    """Extract files and folders of a tar archive into `dest` (created), skipping links and devices.

    With `strip_top`, the single top-level folder (GitHub's `repo-<ref>/`) is dropped. Returns the number
    of files written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    with tarfile.open(archive) as tar:
        for member in regular_members(tar, archive=archive.name, skip_special=True):
            rel = member_path(member.name, archive=archive.name)
            if strip_top:
                if len(rel.parts) == 1:
                    continue
                rel = PurePosixPath(*rel.parts[1:])
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                continue
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
            written += 1
    return written


def archive_commit(archive: Path) -> str | None:
    """The commit `git archive` wrote in the archive's pax global header (GitHub archives carry it)."""
    try:
        with tarfile.open(archive) as tar:
            tar.next()
            comment = tar.pax_headers.get("comment", "")
    except (tarfile.TarError, OSError):
        return None
    return comment if re.fullmatch(r"[0-9a-f]{40}", comment or "") else None
