"""`zoo hub ls` and `zoo hub help`: read torch.hub repos without running them (a command this plugin adds)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from zoo.ext import echo_json, table

if TYPE_CHECKING:
    from zoo_hub.hubconf import HubConf
    from zoo_hub.repo import HubRepo


def _hubconf(repo: str) -> tuple[HubRepo, HubConf]:
    """The located repo and its statically read hubconf (imports the hub plugin's readers)."""
    from zoo_hub.hubconf import read_hubconf
    from zoo_hub.names import parse_repo
    from zoo_hub.repo import locate

    found = locate(parse_repo(repo))
    return found, read_hubconf(found.root)


@click.group("hub")
def hub_cmd() -> None:
    """Read torch.hub repos (entry points, docstrings) without running their code."""


@hub_cmd.command("ls")
@click.argument("repo")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def hub_ls(repo: str, as_json: bool) -> None:
    """List the entry points of REPO (owner/repo[:ref] or a local folder), from the cached copy."""
    found, conf = _hubconf(repo)
    entries = conf.entries.values()
    if as_json:
        echo_json(
            {
                "repo": found.key,
                "commit": found.commit,
                "dependencies": list(conf.dependencies),
                "entries": [{"name": e.name, "signature": e.signature, "doc": e.doc} for e in entries],
            }
        )
        return
    at = f" @ {found.commit[:12]}" if found.commit else ""
    click.echo(f"{found.key}{at}  ({found.root})")
    deps = ", ".join(conf.dependencies) or "-"
    click.echo(f"  dependencies: {deps}")
    table(None, ["entry point", "summary"], [(e.name, (e.doc.strip().splitlines() or [""])[0]) for e in entries])


@hub_cmd.command("help")
@click.argument("repo")
@click.argument("entry")
def hub_help(repo: str, entry: str) -> None:
    """Show the signature and docstring of ENTRY in REPO (nothing is run)."""
    _, conf = _hubconf(repo)
    found = conf.entry(entry)
    click.echo(f"{found.name}({found.signature})")
    click.echo(found.doc or "(no docstring)")
