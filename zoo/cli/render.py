"""Rendering helpers shared by the CLI commands (rich is imported only when a table is drawn)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["echo_json", "table"]


def echo_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table: rich on a terminal; plain tab-separated columns, with a header line, elsewhere."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not sys.stdout.isatty():
        if title:
            click.echo(title)
        for line in [list(columns), *cells]:
            click.echo("\t".join(line))
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in cells:
        grid.add_row(*row)
    Console(soft_wrap=False).print(grid)
