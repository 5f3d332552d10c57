"""`zoo list`, `zoo info` and `zoo plugins`: what is available, never importing torch."""

from __future__ import annotations

import json
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
    """Show a model's task, labels, preprocessing and weights tags; for a checkpoint path, what it holds."""
    from zoo.names import is_path

    if is_path(name):
        _checkpoint_info(name, as_json)
        return
    spec, tag = get_registry().resolve(name)
    summary = spec.summary(tag)
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{spec.qualified_name}  ({spec.task})")
    if spec.description:
        click.echo(f"  {spec.description}")
    click.echo(f"  labels: {summary['num_labels'] or '-'}   default weights: {_default(spec)}")
    if not _pretrained(spec):
        click.echo("  no pretrained weights: predictions are random until it is fine-tuned")
    p = spec.preprocess_for(summary["weights_tag"])
    if p is not None:
        tag = summary["weights_tag"] or "random init"
        click.echo(
            f"  preprocess ({tag}): resize {p.resize}, crop {p.crop}, {p.interpolation}, mean {p.mean}, std {p.std}"
        )
    if spec.defaults:
        click.echo("  arguments: " + ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()))
    if spec.weights:
        rows = []
        for tag, w in summary["weights"].items():
            metrics = ", ".join(f"{k} {v}" for k, v in w["metrics"].items())
            default = " (default)" if tag == spec.default_weights else ""
            rows.append((tag + default, w["file"], w["hash_prefix"] or (w["sha256"] or "")[:12], metrics))
        table(None, ["weights", "file", "sha256", "metrics"], rows)


def _checkpoint_info(path: str, as_json: bool) -> None:
    """`zoo info PATH`: the model a checkpoint holds, its weights tag, labels, preprocessing and builder arguments."""
    found = api.checkpoint_info(path)
    summary = {"path": path, **found.summary()}
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{path}: checkpoint of {summary['qualified_name']}  ({found.task or '-'})")
    click.echo(f"  weights: started from {found.weights or 'random init'}   labels: {summary['num_labels'] or '-'}")
    if found.preprocess:
        p = found.preprocess
        click.echo(f"  preprocess: resize {p.resize}, crop {p.crop}, {p.interpolation}, mean {p.mean}, std {p.std}")
    if found.builder_kwargs:
        click.echo("  arguments: " + ", ".join(f"{k}={v!r}" for k, v in found.builder_kwargs.items()))
    if found.training:
        click.echo(f"  training: {json.dumps(found.training, sort_keys=True, default=str)[:200]}")
    if found.zoo_version or found.torch_version:
        click.echo(f"  written by zoo {found.zoo_version or '?'}, torch {found.torch_version or '?'}")


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
    """Show discovered plugins: loaded, failed (and why), disabled, and every clash with both owners.

    A clash is a model name, an entry-point name, a `scheme:` or a command that two plugins declare; each
    owner's row names the other and its distribution.
    """
    infos = api.plugins()
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    rows = [(i.name, i.distribution or "", i.status, i.version or "", i.models, i.source, i.reason) for i in infos]
    table(None, ["plugin", "distribution", "status", "version", "models", "entry point", "notes"], rows)
