"""`zoo predict`: load a model and print its predictions for files, folders or globs."""

from __future__ import annotations

import json
import warnings
from typing import Any

import click

from zoo.cli.checks import require_capability
from zoo.errors import InputError, SkippedInputsWarning, ZooWarning

#: The flags that set a task option, by option name; `--save` is checked against the task's `plot` capability.
FLAGS = {
    "top_k": "--top-k",
    "batch_size": "--batch-size",
    "conf": "--conf",
    "iou": "--iou",
    "memory_format": "--memory-format",
}


@click.command("predict")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-k", "--top-k", type=int, default=5, show_default=True, help="Classification: classes per image.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "-b",
    "--batch-size",
    type=int,
    help="Inputs per forward pass (default: the task's own: 32 for classification, 16 for YOLO detection, "
    "4 for torchvision detection and image-to-image).",
)
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
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    help="Write one record per input to this .jsonl, .csv or .parquet file, a batch at a time.",
)
@click.option("--resume", is_flag=True, help="With --out: keep the file's records and skip the inputs it has.")
@click.option(
    "--num-workers",
    default="auto",
    show_default=True,
    help="Threads decoding the next batches while one runs (a number, or auto); with --engine ray, Ray workers "
    "(auto: one per CPU of the cluster).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: run on a Ray cluster (needs zoo-sdk[ray] and --out).",
)
@click.option("--ray-address", help="With --engine ray: the cluster to join (default: start a local one).")
@click.option(
    "--memory-format",
    type=click.Choice(["channels_last", "contiguous_format"]),
    help="Classification: the layout of the batches the model gets; channels_last is often faster on a CPU, "
    "with scores that may differ in the 6th decimal (opt-in).",
)
def predict_cmd(
    name: str,
    inputs: tuple[str, ...],
    top_k: int,
    device: str,
    batch_size: int | None,
    conf: float | None,
    iou: float | None,
    save_dir: str | None,
    trust: bool,
    as_json: bool,
    out: str | None,
    resume: bool,
    num_workers: str,
    engine: str,
    ray_address: str | None,
    memory_format: str | None,
) -> None:
    """Run model NAME on INPUTS (image files, folders or globs).

    Results are printed as each batch is done. Unreadable images are skipped: the others' results are
    printed, each bad file is named on stderr, and the exit code is 1. With --out, every input gets a
    record in the file (its result, or its error), written and flushed a batch at a time; --resume
    continues a file left by a run that was stopped, skipping the inputs it already holds.
    """
    from zoo import api
    from zoo.outputs import open_records, remaining_inputs

    require_capability(name, "predict")  # refused before any download
    if resume and not out:
        raise InputError("--resume goes with --out FILE: the file whose inputs are skipped.")
    workers = _workers(num_workers)
    if engine == "ray":
        from zoo.cli.ray import run_on_ray

        given = {"top_k": top_k, "batch_size": batch_size, "conf": conf, "iou": iou, "memory_format": memory_format}
        ctx = click.get_current_context()
        chosen = {
            k: v for k, v in given.items() if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE
        }
        run_on_ray(name, list(inputs), out=out, resume=resume, workers=workers, address=ray_address,
                   device=device, options=chosen, trust=trust)  # fmt: skip
        return
    model = api.load(name, device=device, **({"trust": True} if trust else {}))
    given = {"top_k": top_k, "batch_size": batch_size, "conf": conf, "iou": iou, "memory_format": memory_format}
    options = _options(model, given, save_dir is not None)
    for option, value in (("stream", True), ("num_workers", workers)):
        if model.task.accepts(option):
            options[option] = value
    sink = open_records(out, resume=resume) if out else None
    todo: list[Any] = list(inputs)
    try:
        if sink is not None and sink.done:
            todo = remaining_inputs(todo, sink.done)
            click.echo(f"resuming {out}: {len(sink.done)} input(s) done, {len(todo)} to go", err=True)
            if not todo:
                return
        skipped = _run(model, todo, options, sink, save_dir, as_json)
    finally:
        if sink is not None:
            sink.close()
    if skipped:
        raise click.exceptions.Exit(1)


def _run(model: Any, todo: list[Any], options: dict[str, Any], sink: Any, save_dir: str | None, as_json: bool) -> int:
    """Predict, rendering (and writing) each batch as soon as it is done; returns the number of inputs skipped."""
    from zoo.outputs import record_of
    from zoo.results.batch import SkippedInput

    skipped = 0
    first = True
    errors: list[dict[str, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ZooWarning)
        for batch in _batches(model.predict(todo, **options)):
            _warn(caught)
            for event in batch:
                if isinstance(event, SkippedInput):
                    skipped += 1
                    errors.append(event.to_dict())
                    click.echo(f"error: {event.error}", err=True)
                elif as_json:
                    text = json.dumps(event.to_dict(), ensure_ascii=False)
                    click.echo(('{"results": [\n' if first else ",\n") + text, nl=False)
                    first = False
                else:
                    click.echo(_line(event))
                if save_dir and not isinstance(event, SkippedInput) and hasattr(event, "save"):
                    click.echo(f"saved {event.save(save_dir)}", err=True)
            if sink is not None:
                sink.write([record_of(event) for event in batch])
        _warn(caught)
    if as_json:
        opening = '{"results": [' if first else "\n"
        click.echo(opening + '],\n"errors": ' + json.dumps(errors, ensure_ascii=False) + "}")
    return skipped


def _batches(results: Any) -> Any:
    """Batches of results and `SkippedInput`s from a `ResultStream`; one batch for a task that does not stream."""
    batches = getattr(results, "batches", None)
    if batches is not None:
        return batches()
    found = results if isinstance(results, list) else [results]
    return [[*found, *getattr(results, "skipped", ())]]


def _warn(caught: list[Any]) -> None:
    """Print the zoo warnings recorded so far (not the skipped-inputs one: each error is printed) and forget them."""
    for warning in caught:
        if issubclass(warning.category, ZooWarning) and not issubclass(warning.category, SkippedInputsWarning):
            click.echo(f"warning: {warning.message}", err=True)
    caught.clear()


def _workers(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit():
        raise InputError(f"--num-workers {value}: use a number (0 or more) or auto.")
    return int(value)


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
