"""Where a hub repo's files are: a local folder, or a GitHub snapshot cached by the store (pinned to a commit)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from zoo import ZooError
from zoo_hub.names import HubTarget

__all__ = ["HubRepo", "locate"]

_SHA = re.compile(r"[0-9a-f]{40}")
#: The refs tried, in order, when a hub name gives none (torch.hub's: `main`, then `master`).
DEFAULT_REFS = ("main", "master")


@dataclass(frozen=True)
class HubRepo:
    """A repo whose files are on disk.

    Attributes:
        key: `owner/repo`, or the folder's absolute path (what trust is given to).
        root: the folder holding hubconf.py.
        commit: the commit its files are at, when known (GitHub snapshots; local git checkouts).
        archive_sha256: the sha256 of the GitHub archive its files were extracted from (None for a folder).
    """

    key: str
    root: Path
    commit: str | None = None
    archive_sha256: str | None = None

    @property
    def token(self) -> str:
        """A short id that differs between repos and commits (names the hubconf's module)."""
        basis = f"{self.key}@{self.commit or ''}:{self.root}"
        return hashlib.sha256(basis.encode()).hexdigest()[:12]


def locate(target: HubTarget) -> HubRepo:
    """The files of `target`'s repo: the local folder as is, or the store's cached GitHub snapshot.

    A GitHub snapshot is fetched once through the store (mirrors, offline mode, verified archive) and
    reused from the cache afterwards without asking GitHub again.

    Raises:
        ZooError: the folder has no hubconf.py.
        OfflineError: offline and the repo is not cached.
    """
    if target.path is not None:
        root = target.path
        if not (root / "hubconf.py").is_file():
            raise ZooError(f"{root} has no hubconf.py: it is not a torch.hub repo folder.")
        return HubRepo(str(root), root, git_head(root))
    ref = target.ref or default_ref(target.owner or "", target.repo or "")
    from zoo.ext import repo_snapshot

    root = repo_snapshot(target.owner or "", target.repo or "", ref)
    if not (root / "hubconf.py").is_file():
        raise ZooError(f"{target.owner}/{target.repo} at {ref} has no hubconf.py: not a torch.hub repo.")
    marker = _marker(root)
    sha = marker.get("archive_sha256")
    return HubRepo(
        f"{target.owner}/{target.repo}".lower(), root, snapshot_commit(root), sha if isinstance(sha, str) else None
    )


def default_ref(owner: str, repo: str) -> str:
    """The repo's default branch as torch.hub finds it: `main`, else `master`.

    A branch already in the cache wins without asking the network; otherwise `main` is fetched and, when
    it does not exist (or cannot be had offline), `master`.

    Raises:
        DownloadError: neither branch could be fetched (the message names both).
        OfflineError: offline and neither is cached.
    """
    from zoo import DownloadError, OfflineError
    from zoo.ext import cached_ref, repo_snapshot

    cached = cached_ref(owner, repo, DEFAULT_REFS)
    if cached is not None:
        return cached
    try:
        repo_snapshot(owner, repo, DEFAULT_REFS[0])
        return DEFAULT_REFS[0]
    except (DownloadError, OfflineError) as first:
        try:
            repo_snapshot(owner, repo, DEFAULT_REFS[1])
        except (DownloadError, OfflineError):
            raise type(first)(
                f"{owner}/{repo} has neither a main nor a master branch that can be fetched: {first}"
            ) from None
        return DEFAULT_REFS[1]


def _marker(root: Path) -> dict[str, object]:
    try:
        data = json.loads((root / ".zoo-snapshot.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def snapshot_commit(root: Path) -> str | None:
    """The commit of a store snapshot folder: its name, or the one its marker file records."""
    if _SHA.fullmatch(root.name):
        return root.name
    commit = _marker(root).get("commit")
    return commit if isinstance(commit, str) else None


def git_head(root: Path) -> str | None:
    """The commit a local git checkout is at, read from .git without running git; None if not a checkout."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if _SHA.fullmatch(head):
        return head
    if not head.startswith("ref: "):
        return None
    ref = head[5:].strip()
    try:
        value = (git / ref).read_text().strip()
        return value if _SHA.fullmatch(value) else None
    except OSError:
        pass
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.fullmatch(sha):
                return sha
    except OSError:
        return None
    return None
