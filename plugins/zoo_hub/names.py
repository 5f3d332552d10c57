"""Parsing of `hub:` targets: `owner/repo[:ref]/entry` on GitHub, or `/local/dir/entry` on disk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo import UnknownModelError

__all__ = ["HubTarget", "parse_target"]

_GITHUB = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9_.-]+)(?::([A-Za-z0-9][A-Za-z0-9_./-]*?))?/([A-Za-z_]\w*)$"
)
_ENTRY = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class HubTarget:
    """Where a hub entry point lives.

    Attributes:
        entry: the hubconf function to call.
        owner: GitHub owner, or None for a local folder.
        repo: GitHub repository name, or None for a local folder.
        ref: branch, tag or commit asked for (None: the default branch).
        path: the local folder, or None for a GitHub repo.
    """

    entry: str
    owner: str | None = None
    repo: str | None = None
    ref: str | None = None
    path: Path | None = None

    @property
    def key(self) -> str:
        """`owner/repo` or the folder's absolute path: what trust is given to."""
        return f"{self.owner}/{self.repo}" if self.path is None else str(self.path)

    @property
    def display(self) -> str:
        """The name as a user writes it after `hub:`."""
        if self.path is not None:
            return f"{self.path}/{self.entry}"
        ref = f":{self.ref}" if self.ref else ""
        return f"{self.owner}/{self.repo}{ref}/{self.entry}"


def parse_target(text: str) -> HubTarget:
    """Parse the text after `hub:`.

    Raises:
        UnknownModelError: neither `owner/repo[:ref]/entry` nor a local `dir/entry`.
    """
    text = text.strip()
    if text.startswith(("/", "./", "../", "~")):
        folder, _, entry = text.rstrip("/").rpartition("/")
        if folder and _ENTRY.match(entry):
            return HubTarget(entry=entry, path=Path(folder).expanduser().absolute())
    else:
        match = _GITHUB.match(text)
        if match:
            owner, repo, ref, entry = match.groups()
            return HubTarget(entry=entry, owner=owner, repo=repo, ref=ref or None)
    raise UnknownModelError(
        f"'hub:{text}' is not a hub name: use hub:owner/repo[:ref]/entry or hub:/path/to/repo/entry.",
        name=f"hub:{text}",
    )


def parse_repo(text: str) -> HubTarget:
    """Parse `owner/repo[:ref]` or a local folder (no entry), as `zoo hub ls` takes it."""
    text = text.strip().rstrip("/")
    if text.startswith(("/", "./", "../", "~")) or Path(text).is_dir():
        return HubTarget(entry="", path=Path(text).expanduser().absolute())
    target = parse_target(f"{text}/_")
    return HubTarget(entry="", owner=target.owner, repo=target.repo, ref=target.ref)
