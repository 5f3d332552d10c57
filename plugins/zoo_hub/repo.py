"""Where a hub repo's files are: a local folder, or a GitHub snapshot cached by the store (pinned to a commit)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo_hub.names import HubTarget

__all__ = ["HubRepo", "locate"]

_SHA = re.compile(r"^[0-9a-f]{40}$")
#: The ref fetched when a hub name gives none (torch.hub's default branch).
DEFAULT_REF = "main"


@dataclass(frozen=True)
class HubRepo:
    """A repo whose files are on disk.

    Attributes:
        key: `owner/repo`, or the folder's absolute path (what trust is given to).
        root: the folder holding hubconf.py.
        commit: the commit its files are at, when known (GitHub snapshots; local git checkouts).
    """

    key: str
    root: Path
    commit: str | None = None

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
    from zoo.store import repo_snapshot

    root = repo_snapshot(target.owner, target.repo, target.ref or DEFAULT_REF)
    if not (root / "hubconf.py").is_file():
        raise ZooError(
            f"{target.owner}/{target.repo} at {target.ref or DEFAULT_REF} has no hubconf.py: not a torch.hub repo."
        )
    return HubRepo(f"{target.owner}/{target.repo}".lower(), root, snapshot_commit(root))


def snapshot_commit(root: Path) -> str | None:
    """The commit of a store snapshot folder: its name, or the one its marker file records."""
    if _SHA.match(root.name):
        return root.name
    try:
        commit = json.loads((root / ".zoo-snapshot.json").read_text()).get("commit")
    except (OSError, ValueError, AttributeError):
        return None
    return commit if isinstance(commit, str) else None


def git_head(root: Path) -> str | None:
    """The commit a local git checkout is at, read from .git without running git; None if not a checkout."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if _SHA.match(head):
        return head
    if not head.startswith("ref: "):
        return None
    ref = head[5:].strip()
    try:
        value = (git / ref).read_text().strip()
        return value if _SHA.match(value) else None
    except OSError:
        pass
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.match(sha):
                return sha
    except OSError:
        return None
    return None
