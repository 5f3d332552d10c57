"""Calling a hub entry point: trust first, dependencies checked, code run in its own scope, downloads
through the zoo store."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from zoo import ZooError
from zoo.ext import check_trust
from zoo_hub.hubconf import read_hubconf
from zoo_hub.isolation import RepoScope, guarded, scoped
from zoo_hub.names import HubTarget, parse_target
from zoo_hub.repo import HubRepo, locate

__all__ = ["call_entry", "load_entry", "scope_for"]

log = logging.getLogger(__name__)
_SCOPES: dict[tuple[str, str], RepoScope] = {}
#: torch.hub's `HASH_REGEX`: the sha256 prefix in a file name such as `mobilenet_v2-b0353104.pth`.
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")


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
    check_trust(repo.key, repo.commit, trust=trust, archive_sha256=repo.archive_sha256)
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
    are read with `weights_only=True`: a pickle that needs code fails instead of running it. A
    `check_hash=True` call holds the file to the sha256 prefix in its name (torch.hub's convention), and
    `download_url_to_file(hash_prefix=...)` to its prefix, before anything is installed or pinned.

    Every module attribute bound to the originals (`torchvision.models._api`, `torch.utils.model_zoo`, ...
    bind them at import) is replaced for the block; on exit the originals are put back there, and in any
    module that bound a replacement during the block, also when the block raises.
    """
    import torch.hub

    swaps = {
        id(torch.hub.load_state_dict_from_url): (torch.hub.load_state_dict_from_url, _load_state_dict_from_url),
        id(torch.hub.download_url_to_file): (torch.hub.download_url_to_file, _download_url_to_file),
    }
    before = set(sys.modules)
    patched = _rebind(list(sys.modules.values()), {k: new for k, (_, new) in swaps.items()})
    try:
        yield
    finally:
        # Only modules imported during the block can have bound a replacement at import time.
        fresh = [module for name, module in list(sys.modules.items()) if name not in before]
        _rebind([*patched, *fresh], {id(new): old for old, new in swaps.values()})


def _rebind(modules: list[Any], table: dict[int, Any]) -> list[Any]:
    """In `modules`, replace attributes that are (by identity) a key of `table` by its value; returns the
    modules changed."""
    changed = []
    for module in modules:
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or namespace is globals():  # the replacements' own home stays
            continue
        for name, value in list(namespace.items()):
            if id(value) in table:
                namespace[name] = table[id(value)]
                changed.append(module)
    return changed


def _fetch(url: str, file_name: str | None = None, hash_prefix: str | None = None) -> Path:
    from zoo import Artifact
    from zoo.ext import get_store

    name = file_name or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    try:
        artifact = Artifact(name=name, urls=(url,), hash_prefix=hash_prefix)
    except ValueError as exc:
        raise ZooError(f"Hub code asked for {url!r}: {exc}.") from None
    return get_store().fetch(artifact)


def _name_prefix(url: str, file_name: str | None) -> str | None:
    """The sha256 prefix torch.hub reads from a file name (`name-<hex>.ext`) for `check_hash=True`.

    Like torch.hub, a name without one checks nothing more (the store still holds the file to the full
    sha256 recorded at its first download).
    """
    name = file_name or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    match = HASH_REGEX.search(name)
    return match.group(1) if match is not None and match.group(1) else None


def _load_state_dict_from_url(url: str, model_dir: Any = None, map_location: Any = None, progress: bool = True,
                              check_hash: bool = False, file_name: str | None = None, **_: Any) -> Any:  # fmt: skip
    import torch

    prefix = _name_prefix(url, file_name) if check_hash else None
    path = _fetch(url, file_name, prefix)
    log.info("hub code loads %s from %s (weights_only=True)", url, path)
    return torch.load(path, map_location=map_location, weights_only=True)


def _download_url_to_file(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
    path = _fetch(url, hash_prefix=hash_prefix or None)
    shutil.copyfile(path, dst)
