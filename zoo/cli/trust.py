"""`zoo trust`: trust torch.hub repos (any commit, or one commit) so their code may run."""

from __future__ import annotations

import click

from zoo.cli.render import table
from zoo.errors import ZooError


@click.command("trust")
@click.argument("entries", nargs=-1)
@click.option("--remove", is_flag=True, help="Remove the entries instead of adding them.")
@click.option("--list", "show", is_flag=True, help="List the trust rules in force and where they come from.")
def trust_cmd(entries: tuple[str, ...], remove: bool, show: bool) -> None:
    """Trust hub repos: ENTRIES are owner/repo (any commit), owner/repo@SHA (that commit) or folders.

    The first time code of a commit-pinned repo runs, the sha256 of its archive is recorded: other bytes for
    that commit are refused afterwards. `--remove owner/repo@SHA` also forgets that record.
    """
    from zoo import trust

    if not entries and not show:
        raise ZooError("Name a repo to trust (owner/repo or owner/repo@sha), or pass --list.")
    for entry in entries:
        if remove:
            gone = trust.remove(entry)
            click.echo(f"{'removed' if gone else 'not in the trust file'}: {entry}")
        else:
            click.echo(f"trusted: {trust.add(entry)} (in {trust.trust_file()})")
    if show:
        rows = [(str(rule), rule.source) for rule in trust.rules()]
        table(None, ["trusted", "from"], rows) if rows else click.echo("nothing is trusted")
        bound = trust.archive_bindings()
        if bound:
            table(None, ["commit bound to its archive", "archive sha256"], sorted(bound.items()))
