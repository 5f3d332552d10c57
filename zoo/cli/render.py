"""Rendering helpers shared by the CLI commands (rich is imported only when a table is drawn)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["echo_json", "table"]


def echo_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table (rich on a terminal, plain columns elsewhere)."""
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(width=200, soft_wrap=False)
    console.print(grid)
