"""GitHub repo snapshots for torch.hub repos: archives fetched through the store, extracted safely, pinned.

The hub plugin calls `repo_snapshot(owner, repo, ref)` and gets a folder with the repo's files at one
commit (``hubconf.py`` at its top), without ever running `git` or torch.hub's own downloader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from zoo import settings
from zoo.errors import ChecksumError, InputError
from zoo.specs import Artifact, validate_filename
from zoo.store.archive import archive_commit, extract_tree
from zoo.store.cache import temp_path, write_json
from zoo.store.http import Progress
from zoo.store.locking import ArtifactLock

if TYPE_CHECKING:
    from zoo.store.core import Store

__all__ = ["archive_artifact", "repo_snapshot"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
MARKER = ".zoo-snapshot.json"
#: Per repo, the sha256 of the archive first fetched for each commit (`<root>/repos/{owner}/{repo}/archives.json`).
ARCHIVE_PINS = "archives.json"


def _check(owner: str, repo: str, ref: str) -> None:
    for what, value, pattern in (("owner", owner, _NAME), ("repo", repo, _NAME), ("ref", ref, _REF)):
        if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value or value.endswith((".", "/")):
            raise InputError(
                f"unsafe GitHub {what} {value!r}: use letters, digits, '.', '_', '-' (and '/' in refs) only"
            )


def archive_artifact(owner: str, repo: str, ref: str) -> Artifact:
    """The store artifact of a repo's archive at `ref` (`https://github.com/{owner}/{repo}/archive/{ref}.tar.gz`)."""
    _check(owner, repo, ref)
    name = validate_filename(f"github-{owner}-{repo}-{ref.replace('/', '+')}.tar.gz")
    return Artifact(name, urls=(f"https://github.com/{owner}/{repo}/archive/{ref}.tar.gz",), format="repo")


def repo_snapshot(
    owner: str,
    repo: str,
    ref: str = "main",
    *,
    refresh: bool = False,
    store: Store | None = None,
    progress: Progress | None = None,
) -> Path:
    """A GitHub repo's files at `ref`, extracted from its archive and pinned to the commit.

    The archive ``https://github.com/{owner}/{repo}/archive/{ref}.tar.gz`` is fetched like any artifact
    (``ZOO_MIRRORS`` applies; verified, resumable, locked, offline-aware, exportable with `zoo cache
    export`). Its commit is read from the archive (``git archive`` stores it in the pax header) and the
    files are extracted to ``<root>/repos/{owner}/{repo}/{commit}``: member names are validated, links
    and devices are skipped, nothing is written outside that folder. The ref's commit is remembered, so
    a branch or tag keeps resolving to the same commit (offline too) until `refresh=True`.

    Args:
        owner: GitHub user or organisation, e.g. ``"pytorch"``.
        repo: repository name, e.g. ``"vision"``.
        ref: branch, tag or full 40-hex commit; a commit is checked against the archive.
        refresh: fetch the archive of a branch or tag again, to follow new commits.
        store: the `zoo.store.Store` to use (default: the current settings' one).
        progress: called with (bytes done, total) while the archive downloads.

    Returns:
        The snapshot folder (``hubconf.py`` at its top for torch.hub repos).

    Raises:
        InputError: an unsafe owner, repo or ref (checked before any filesystem access).
        OfflineError: ``ZOO_OFFLINE=1`` and neither the snapshot nor its archive is cached.
        DownloadError: the archive could not be fetched.
        ChecksumError: the archive is not of the commit asked for.
        InputError: the archive holds unsafe member names.
    """
    from zoo.store.core import get_store

    artifact = archive_artifact(owner, repo, ref)
    store = store or get_store()
    folder = store.root / "repos" / owner / repo
    ref_file = folder / "refs" / ref.replace("/", "+")
    if not refresh:
        known = ref if _COMMIT.fullmatch(ref) else _read(ref_file)
        if known and (folder / known / MARKER).is_file():
            return folder / known
    elif not settings.offline():
        _forget_archive(store, artifact.name)
    entry = store.fetch_entry(artifact, progress=progress)
    commit = archive_commit(entry.path) or (ref if _COMMIT.fullmatch(ref) else f"sha256-{entry.sha256[:16]}")
    if _COMMIT.fullmatch(ref) and commit != ref:
        _forget_archive(store, artifact.name)
        raise ChecksumError(
            f"The archive of {owner}/{repo} at {ref} holds commit {commit}: nothing was extracted.",
            path=str(entry.path),
            expected=ref,
            got=commit,
        )
    _bind(store, folder, artifact.name, commit, entry.sha256, entry.size, f"{owner}/{repo}", record=False)
    try:
        dest = _extract(entry.path, folder, commit, f"{owner}/{repo}@{ref}", entry.sha256)
    except InputError:
        _forget_archive(store, artifact.name)  # a hostile archive is not kept: the next try fetches anew
        raise
    _bind(store, folder, artifact.name, commit, entry.sha256, entry.size, f"{owner}/{repo}", record=True)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    write_json(ref_file, {"commit": commit, "ref": ref, "archive": artifact.name})
    return dest


def cached_ref(owner: str, repo: str, refs: tuple[str, ...], *, store: Store | None = None) -> str | None:
    """The first of `refs` whose snapshot or archive is in the cache (no network), or None."""
    from zoo.store.core import get_store

    store = store or get_store()
    folder = store.root / "repos" / owner / repo
    for ref in refs:
        known = _read(folder / "refs" / ref.replace("/", "+"))
        if (known and (folder / known / MARKER).is_file()) or store.cached(archive_artifact(owner, repo, ref).name):
            return ref
    return None


def archive_pins(folder: Path) -> dict[str, dict[str, object]]:
    """The archive sha256 first recorded for each commit of the repo whose snapshots are in `folder`."""
    import json

    try:
        data = json.loads((folder / ARCHIVE_PINS).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def _bind(
    store: Store, folder: Path, name: str, commit: str, sha256: str, size: int, repo: str, *, record: bool
) -> None:
    """Hold `commit` to the archive bytes first fetched for it (trust on first use); other bytes are refused.

    A GitHub archive names its commit itself (pax header), so the commit alone proves nothing about the
    bytes: a mirror could serve other code under a known commit. The first archive extracted for a
    commit is recorded (`record=True`, after extraction); a different one is removed from the cache and
    refused before anything is extracted.
    """
    from zoo.store.cache import now

    pinned = archive_pins(folder).get(commit)
    if pinned is not None and pinned["sha256"] != sha256:
        _forget_archive(store, name)
        raise ChecksumError(
            f"The archive of {repo} served for commit {commit[:12]} has sha256 {sha256[:16]}…, not the "
            f"{str(pinned['sha256'])[:16]}… first recorded for that commit: refused, nothing was extracted. "
            f"Check the mirror (ZOO_MIRRORS).",
            path=name,
            expected=str(pinned["sha256"]),
            got=sha256,
        )
    if pinned is None and record:
        folder.mkdir(parents=True, exist_ok=True)
        with ArtifactLock(folder, ARCHIVE_PINS):
            pins = archive_pins(folder)
            pins.setdefault(commit, {"sha256": sha256, "size": size, "archive": name, "time": now()})
            write_json(folder / ARCHIVE_PINS, pins)
        if pins[commit]["sha256"] != sha256:  # another process pinned other bytes meanwhile
            _bind(store, folder, name, commit, sha256, size, repo, record=False)


def _read(ref_file: Path) -> str | None:
    import json

    try:
        commit = json.loads(ref_file.read_text()).get("commit")
    except (OSError, ValueError, AttributeError):
        return None
    return commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}|sha256-[0-9a-f]{16}", commit) else None


def _forget_archive(store: Store, name: str) -> None:
    weights = store.weights_dir
    with ArtifactLock(weights, name):
        for path in (weights / name, weights / f"{name}.record.json"):
            path.unlink(missing_ok=True)


def _extract(archive: Path, folder: Path, commit: str, what: str, sha256: str) -> Path:
    dest = folder / commit
    folder.mkdir(parents=True, exist_ok=True)
    with ArtifactLock(folder, commit):
        if (dest / MARKER).is_file():
            return dest
        tmp = temp_path(dest)
        try:
            count = extract_tree(archive, tmp)
            marker = {
                "commit": commit,
                "source": what,
                "archive": archive.name,
                "archive_sha256": sha256,
                "files": count,
            }
            write_json(tmp / MARKER, marker)
            if dest.exists():
                shutil.rmtree(dest)  # a snapshot without its marker: an extraction that was cut short
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(tmp)
    log.info("extracted %s (%d files) to %s", what, count, dest)
    return dest
