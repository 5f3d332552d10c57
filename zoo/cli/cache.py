"""`zoo cache ...`: where the cache is, what it holds, and keeping it verified, small and portable."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from zoo.cli.render import echo_json, table
from zoo.errors import InputError, ZooError

if TYPE_CHECKING:
    from zoo.checkpoint.conversions import Catalog


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else "-"


def _store():
    from zoo.store import get_store

    return get_store()


def _file_names(names: tuple[str, ...]) -> list[str]:
    """Cache file names for NAMES: each a cache file name, or a model name (its weights' files)."""
    from zoo.specs import validate_filename

    store, out = _store(), []
    for name in names:
        try:
            validate_filename(name)
            is_file = store.record(name) is not None or (store.weights_dir / name).exists()
        except ValueError:
            is_file = False
        out.extend([name] if is_file else _model_files(name))
    return list(dict.fromkeys(out))


def _model_files(name: str) -> list[str]:
    from zoo.checkpoint import safetensors_name
    from zoo.registry import get_registry

    try:
        spec, tag = get_registry().resolve(name)
    except ZooError:
        raise InputError(f"{name!r} is neither a cached file nor a model name: see `zoo cache ls`.") from None
    if tag is None:
        raise InputError(f"{name!r} has no weights: see `zoo info {spec.name}`.")
    artifact = spec.weights[tag].artifact
    store = _store()
    found = [n for n in (artifact.name, safetensors_name(artifact)) if store.cached(n) is not None]
    if not found:
        raise InputError(f"The weights of {name!r} are not cached: `zoo fetch {name}` brings them.")
    return found


@click.group("cache")
def cache_group() -> None:
    """Inspect and manage the local weight cache (ZOO_HOME)."""


@cache_group.command("dir")
def dir_cmd() -> None:
    """Print the cache root."""
    click.echo(str(_store().root))


@cache_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(as_json: bool) -> None:
    """List cached files: name, size, source, when fetched and last verified."""
    from zoo.store.maintenance import entries

    items = entries(_store())
    if as_json:
        echo_json([e.to_dict() for e in items])
        return
    if not items:
        click.echo("The cache is empty: `zoo fetch NAME` fills it.")
        return
    rows = [(e.name, _human(e.size), e.source, _when(e.fetched), _when(e.verified or e.fetched)) for e in items]
    table(None, ["name", "size", "source", "fetched", "verified"], rows)


@cache_group.command("du")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (bytes).")
def du_cmd(as_json: bool) -> None:
    """Disk use per part of the cache (weights, partial downloads, repos, quarantine, backends)."""
    from zoo.store.maintenance import disk_usage

    usage = disk_usage(_store())
    if as_json:
        echo_json(usage)
        return
    table(None, ["part", "size"], [(k, _human(v)) for k, v in usage.items()])


@cache_group.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Empty the whole cache (the config file stays).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (needed for --all without a terminal).")
def rm_cmd(names: tuple[str, ...], everything: bool, yes: bool) -> None:
    """Remove cached files (NAMES: file names or model names) with their records and pins.

    `--all` asks for confirmation on a terminal and refuses without one unless `--yes` is given.
    """
    from zoo.store.maintenance import disk_usage, remove

    if bool(names) == everything:
        raise click.UsageError("Give NAMES or --all.")
    store = _store()
    if everything and not yes:
        if not _interactive():
            raise InputError(
                f"`zoo cache rm --all` would delete everything under {store.root}: add --yes to confirm when not "
                f"running on a terminal."
            )
        size = _human(disk_usage(store)["total"])
        if not click.confirm(f"Delete the whole zoo cache at {store.root} ({size})?", default=False, err=True):
            click.echo("Nothing was deleted.", err=True)
            return
    removed = remove(store, None if everything else _file_names(names))
    if not removed:
        raise InputError(f"Nothing to remove for {', '.join(names)}: see `zoo cache ls`.")
    click.echo(f"removed {', '.join(removed)}")


def _interactive() -> bool:
    """True when both stdin and stderr are terminals, so a question can be asked and answered."""
    import sys

    return sys.stdin.isatty() and sys.stderr.isatty()


@cache_group.command("prune")
@click.option("--older-than", type=float, metavar="DAYS", help="Also remove entries unused for DAYS days.")
def prune_cmd(older_than: float | None) -> None:
    """Remove partial downloads of dead processes, the quarantine, and (with --older-than) old entries."""
    from zoo.store.maintenance import prune

    report = prune(_store(), older_than)
    click.echo(
        f"removed {len(report['partial'])} partial downloads, {len(report['quarantine'])} quarantined files, "
        f"{len(report['entries'])} old entries"
    )


@cache_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify_cmd(as_json: bool) -> None:
    """Re-hash every cached file offline; quarantine those that differ from their record (exit 1 if any).

    Conversions (pickles saved as safetensors) are also converted again from their origin and compared:
    one that differs is quarantined, one whose origin is gone is reported unverifiable.
    """
    from zoo.checkpoint.conversions import recheck
    from zoo.store.maintenance import verify

    store = _store()
    catalog = _declared_weights()
    results = verify(store, lambda record: recheck(store, record, catalog))
    bad = [r for r in results if r.status != "ok"]
    if as_json:
        echo_json([r.to_dict() for r in results])
    else:
        for r in bad:
            click.echo(
                f"{r.status}: {r.name}: {r.detail}" + (f" (quarantined in {r.quarantined})" if r.quarantined else "")
            )
        click.echo(f"{len(results) - len(bad)} ok, {len(bad)} bad")
    if bad:
        click.get_current_context().exit(1)


@cache_group.command("export")
@click.argument("dest", type=click.Path(path_type=Path))
@click.argument("names", nargs=-1)
def export_cmd(dest: Path, names: tuple[str, ...]) -> None:
    """Copy cached files (all, or NAMES) with their records to folder DEST or DEST.tar[.gz]."""
    from zoo.store.exchange import export

    exported = export(_store(), dest, _file_names(names) if names else None)
    click.echo(f"exported {len(exported)} files to {dest}")


@cache_group.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_cmd(sources: tuple[Path, ...], as_json: bool) -> None:
    """Import weights from folders, tar archives or files, verifying each (exit 1 if any is refused).

    Conversions are never taken from the import: zoo converts their origin again and compares.
    """
    from zoo.checkpoint.conversions import rebuild
    from zoo.registry import get_registry
    from zoo.store.exchange import import_paths

    known = [w.artifact for spec in get_registry().specs() for w in spec.weights.values()]
    store = _store()
    catalog = _declared_weights()
    report = import_paths(store, list(sources), known, lambda name: rebuild(store, name, catalog))
    if as_json:
        echo_json({"imported": report.imported, "refused": [{"file": f, "reason": r} for f, r in report.refused]})
    else:
        for name, reason in report.refused:
            click.echo(f"refused {name}: {reason}", err=True)
        click.echo(
            f"imported {len(report.imported)} files" + (f": {', '.join(report.imported)}" if report.imported else "")
        )
    if report.refused:
        click.get_current_context().exit(1)


def _declared_weights() -> Catalog:
    """Every (artifact, state_dict hook) the installed plugins declare: what a cached conversion is held to."""
    from zoo.registry import get_registry

    return [(w.artifact, spec.state_dict_hook) for spec in get_registry().specs() for w in spec.weights.values()]
