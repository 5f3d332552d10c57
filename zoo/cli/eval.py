"""`zoo eval`: measure a model on labelled data (an ImageFolder, a COCO json, a YOLO folder, images with class
masks); print or save it."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.render import echo_json


@click.command("eval")
@click.argument("name")
@click.argument("data")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("-b", "--batch-size", type=int, default=32, show_default=True, help="Images per forward pass.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Write confusion_matrix.png and metrics.json here."
)
@click.option("--trust", is_flag=True, help="Trust the model's torch.hub repo for this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(name: str, data: str, device: str, batch_size: int, out: Path | None, trust: bool, as_json: bool) -> None:
    """Evaluate model NAME on DATA: an ImageFolder (DATA/<class>/<image>, folders named after the model's
    labels; DATA/val is used when DATA holds train/ and val/), or for a detector a COCO annotations .json
    file or a YOLO folder (images/ and labels/), or for a semantic-segmentation model a folder with images/
    and masks/ (PNGs of class ids, 255 = ignore) or VOC's JPEGImages/ and SegmentationClass/.

    Prints top-1, top-5 and per-class precision, recall and F1 (detectors: COCO mAP@[.5:.95], mAP@.5 and
    per-class AP; segmentation: mIoU, pixel accuracy and per-class IoU), with the same preprocessing as
    `zoo predict`.
    """
    from zoo import api
    from zoo.cli.checks import require_capability

    require_capability(name, "evaluate")  # refused before any download
    model = api.load(name, device=device, **({"trust": True} if trust else {}))
    result = model.evaluate(data, batch_size=batch_size)
    saved = result.save(out) if out is not None else None
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(str(result))
    for path in result.skipped:
        click.echo(f"error: could not read {path}", err=True)
    if saved is not None:
        click.echo(f"saved {saved}", err=True)
