"""`zoo list`, `zoo info` and `zoo plugins`: what is available, never importing torch."""

from __future__ import annotations

from typing import Any

import click

from zoo import api
from zoo.cli.render import echo_json, table
from zoo.errors import ZooError
from zoo.registry import get_registry


@click.command("list")
@click.argument("pattern", required=False)
@click.option("--task", help="Only models of this task, e.g. image-classification.")
@click.option("--plugin", help="Only models of this plugin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(pattern: str | None, task: str | None, plugin: str | None, as_json: bool) -> None:
    """List models, optionally matching PATTERN (fnmatch, e.g. 'resnet*')."""
    specs = get_registry().specs(pattern, task=task, plugin=plugin)
    if as_json:
        echo_json(
            [
                {
                    "name": s.name,
                    "qualified_name": s.qualified_name,
                    "plugin": s.plugin,
                    "task": s.task,
                    "default_weights": s.default_weights,
                    "weights": list(s.weights),
                    "pretrained": _pretrained(s),
                    "description": s.description,
                }
                for s in specs
            ]
        )
        return
    if not specs:
        if pattern or task or plugin:
            raise ZooError("No model matches these filters: see `zoo list` for every model.")
        raise ZooError("No models: no plugin is loaded. See `zoo plugins`.")
    rows = [(s.name, s.task, s.plugin, _default(s), len(s.weights), s.description) for s in specs]
    table(None, ["name", "task", "plugin", "default weights", "tags", "description"], rows)


@click.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_cmd(name: str, as_json: bool) -> None:
    """Show a model's task, labels, preprocessing and weights tags."""
    spec = api.info(name)
    summary = spec.summary()
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{spec.qualified_name}  ({spec.task})")
    if spec.description:
        click.echo(f"  {spec.description}")
    click.echo(f"  labels: {summary['num_labels'] or '-'}   default weights: {_default(spec)}")
    if not _pretrained(spec):
        click.echo("  no pretrained weights: predictions are random until it is fine-tuned")
    if spec.preprocess:
        p = spec.preprocess
        click.echo(f"  preprocess: resize {p.resize}, crop {p.crop}, {p.interpolation}, mean {p.mean}, std {p.std}")
    if spec.defaults:
        click.echo("  arguments: " + ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()))
    if spec.weights:
        rows = []
        for tag, w in summary["weights"].items():
            metrics = ", ".join(f"{k} {v}" for k, v in w["metrics"].items())
            default = " (default)" if tag == spec.default_weights else ""
            rows.append((tag + default, w["file"], w["hash_prefix"] or (w["sha256"] or "")[:12], metrics))
        table(None, ["weights", "file", "sha256", "metrics"], rows)


def _pretrained(spec: Any) -> bool:
    """Whether the model has pretrained weights (tags, or a builder that loads its own)."""
    return bool(spec.weights) or bool(spec.meta.get("weights_in_builder"))


def _default(spec: Any) -> str:
    """The default weights tag, or `random init` (and the tags to ask for) when the bare name loads none."""
    if spec.default_weights or spec.meta.get("weights_in_builder"):
        return spec.default_weights or "(builder's own)"
    return f"random init (tags: {', '.join(spec.weights)})" if spec.weights else "random init (no pretrained weights)"


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_cmd(as_json: bool) -> None:
    """Show discovered plugins: loaded, failed (and why), disabled, clashing names."""
    infos = api.plugins()
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    rows = [(i.name, i.status, i.version or "", i.models, i.source, i.reason) for i in infos]
    table(None, ["plugin", "status", "version", "models", "entry point", "notes"], rows)
