"""`hf:org/repo[@revision]/path/in/repo`: files of Hugging Face Hub model repos, through huggingface_hub.

The revision (default `main`) is resolved to its commit first and the file is downloaded at that commit
into huggingface_hub's own cache under the zoo root (``<root>/hf/hub``), so `transformers` and the
`hf` CLI see it too. The cache file is a hard link to huggingface_hub's blob where the filesystem allows
(a copy otherwise) and its record says ``hf:org/repo@<commit>/path``. ``HF_ENDPOINT`` selects another
Hub (a mirror, or a test server). Offline, a file already in that cache is used without any network call.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.errors import DownloadError, InputError
from zoo.store.cache import hash_file, temp_path
from zoo.store.http import Progress
from zoo.store.sources import FetchContext, Fetched, Source, copy_in, discard

__all__ = ["HfSource", "parse_hf"]

_URL = re.compile(
    r"^hf:(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
    r"(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9._-]{0,99}))?/(?P<path>[^\\:\x00-\x1f\x7f]+)$"
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def parse_hf(url: str) -> tuple[str, str | None, str]:
    """`(repo_id, revision or None, path in repo)` of an `hf:` URL.

    Raises:
        InputError: not `hf:org/repo[@revision]/path`, or a path with `..`, `.` or a leading `/`.
    """
    match = _URL.fullmatch(url)
    parts = PurePosixPath(match["path"]).parts if match else ()
    if match is None or match["path"].startswith("/") or any(p in {"..", "."} for p in parts) or ".." in match["repo"]:
        raise InputError(f"{url!r} is not hf:org/repo[@revision]/path/in/repo: fix the URL.")
    return match["repo"], match["rev"], match["path"]


class HfSource(Source):
    """Files of Hugging Face Hub model repos (see the module docstring)."""

    def fetch(self, url: str, ctx: FetchContext) -> Fetched:
        repo, rev, path = parse_hf(url)
        hub = _hub()
        endpoint = os.environ.get("HF_ENDPOINT") or None
        try:
            commit = rev if rev and _COMMIT.fullmatch(rev) else _resolve(hub, repo, rev or "main", endpoint, ctx)
            local = hub.hf_hub_download(
                repo,
                path,
                revision=commit,
                cache_dir=str(ctx.root / "hf" / "hub"),
                endpoint=endpoint,
                etag_timeout=ctx.policy.timeout,
                tqdm_class=_bar(ctx.progress),
            )
        except DownloadError:
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}:
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DownloadError(f"{url}: {type(exc).__name__}: {first}", url=url) from exc
        if rev != commit:  # like huggingface_hub does: the branch now points here, offline lookups see it
            refs = _repo_folder(ctx, repo) / "refs"
            refs.mkdir(parents=True, exist_ok=True)
            (refs / (rev or "main")).write_text(commit)
        return link_in(Path(local), ctx, f"hf:{repo}@{commit}/{path}", commit)

    def local(self, url: str, ctx: FetchContext) -> Fetched | None:
        """The file from huggingface_hub's cache under the zoo root (`huggingface_hub.try_to_load_from_cache`)."""
        repo, rev, path = parse_hf(url)
        try:
            hub = _hub()
        except DownloadError:  # not installed: nothing it cached
            return None
        found = hub.try_to_load_from_cache(repo, path, cache_dir=str(ctx.root / "hf" / "hub"), revision=rev or "main")
        if not isinstance(found, str):  # not cached, or cached as missing upstream
            return None
        pointer = Path(found)
        commit = pointer.parents[len(PurePosixPath(path).parts) - 1].name  # the file sits in its commit's snapshot
        if not _COMMIT.fullmatch(commit):
            return None
        return link_in(pointer, ctx, f"hf:{repo}@{commit}/{path}", commit)


def _repo_folder(ctx: FetchContext, repo: str) -> Path:
    """huggingface_hub's folder of `repo`, where a resolved branch is recorded (it has no public call for that)."""
    return ctx.root / "hf" / "hub" / f"models--{repo.replace('/', '--')}"


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise DownloadError("hf: sources need huggingface_hub: `pip install 'zoo-sdk[hf]'`.") from None
    return huggingface_hub


def _resolve(hub: Any, repo: str, rev: str, endpoint: str | None, ctx: FetchContext) -> str:
    """The commit a branch or tag points to now (``/api/models/{repo}/revision/{rev}``)."""
    info = hub.HfApi(endpoint=endpoint).model_info(repo, revision=rev, timeout=ctx.policy.timeout)
    if not info.sha or not _COMMIT.fullmatch(info.sha):
        raise DownloadError(f"hf:{repo}@{rev}: the Hub did not say which commit {rev!r} is.")
    return str(info.sha)


def link_in(path: Path, ctx: FetchContext, source: str, revision: str | None) -> Fetched:
    """Hard-link (or else copy) a local file into a temporary file beside the target, and hash it."""
    part = temp_path(ctx.target)
    try:
        os.link(path.resolve(), part)
    except OSError:
        return copy_in(path, ctx, source, revision)
    try:
        sha, size = hash_file(part)
    except BaseException:
        discard(part)
        raise
    if ctx.progress is not None:
        ctx.progress(size, size)
    return Fetched(part, sha, size, source, revision)


def _bar(progress: Progress | None) -> type:
    """A silent tqdm class that reports huggingface_hub's progress to `progress`."""
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            self._done, self._size = int(kwargs.get("initial") or 0), kwargs.get("total")
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            self._done += int(n or 0)
            if progress is not None:
                progress(self._done, self._size)
            return None

    return Bar
