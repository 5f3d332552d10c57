"""The `zoo` command line: parse, call the API, render. Errors become one line and a non-zero exit."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from zoo._version import __version__
from zoo.errors import ZooError

__all__ = ["cli", "main"]


class ZooGroup(click.Group):
    """A click group that turns `ZooError` (and an `OSError` on a named path) into `error: <message>` and exit
    code 1, in one place.

    Besides its own commands it offers those plugins add with `Plugin.command`, found only when a name
    is not one of its own (so `zoo list` does not pay for them).
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        from zoo.registry import get_registry

        return get_registry().command(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from zoo.registry import get_registry

        return sorted({*super().list_commands(ctx), *get_registry().command_names()})

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # a path the user named that cannot be read or written: not a bug, one line
            if exc.filename is None:
                raise
            logging.getLogger(__name__).debug("%s", exc, exc_info=True)
            click.echo(f"error: {exc.strerror or exc}: {exc.filename}. Check the path and its permissions.", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zoo", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """PyTorch models from every source behind one API."""
    level = logging.WARNING - 10 * min(verbose, 2)
    if sys.stderr.isatty():  # through the console progress bars draw on, so a log line never breaks a bar
        from zoo.progress import log_handler

        logging.basicConfig(level=level, format="%(name)s: %(message)s", handlers=[log_handler()])
    else:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


#: Commands as `module:attribute`, one per line (a command module imports only what it needs).
COMMANDS = [
    "zoo.cli.models:list_cmd",
    "zoo.cli.models:info_cmd",
    "zoo.cli.models:plugins_cmd",
    "zoo.cli.predict:predict_cmd",
    "zoo.cli.fetch:fetch_cmd",
    "zoo.cli.cache:cache_group",
    "zoo.cli.convert:convert_cmd",
    "zoo.cli.finetune:finetune_cmd",
    "zoo.cli.eval:eval_cmd",
    "zoo.cli.trust:trust_cmd",
    "zoo.cli.export:export_cmd",
    "zoo.cli.serve:serve_cmd",
]


def _register_commands() -> None:
    import importlib

    for target in COMMANDS:
        module, _, attr = target.partition(":")
        cli.add_command(getattr(importlib.import_module(module), attr))


_register_commands()


def main() -> None:
    """Entry point of the `zoo` console script and `python -m zoo`."""
    cli(prog_name="zoo")
