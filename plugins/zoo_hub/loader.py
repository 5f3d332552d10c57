"""Calling a hub entry point: trust first, dependencies checked, code run in its own scope, downloads
through the zoo store."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from zoo import trust as trust_store
from zoo.errors import ZooError
from zoo_hub.hubconf import read_hubconf
from zoo_hub.isolation import RepoScope, guarded, scoped
from zoo_hub.names import HubTarget, parse_target
from zoo_hub.repo import HubRepo, locate

__all__ = ["call_entry", "load_entry", "scope_for"]

log = logging.getLogger(__name__)
_SCOPES: dict[tuple[str, str], RepoScope] = {}


def scope_for(repo: HubRepo) -> RepoScope:
    """The one `RepoScope` of a repo folder at a commit, created on first use."""
    key = (str(repo.root), repo.commit or "")
    scope = _SCOPES.get(key)
    if scope is None:
        scope = _SCOPES[key] = RepoScope(repo.root, repo.token)
    return scope


def load_entry(name: str | HubTarget, *, trust: bool | None = None, **kwargs: Any) -> Any:
    """Call a hub entry point by name (`owner/repo[:ref]/entry` or `/local/dir/entry`) and return what it returns.

    Args:
        name: the text after `hub:`, or a parsed `HubTarget`.
        trust: True trusts the repo for this call; None uses the configured trust (see `zoo.trust`).
        **kwargs: passed to the entry point.

    Raises:
        UntrustedCodeError: the repo is not trusted; none of its code ran.
        ZooError: a dependency named in the hubconf is missing (nothing is installed).
    """
    target = parse_target(name) if isinstance(name, str) else name
    return call_entry(locate(target), target.entry, kwargs, trust=trust)


def call_entry(repo: HubRepo, entry: str, kwargs: dict[str, Any], *, trust: bool | None = None) -> Any:
    """Check trust and dependencies, then import the hubconf in its scope and call `entry(**kwargs)`.

    An `nn.Module` result has its forward run inside the repo's scope too.
    """
    trust_store.check(repo.key, repo.commit, trust=trust)
    conf = read_hubconf(repo.root)
    conf.entry(entry)
    missing = conf.missing_dependencies()
    if missing:
        raise ZooError(
            f"Hub repo {repo.key!r} needs {', '.join(missing)}, not installed here; zoo installs nothing for hub "
            f"code: install {'it' if len(missing) == 1 else 'them'} yourself (pip install ...), then load again."
        )
    scope = scope_for(repo)
    with scope.active(), guarded(), store_downloads():
        result = getattr(scope.hubconf(), entry)(**kwargs)
    if _is_module(result):
        scoped(result, scope)
    return result


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


@contextlib.contextmanager
def store_downloads() -> Iterator[None]:
    """Route `torch.hub.load_state_dict_from_url` and `download_url_to_file` through the zoo store.

    Files come from the cache, `ZOO_WEIGHTS_PATH` or mirrors, offline mode is honoured, and state_dicts
    are read with `weights_only=True`: a pickle that needs code fails instead of running it.
    """
    import torch.hub

    saved = torch.hub.load_state_dict_from_url, torch.hub.download_url_to_file
    torch.hub.load_state_dict_from_url = _load_state_dict_from_url
    torch.hub.download_url_to_file = _download_url_to_file
    try:
        yield
    finally:
        torch.hub.load_state_dict_from_url, torch.hub.download_url_to_file = saved


def _fetch(url: str, file_name: str | None = None) -> Path:
    from zoo.specs import Artifact
    from zoo.store import get_store

    name = file_name or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return get_store().fetch(Artifact(name=name, urls=(url,)))


def _load_state_dict_from_url(url: str, model_dir: Any = None, map_location: Any = None, progress: bool = True,
                              check_hash: bool = False, file_name: str | None = None, **_: Any) -> Any:  # fmt: skip
    import torch

    path = _fetch(url, file_name)
    log.info("hub code loads %s from %s (weights_only=True)", url, path)
    return torch.load(path, map_location=map_location, weights_only=True)


def _download_url_to_file(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
    from zoo.errors import ChecksumError
    from zoo.store.cache import hash_file

    path = _fetch(url)
    if hash_prefix:
        sha, _ = hash_file(path)
        if not sha.startswith(hash_prefix):
            raise ChecksumError(f"{url}: sha256 {sha[:12]} does not start with {hash_prefix}.", path=str(path),
                                expected=hash_prefix, got=sha)  # fmt: skip
    shutil.copyfile(path, dst)
