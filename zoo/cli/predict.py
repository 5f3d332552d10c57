"""`zoo predict`: load a model and print its predictions for files, folders or globs."""

from __future__ import annotations

import warnings
from typing import Any

import click

from zoo.cli.checks import require_capability
from zoo.cli.render import echo_json
from zoo.errors import InputError, SkippedInputsWarning, ZooWarning

#: The flags that set a task option, by option name; `--save` is checked against the task's `plot` capability.
FLAGS = {"top_k": "--top-k", "batch_size": "--batch-size", "conf": "--conf", "iou": "--iou"}


@click.command("predict")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-k", "--top-k", type=int, default=5, show_default=True, help="Classification: classes per image.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("-b", "--batch-size", type=int, default=32, show_default=True, help="Images per forward pass.")
@click.option("--conf", type=float, help="Detection: minimum box score (default 0.25).")
@click.option("--iou", type=float, help="Detection: NMS IoU threshold (default 0.45).")
@click.option(
    "--save",
    "save_dir",
    type=click.Path(file_okay=False),
    help="Save result pictures here (boxes drawn, top-k labels written, output images).",
)
@click.option("--trust", is_flag=True, help="Trust the model's torch.hub repo for this run.")
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"results": [...], "errors": [...]}.')
def predict_cmd(
    name: str,
    inputs: tuple[str, ...],
    top_k: int,
    device: str,
    batch_size: int,
    conf: float | None,
    iou: float | None,
    save_dir: str | None,
    trust: bool,
    as_json: bool,
) -> None:
    """Run model NAME on INPUTS (image files, folders or globs).

    Unreadable images are skipped: the others' results are printed, each bad file is named on stderr,
    and the exit code is 1.
    """
    from zoo import api

    require_capability(name, "predict")  # refused before any download
    model = api.load(name, device=device, **({"trust": True} if trust else {}))
    given = {"top_k": top_k, "batch_size": batch_size, "conf": conf, "iou": iou}
    options = _options(model, given, save_dir is not None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooWarning)
        results = model.predict(list(inputs), **options)
    for warning in caught:
        if issubclass(warning.category, ZooWarning) and not issubclass(warning.category, SkippedInputsWarning):
            click.echo(f"warning: {warning.message}", err=True)
    skipped = list(getattr(results, "skipped", ()))
    saved = [str(r.save(save_dir)) for r in results if hasattr(r, "save")] if save_dir else []
    if as_json:
        echo_json({"results": [r.to_dict() for r in results], "errors": [s.to_dict() for s in skipped]})
    else:
        for result in results:
            click.echo(_line(result))
    for path in saved:
        click.echo(f"saved {path}", err=True)
    for bad in skipped:
        click.echo(f"error: {bad.error}", err=True)
    if skipped:
        raise click.exceptions.Exit(1)


def _options(model: Any, given: dict[str, Any], save: bool) -> dict[str, Any]:
    """The task options to pass: each flag the user set must be one the task takes (else a one-line error)."""
    ctx = click.get_current_context()
    task = model.task
    capabilities = type(task).capabilities(model.spec.task)
    capabilities.require("predict", model.name)
    options: dict[str, Any] = {}
    for option, value in given.items():
        set_by_user = ctx.get_parameter_source(option) is click.core.ParameterSource.COMMANDLINE
        if task.accepts(option):
            if value is not None:
                options[option] = value
        elif set_by_user:
            raise InputError(f"{FLAGS[option]} does not apply to {model.name} ({model.spec.task}){_valid(task)}.")
    if save and capabilities.plot is False:
        raise InputError(f"--save does not apply to {model.name} ({model.spec.task}): its results are not pictures.")
    if task.accepts("on_error"):
        options["on_error"] = "skip"
    return options


def _valid(task: Any) -> str:
    plot = type(task).capabilities().plot
    flags = [flag for option, flag in FLAGS.items() if task.accepts(option)] + ["--save"] * (plot is not False)
    return f": its options are {', '.join(flags)}" if flags else ""


def _line(result: object) -> str:
    """One line per result: the classification's top labels, else the result's own summary."""
    labels, scores = getattr(result, "labels", None), getattr(result, "scores", None)
    if hasattr(result, "indices") and labels is not None and scores is not None:
        top = ", ".join(f"{label} ({score:.3f})" for label, score in zip(labels, scores))
        return f"{getattr(result, 'source', None)}: {top}"
    summary = getattr(result, "summary", None)
    return summary() if callable(summary) else str(result)
