"""`zoo predict`: load a model and print its predictions for files, folders or globs."""

from __future__ import annotations

import click

from zoo.cli.render import echo_json


@click.command("predict")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-k", "--top-k", default=5, show_default=True, help="Classes per image.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("-b", "--batch-size", default=32, show_default=True, help="Images per forward pass.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict_cmd(name: str, inputs: tuple[str, ...], top_k: int, device: str, batch_size: int, as_json: bool) -> None:
    """Run model NAME on INPUTS (image files, folders or globs)."""
    from zoo import api

    model = api.load(name, device=device)
    results = model.predict(list(inputs), top_k=top_k, batch_size=batch_size)
    if as_json:
        echo_json([r.to_dict() for r in results])
        return
    for result in results:
        top = ", ".join(f"{label} ({score:.3f})" for label, score in zip(result.labels, result.scores))
        click.echo(f"{result.source}: {top}")
