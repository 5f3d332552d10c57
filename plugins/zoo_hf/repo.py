"""Hugging Face Hub model repos pinned to a commit: `org/repo[@revision]` -> commit -> files fetched by the store.

Online, the revision (default `main`) is resolved to its commit with the Hub's revision API and the
commit's files are listed with the tree API (sizes, and the sha256 of LFS files, which the store then
verifies). The branch -> commit mapping is kept where huggingface_hub keeps it (`refs/<branch>` in its
cache under the zoo root), so offline (`ZOO_OFFLINE=1` or `HF_HUB_OFFLINE=1`), or when the Hub cannot
be reached, the commit and its files come from that cache with no network call at all.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from zoo import Artifact, DownloadError, OfflineError, UnknownModelError, UnsupportedError
from zoo.ext import cache_root, is_offline

__all__ = [
    "INSTALL_HINT",
    "HubTarget",
    "RepoFile",
    "Snapshot",
    "artifact_name",
    "hub",
    "parse_target",
    "refresh_hub_constants",
    "snapshot",
]

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "zoo-sdk[hf]"'
_TARGET = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9._-]{0,99}))?$"
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubTarget:
    """What `hf:org/repo[@revision]` names.

    Attributes:
        repo_id: `org/repo`.
        revision: a branch, tag or commit; None for `main`.
    """

    repo_id: str
    revision: str | None = None

    @property
    def display(self) -> str:
        """`org/repo[@revision]` as written."""
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


@dataclass(frozen=True)
class RepoFile:
    """One file of a commit: its path, size and (for LFS files) sha256, when the Hub said."""

    path: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A repo pinned to a commit, with the files it holds (those cached, when offline)."""

    target: HubTarget
    commit: str
    files: MappingProxyType[str, RepoFile] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pinned(self) -> str:
        """`org/repo@<commit>`."""
        return f"{self.target.repo_id}@{self.commit}"

    def artifact(self, path: str, fmt: str) -> Artifact:
        """The store artifact of a file of this commit (`hf:org/repo@<commit>/path`)."""
        known = self.files.get(path) or RepoFile(path)
        return Artifact(
            name=artifact_name(self.target.repo_id, self.commit, path),
            urls=(f"hf:{self.pinned}/{path}",),
            sha256=known.sha256,
            size=known.size,
            format=fmt,
        )

    def fetch(self, path: str, fmt: str = "repo") -> Path:
        """A verified local copy of a file of this commit, through the zoo store."""
        from zoo.ext import get_store

        return get_store().fetch(self.artifact(path, fmt))


def parse_target(text: str) -> HubTarget:
    """Parse `org/repo[@revision]`.

    Raises:
        UnknownModelError: not of that form.
    """
    match = _TARGET.match(text.strip())
    if match is None or ".." in match["repo"]:
        raise UnknownModelError(
            f"hf:{text} is not a Hugging Face model name: use hf:org/repo or hf:org/repo@revision.", name=f"hf:{text}"
        )
    return HubTarget(match["repo"], match["rev"])


def artifact_name(repo_id: str, commit: str, path: str) -> str:
    """The cache file name of a file of a repo at a commit (unique per repo, commit and path)."""
    org, name = repo_id.split("/")
    flat = path.replace("/", "--")
    return f"hf--{org}--{name}--{commit[:12]}--{flat}"[-200:].lstrip("-.") or flat


def hub() -> Any:
    """The huggingface_hub module (configured for the zoo root).

    Raises:
        UnsupportedError: huggingface_hub is not installed.
    """
    from zoo.ext import configure_backends

    configure_backends()
    try:
        import huggingface_hub
    except ImportError:
        raise UnsupportedError(f"hf: models need huggingface_hub: {INSTALL_HINT}.") from None
    return huggingface_hub


def refresh_hub_constants(offline: bool, changed: Mapping[str, str]) -> None:
    """Update an already imported huggingface_hub, which reads its environment at import (the `hf` backend's
    `refresh`): its offline flag when zoo is offline, its folders when `HF_HOME` was just set."""
    constants: Any = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return
    if offline:
        constants.HF_HUB_OFFLINE = True
    if "HF_HOME" in changed:
        constants.HF_HOME = changed["HF_HOME"]
        constants.HF_HUB_CACHE = os.path.join(changed["HF_HOME"], "hub")


def offline() -> bool:
    """True when zoo, or huggingface_hub itself (`HF_HUB_OFFLINE`), is offline."""
    return is_offline() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _repo_folder(repo_id: str) -> Path:
    """huggingface_hub's folder of `repo_id`, where a resolved branch is recorded (it has no public call for that)."""
    return cache_root() / "hf" / "hub" / f"models--{repo_id.replace('/', '--')}"


def snapshot(target: HubTarget) -> Snapshot:
    """Pin `target` to its commit and list the commit's files (see the module docstring).

    Raises:
        OfflineError: offline and the revision was never resolved here.
        UnknownModelError: no such repo or revision on the Hub.
        DownloadError: the Hub could not be reached and nothing is cached.
    """
    rev = target.revision or "main"
    if offline():
        return _cached(target, rev)
    try:
        return _online(target, rev)
    except DownloadError as exc:
        cached = _cached_or_none(target, rev)
        if cached is None:
            raise
        log.warning("%s; using the cached commit %s of hf:%s", exc, cached.commit[:12], target.display)
        return cached


def _online(target: HubTarget, rev: str) -> Snapshot:
    hf = hub()
    api = hf.HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    try:
        commit = rev if _COMMIT.match(rev) else str(api.model_info(target.repo_id, revision=rev).sha)
        entries = api.list_repo_tree(target.repo_id, revision=commit, recursive=True)
        files = {
            e.path: RepoFile(e.path, e.size, e.lfs.sha256 if e.lfs else None)
            for e in entries
            if isinstance(e, hf.hf_api.RepoFile)
        }
    except (hf.errors.RepositoryNotFoundError, hf.errors.RevisionNotFoundError) as exc:
        raise UnknownModelError(
            f"hf:{target.display} does not exist on {api.endpoint} (or is private: log in with `hf auth login`).",
            name=f"hf:{target.display}",
        ) from exc
    except Exception as exc:  # httpx / huggingface_hub errors: the Hub could not be reached
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DownloadError(f"hf:{target.display}: {type(exc).__name__}: {first}") from exc
    if not _COMMIT.match(commit):
        raise DownloadError(f"hf:{target.display}: the Hub did not say which commit {rev!r} is.")
    if rev != commit:  # as huggingface_hub does: offline lookups of the branch find this commit
        refs = _repo_folder(target.repo_id) / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / rev).write_text(commit)
    return Snapshot(target, commit, MappingProxyType(files))


def _cached_or_none(target: HubTarget, rev: str) -> Snapshot | None:
    try:
        return _cached(target, rev)
    except OfflineError:
        return None


def _cached(target: HubTarget, rev: str) -> Snapshot:
    """The snapshot from the local caches, with no network call.

    The branch -> commit mapping comes from huggingface_hub's cache (its `refs`, written by the last online
    resolution, read with `huggingface_hub.scan_cache_dir`); failing that (a cache brought by `zoo cache
    import`), from the zoo cache's records when they hold a single commit of the repo. The files are those
    of either cache.
    """
    revisions = _hub_cached_revisions(target.repo_id)
    recorded = _recorded_files(target.repo_id)
    commit = rev if _COMMIT.match(rev) else next((c for c, (refs, _) in revisions.items() if rev in refs), None)
    if commit is None and len(recorded) == 1:
        commit = next(iter(recorded))
        log.info("hf:%s: using the only cached commit, %s", target.display, commit[:12])
    files = {path: RepoFile(path) for path in revisions.get(commit or "", ((), ()))[1]}
    files.update({path: RepoFile(path) for path in recorded.get(commit or "", ())})
    if not commit or not files:
        pins = (
            f" Cached commits: {', '.join(sorted(recorded))}; name one: hf:{target.repo_id}@<commit>."
            if recorded
            else ""
        )
        raise OfflineError(
            f"Offline and hf:{target.display} is not cached: load it once online (zoo.load or `zoo fetch "
            f"hf:{target.display}`), then bring the cache with `zoo cache export` / `zoo cache import`.{pins}"
        )
    return Snapshot(target, commit, MappingProxyType(files))


def _hub_cached_revisions(repo_id: str) -> dict[str, tuple[frozenset[str], tuple[str, ...]]]:
    """`{commit: (refs, file paths)}` of `repo_id` in huggingface_hub's cache under the zoo root."""
    try:
        import huggingface_hub
    except ImportError:
        return {}
    try:
        cache = huggingface_hub.scan_cache_dir(cache_root() / "hf" / "hub")
    except huggingface_hub.CacheNotFound:
        return {}
    return {
        revision.commit_hash: (
            frozenset(revision.refs),
            tuple(f.file_path.relative_to(revision.snapshot_path).as_posix() for f in revision.files),
        )
        for repo in cache.repos
        if repo.repo_id == repo_id and repo.repo_type == "model"
        for revision in repo.revisions
        if _COMMIT.match(revision.commit_hash)
    }


def _recorded_files(repo_id: str) -> dict[str, set[str]]:
    """Files of `repo_id` in the zoo cache, by commit, from their records (`hf:org/repo@<commit>/<path>`)."""
    from zoo.ext import get_store

    store = get_store()
    prefix = f"hf:{repo_id}@"
    out: dict[str, set[str]] = {}
    org, name = repo_id.split("/")
    for record_file in store.weights_dir.glob(f"hf--{org}--{name}--*.record.json"):
        record = store.record(record_file.name[: -len(".record.json")])
        if record is None or not record.source.startswith(prefix):
            continue
        commit, _, path = record.source[len(prefix) :].partition("/")
        if _COMMIT.match(commit) and path:
            out.setdefault(commit, set()).add(path)
    return out
