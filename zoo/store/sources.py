"""Where an artifact's bytes can come from: local folders (`ZOO_WEIGHTS_PATH`) and URLs with mirrors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from zoo import settings
from zoo.specs import Artifact

__all__ = ["candidate_urls", "local_candidates", "rewrite"]


def rewrite(url: str, mirrors: list[tuple[str, str]]) -> list[str]:
    """Mirror URLs for `url` (each matching prefix rewritten, in order), then `url` itself."""
    out = []
    for prefix, replacement in mirrors:
        if url.startswith(prefix):
            out.append(replacement.rstrip("/") + url[len(prefix.rstrip("/")) :])
    out.append(url)
    return list(dict.fromkeys(out))


def candidate_urls(artifact: Artifact) -> list[str]:
    """Every URL to try for `artifact`: for each of its URLs, its mirrors first, the original last."""
    mirrors = settings.mirrors()
    urls: list[str] = []
    for url in artifact.urls:
        urls.extend(rewrite(url, mirrors))
    return list(dict.fromkeys(urls))


def local_candidates(artifact: Artifact) -> Iterator[Path]:
    """Files named like the artifact in the folders of `ZOO_WEIGHTS_PATH`, in order."""
    for folder in settings.weights_path():
        path = folder / artifact.name
        if path.is_file():
            yield path
