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
@click.option("--conf", type=float, help="Detection: minimum box score (default 0.25).")
@click.option("--iou", type=float, help="Detection: NMS IoU threshold (default 0.45).")
@click.option(
    "--save", "save_dir", type=click.Path(file_okay=False), help="Save result images (boxes drawn, outputs) here."
)
@click.option("--trust", is_flag=True, help="Trust the model's torch.hub repo for this run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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
    """Run model NAME on INPUTS (image files, folders or globs)."""
    from zoo import api

    model = api.load(name, device=device, **({"trust": True} if trust else {}))
    options: dict[str, object] = {"batch_size": batch_size}
    if model.spec.task == "image-classification":
        options["top_k"] = top_k
    options.update({k: v for k, v in {"conf": conf, "iou": iou}.items() if v is not None})
    results = model.predict(list(inputs), **options)
    saved = [str(r.save(save_dir)) for r in results if hasattr(r, "save")] if save_dir else []
    if as_json:
        echo_json([r.to_dict() for r in results])
    else:
        for result in results:
            click.echo(_line(result))
    for path in saved:
        click.echo(f"saved {path}", err=True)


def _line(result: object) -> str:
    """One line per result: the classification's top labels, else the result's own summary."""
    labels, scores = getattr(result, "labels", None), getattr(result, "scores", None)
    if hasattr(result, "indices") and labels is not None and scores is not None:
        top = ", ".join(f"{label} ({score:.3f})" for label, score in zip(labels, scores))
        return f"{getattr(result, 'source', None)}: {top}"
    summary = getattr(result, "summary", None)
    return summary() if callable(summary) else str(result)
