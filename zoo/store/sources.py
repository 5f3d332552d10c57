"""Where an artifact's bytes come from: one small class per source scheme, behind one interface.

| scheme | class | example |
|---|---|---|
| `https:`, `http:` | `HttpSource` | `https://download.pytorch.org/models/resnet18-f37072fd.pth` (mirrors first) |
| `hf:` | `zoo.store.hf.HfSource` | `hf:org/repo@main/model.safetensors` (revision pinned to its commit) |
| `file:` or an absolute path | `FileSource` | `file:///mnt/weights/lenet5.safetensors` |
| `pkg:` | `PackageSource` | `pkg:acme-weights/acme_weights/resnet.safetensors` (a file of an installed package) |
| any other | `PluginSource` | `s3://bucket/key`, when a plugin declares it with `Plugin.source("s3")` |

Each source writes the bytes into a temporary file beside the cache target and returns their sha256; the
store verifies them and renames the file into place. `ZOO_WEIGHTS_PATH` folders are searched before any
source (`local_candidates`) and used in place.

The table of zoo's own schemes (`SOURCES`) is fixed; plugins add schemes through `Plugin.source`, and the
registry hands them to `source_for` (two plugins declaring one scheme is a `PluginError` naming both).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from zoo import settings
from zoo.errors import DownloadError, InputError, PluginError, ZooError
from zoo.specs import Artifact
from zoo.store.cache import CHUNK, temp_path
from zoo.store.http import Policy, Progress, download

if TYPE_CHECKING:
    from zoo.plugin import SourceDeclaration

__all__ = [
    "FetchContext",
    "Fetched",
    "FileSource",
    "HttpSource",
    "PackageSource",
    "PluginSource",
    "Source",
    "candidate_urls",
    "local_candidates",
    "rewrite",
    "source_for",
]

_DIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Fetched:
    """Bytes a source wrote into a temporary file, not yet verified.

    Attributes:
        part: the temporary file, beside the cache target.
        sha256: its sha256.
        size: its size.
        source: where the bytes came from, as the cache record will say (a pinned form where there is one).
        revision: the commit the source resolved to (`hf:`), or None.
    """

    part: Path
    sha256: str
    size: int
    source: str
    revision: str | None = None


@dataclass(frozen=True)
class FetchContext:
    """What a source needs to know about one fetch.

    Attributes:
        target: the final cache path (temporary files go beside it).
        root: the cache root.
        policy: retries, backoff and timeouts.
        progress: called with (bytes done, total) while bytes arrive.
        claim: returns the partial file a dead process left for this URL (renamed to this process), or None.
        require_length: refuse a body whose end cannot be told from a cut (no Content-Length, not chunked):
            set when nothing else (hash, size) would notice a truncated file.
    """

    target: Path
    root: Path
    policy: Policy
    progress: Progress | None = None
    claim: Callable[[str], Path | None] = lambda url: None
    require_length: bool = False


class Source(ABC):
    """One way of getting an artifact's bytes (see the module's table)."""

    #: False for sources that read local files, which work with `ZOO_OFFLINE=1`.
    network: ClassVar[bool] = True

    def urls(self, url: str) -> list[str]:
        """The locations to try for `url`, in order (mirrors first for HTTP)."""
        return [url]

    @abstractmethod
    def fetch(self, url: str, ctx: FetchContext) -> Fetched:
        """Write the bytes of `url` into a temporary file beside `ctx.target`.

        Raises:
            DownloadError: the bytes could not be had (the temporary file is removed).
        """

    def local(self, url: str, ctx: FetchContext) -> Fetched | None:
        """The bytes of `url` from a local cache of the source's own, without any network call, or None."""
        return None


class HttpSource(Source):
    """`http(s)://` URLs: mirrors from `ZOO_MIRRORS` first, resumable downloads, retries with backoff."""

    def urls(self, url: str) -> list[str]:
        return rewrite(url, settings.mirrors())

    def fetch(self, url: str, ctx: FetchContext) -> Fetched:
        claimed = ctx.claim(url)
        part = claimed or temp_path(ctx.target)
        try:
            sha, size = download(
                url,
                part,
                progress=ctx.progress,
                policy=ctx.policy,
                resume=claimed is not None,
                require_length=ctx.require_length,
            )
        except KeyboardInterrupt:
            raise  # the partial file stays, to be resumed by the next fetch
        except BaseException:
            discard(part)
            raise
        return Fetched(part, sha, size, url)


class FileSource(Source):
    """`file:///path` URLs and absolute paths: a local file, copied into the cache and verified."""

    network = False

    def fetch(self, url: str, ctx: FetchContext) -> Fetched:
        path = Path(unquote(urlsplit(url).path)) if url.startswith("file:") else Path(url)
        if not path.is_file():
            raise DownloadError(f"{url}: no such file.", url=url)
        return copy_in(path, ctx, str(path))


class PackageSource(Source):
    """`pkg:distribution/path/in/package`: a file shipped inside an installed Python distribution.

    Air-gapped teams publish weights as wheels on an internal index; `pip install acme-weights` then
    makes `pkg:acme-weights/acme_weights/model.safetensors` available with no network at all.
    """

    network = False

    def fetch(self, url: str, ctx: FetchContext) -> Fetched:
        return copy_in(self.locate(url), ctx, url)

    @staticmethod
    def locate(url: str) -> Path:
        """The installed file a `pkg:` URL names.

        Raises:
            InputError: a malformed URL, or a path that leaves the distribution.
            DownloadError: the distribution is not installed or does not ship that file.
        """
        from importlib import metadata

        dist_name, _, rel = url.removeprefix("pkg:").partition("/")
        parts = PurePosixPath(rel).parts
        if not _DIST.fullmatch(dist_name) or not parts or rel.startswith("/") or any(p in {"..", "."} for p in parts):
            raise InputError(f"{url!r} is not pkg:distribution/path/in/package: fix the URL.")
        if "\\" in rel or ":" in rel:
            raise InputError(f"{url!r} is not pkg:distribution/path/in/package: fix the URL.")
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise DownloadError(
                f"{url}: the package {dist_name!r} is not installed: `pip install {dist_name}`."
            ) from None
        shipped = {str(f) for f in dist.files or ()}
        path = Path(str(dist.locate_file(rel)))
        if shipped and rel not in shipped:
            editable = _editable_file(dist, parts)
            if editable is None:
                raise DownloadError(f"{url}: {dist_name} {dist.version} does not ship {rel!r}.", url=url)
            path = editable
        if not path.is_file():
            raise DownloadError(f"{url}: {path} is missing from the installed {dist_name}.", url=url)
        return path


def _editable_file(dist: Any, parts: tuple[str, ...]) -> Path | None:
    """The file `parts` of an editable install, found through the import system (its RECORD lists no package files)."""
    import importlib.util
    import json

    try:
        editable = json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable", False)
    except (ValueError, AttributeError):
        return None
    spec = importlib.util.find_spec(parts[0]) if editable and parts[0].isidentifier() else None
    for root in (spec.submodule_search_locations or ()) if spec is not None else ():
        path = Path(root, *parts[1:])
        if path.is_file():
            return path
    return None


class PluginSource(Source):
    """A scheme a plugin declares with `Plugin.source`: its function turns the URL into a fetch.

    The function returns a URL of another scheme (fetched by that scheme's source), a
    `Path` of a local file (copied in), or a `Fetched` it wrote itself; the store verifies the bytes.
    """

    def __init__(self, declaration: SourceDeclaration) -> None:
        self.declaration = declaration
        self.network = declaration.network  # type: ignore[misc]  # per declaration, not per class

    def _resolve(self, url: str, ctx: FetchContext) -> Fetched | Path | str:
        try:
            result = self.declaration.fetch(url, ctx)
        except ZooError:
            raise
        except Exception as exc:  # a plugin's own failure is a failed source, named, never a traceback
            first = str(exc).split("\n", 1)[0][:200]
            raise DownloadError(
                f"{url}: the {self.declaration.plugin!r} plugin's '{self.declaration.scheme}:' source failed: "
                f"{type(exc).__name__}: {first}",
                url=url,
            ) from exc
        if not isinstance(result, (Fetched, Path, str)):
            raise PluginError(
                f"The '{self.declaration.scheme}:' source of plugin {self.declaration.plugin!r} returned "
                f"{type(result).__name__}: it must return a URL, a Path or a Fetched.",
                plugin=self.declaration.plugin,
            )
        return result

    def fetch(self, url: str, ctx: FetchContext) -> Fetched:
        result = self._resolve(url, ctx)
        if isinstance(result, Fetched):
            return result
        if isinstance(result, Path):
            if not result.is_file():
                raise DownloadError(
                    f"{url}: the {self.declaration.plugin!r} plugin gave {result}, which is no file.", url=url
                )
            return copy_in(result, ctx, url)
        inner = url_source(result, plugin_ok=False)
        return inner.fetch(result, ctx)

    def local(self, url: str, ctx: FetchContext) -> Fetched | None:
        return None if self.network else self.fetch(url, ctx)


#: zoo's own source classes by URL scheme; a string is imported when first used (`module:Class`). Plugins
#: declare other schemes with `Plugin.source`, never by editing this table.
SOURCES: dict[str, type[Source] | str] = {
    "http": HttpSource,
    "https": HttpSource,
    "file": FileSource,
    "pkg": PackageSource,
    "hf": "zoo.store.hf:HfSource",
}


def source_for(url: str) -> Source:
    """The source that handles `url` (an absolute path counts as `file:`): zoo's own, else a plugin's.

    Raises:
        DownloadError: no source handles the URL's scheme.
        PluginError: two plugins declare the URL's scheme.
    """
    return url_source(url)


def url_source(url: str, *, plugin_ok: bool = True) -> Source:
    """`source_for`; with `plugin_ok=False`, only zoo's own schemes (what a plugin's source may return)."""
    if not isinstance(url, str):
        raise InputError(f"A download URL must be a string, not {type(url).__name__}.")
    scheme = "file" if url.startswith("/") else url.partition(":")[0].lower()
    target = SOURCES.get(scheme)
    if target is None:
        declaration = _plugin_source(scheme) if plugin_ok else None
        if declaration is not None:
            if isinstance(declaration.fetch, type) and issubclass(declaration.fetch, Source):
                return declaration.fetch()
            return PluginSource(declaration)
        known = ", ".join(f"{s}:" for s in sorted({*SOURCES, *(_plugin_schemes() if plugin_ok else ())}))
        raise DownloadError(
            f"No source handles {url!r}: known schemes are {known}. A plugin adds one with `Plugin.source`.", url=url
        )
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = SOURCES[scheme] = getattr(importlib.import_module(module), attr)
    return target()


def _plugin_source(scheme: str) -> SourceDeclaration | None:
    """The registry hands the store what plugins declared (imported here: the registry never imports the store)."""
    from zoo.registry import get_registry

    return get_registry().source(scheme)


def _plugin_schemes() -> list[str]:
    from zoo.registry import get_registry

    return get_registry().source_schemes()


def rewrite(url: str, mirrors: list[tuple[str, str]]) -> list[str]:
    """Mirror URLs for `url` (each matching prefix rewritten, in order), then `url` itself."""
    out = []
    for prefix, replacement in mirrors:
        if url.startswith(prefix):
            out.append(replacement.rstrip("/") + url[len(prefix.rstrip("/")) :])
    out.append(url)
    return list(dict.fromkeys(out))


def candidate_urls(artifact: Artifact) -> list[str]:
    """Every location to try for `artifact`: for each of its URLs, its mirrors first, the original last."""
    urls: list[str] = []
    for url in artifact.urls:
        urls.extend(source_for(url).urls(url))
    return list(dict.fromkeys(urls))


def local_candidates(artifact: Artifact) -> Iterator[Path]:
    """Files named like the artifact in the folders of `ZOO_WEIGHTS_PATH`, in order."""
    for folder in settings.weights_path():
        path = folder / artifact.name
        if path.is_file():
            yield path


def copy_in(path: Path, ctx: FetchContext, source: str, revision: str | None = None) -> Fetched:
    """Copy a local file into a temporary file beside the target, hashing it on the way."""
    part = temp_path(ctx.target)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as src, open(part, "wb") as dst:
            while chunk := src.read(CHUNK * 4):
                dst.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if ctx.progress is not None:
                    ctx.progress(size, None)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        discard(part)
        raise
    return Fetched(part, digest.hexdigest(), size, source, revision)


def discard(part: Path) -> None:
    """Remove a temporary file and its sidecar, if they exist."""
    for path in (part, part.with_name(part.name + ".json")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
