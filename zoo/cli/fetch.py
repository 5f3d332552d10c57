"""`zoo fetch`: download, verify and cache models' weights; write or honour a lockfile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from zoo.cli.render import echo_json
from zoo.errors import InputError, UnsupportedError


@click.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a lockfile here.")
@click.option(
    "--locked",
    "locked_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Install exactly what this lockfile says (only NAMES from it, when given), or fail.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fetch_cmd(
    names: tuple[str, ...], lock_path: Path | None, locked_path: Path | None, quiet: bool, as_json: bool
) -> None:
    """Download, verify and cache the weights of models NAMES (resumable, safe to run in parallel)."""
    from zoo.checkpoint import weights_entry
    from zoo.store import get_store
    from zoo.store.archive import archive_commit
    from zoo.store.lockfile import lock_entry, write_lock
    from zoo.store.progress import bars

    if lock_path and locked_path:
        raise click.UsageError("--lock writes a lockfile and --locked reads one: use one of them.")
    if not names and not locked_path:
        raise click.UsageError("Name the models to fetch, e.g. `zoo fetch resnet18`, or give --locked FILE.")
    plan = _locked_plan(locked_path, names) if locked_path else [_plan(name) for name in names]
    store, done = get_store(), []
    with bars(show=not quiet and not as_json) as progress:
        for name, spec, tag, artifact in plan:
            if artifact.format == "repo":  # a hub repo's code archive: locked as fetched, never converted
                entry = store.fetch_entry(artifact, progress=progress(name))
                locked = replace(lock_entry(store, name, tag, artifact, entry), revision=archive_commit(entry.path))
            else:
                entry = weights_entry(
                    artifact, hook=spec.state_dict_hook, progress=progress(name), verify=bool(locked_path)
                )
                if locked_path:
                    entry = _held_to_origin(store, name, spec, artifact, entry)
                locked = lock_entry(store, name, tag, artifact, entry)
            done.append((locked, entry))
    if lock_path:
        write_lock(lock_path, [locked for locked, _ in done])
    if as_json:
        echo_json(
            [{**locked.__dict__, "path": str(entry.path), "cached_sha256": entry.sha256} for locked, entry in done]
        )
    elif not quiet:
        for locked, entry in done:
            click.echo(f"{locked.model}  {entry.path}  sha256 {entry.sha256[:16]}")


def _plan(name: str) -> tuple[str, Any, str, Any]:
    from zoo.registry import get_registry

    spec, tag = get_registry().resolve(name)
    if tag is None and spec.meta.get("archives"):
        return name, spec, "code", _code_archive(spec.meta["archives"])
    if tag is None:
        raise UnsupportedError(f"{name!r} has no pretrained weights to fetch: see `zoo info {spec.name}` for its tags.")
    return name, spec, tag, spec.weights[tag].artifact


def _code_archive(candidates: list[dict[str, str]]) -> Any:
    """The first of a hub model's code archives (`main`, then `master` when no ref is named) that can be had."""
    from zoo.errors import DownloadError, OfflineError
    from zoo.specs import Artifact
    from zoo.store import get_store

    artifacts = [Artifact(c["file"], urls=(c["url"],), format="repo") for c in candidates]
    store = get_store()
    for artifact in artifacts:
        if store.cached(artifact.name):
            return artifact
    for artifact in artifacts[:-1]:
        try:
            store.fetch_entry(artifact)
            return artifact
        except (DownloadError, OfflineError):
            continue
    return artifacts[-1]


def _locked_plan(path: Path, names: tuple[str, ...]) -> list[tuple[str, Any, str, Any]]:
    from zoo.registry import get_registry
    from zoo.store.lockfile import read_lock

    locked = read_lock(path)
    missing = sorted(set(names) - {m.model for m in locked})
    if missing:
        raise InputError(
            f"{path} does not lock {', '.join(missing)}: run `zoo fetch ... --lock {path}` again.", path=path
        )
    plan = []
    for item in locked:
        if names and item.model not in names:
            continue
        spec, _ = get_registry().resolve(item.model)
        own = spec.weights.get(item.tag)
        plan.append((item.model, spec, item.tag, item.artifact(own.artifact.urls if own is not None else ())))
    return plan


def _held_to_origin(store: Any, name: str, spec: Any, artifact: Any, entry: Any) -> Any:
    """A conversion, made again from its locked origin and compared: the lockfile pins the origin's bytes."""
    from zoo.checkpoint.conversions import recheck_locked

    entry, same = recheck_locked(store, artifact, spec.state_dict_hook, entry)
    if not same:
        click.echo(
            f"warning: {name}: the cached {entry.path.name} was not the conversion of the locked "
            f"{artifact.name}: it was quarantined and converted again",
            err=True,
        )
    return entry
