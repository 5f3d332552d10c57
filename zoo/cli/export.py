"""`zoo export`: write a model as ONNX, .pt2 or TorchScript with zoo's metadata, and check its parity."""

from __future__ import annotations

from pathlib import Path

import click

FORMAT_CHOICES = ("onnx", "torch.export", "torchscript")


@click.command("export")
@click.argument("name")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option(
    "-f", "--format", "format_", type=click.Choice(FORMAT_CHOICES), help="Default: from OUT's suffix, else onnx."
)
@click.option("--check/--no-check", default=True, show_default=True, help="Compare the export with the model.")
@click.option(
    "--images", multiple=True, type=click.Path(dir_okay=False), help="Images for --check (default: synthetic)."
)
@click.option("--tolerance", type=float, help="Largest max abs difference --check accepts (default by task).")
@click.option("--opset", type=int, help="ONNX opset (default: the exporter's).")
@click.option("--static-batch", is_flag=True, help="Fix the batch size instead of a dynamic batch axis.")
@click.option("--include-preprocess", is_flag=True, help="Normalize inside the graph (input RGB in [0, 1]).")
@click.option(
    "--exporter", type=click.Choice(("auto", "dynamo", "torchscript")), default="auto", show_default=True,
    help="ONNX exporter: auto tries dynamo (torch.export), then tracing.",
)  # fmt: skip
@click.option("--trust", is_flag=True, help="Trust the model's torch.hub repo for this run.")
def export_cmd(
    name: str,
    out: str,
    format_: str | None,
    check: bool,
    images: tuple[str, ...],
    tolerance: float | None,
    opset: int | None,
    static_batch: bool,
    include_preprocess: bool,
    exporter: str,
    trust: bool,
) -> None:
    """Export model NAME (a name or a checkpoint path) to OUT, then check it against the model."""
    from zoo import api
    from zoo.export import check_export

    format = format_ or _format_for(out)
    model = api.load(name, device="cpu", **({"trust": True} if trust else {}))
    path = model.export(
        out, format, dynamic_batch=not static_batch, opset=opset, include_preprocess=include_preprocess,
        exporter=exporter,
    )  # fmt: skip
    click.echo(f"exported {model.name} to {path} ({format}, {path.stat().st_size / 1e6:.1f} MB)")
    if check:
        parity = check_export(model, path, images, tolerance=tolerance)
        click.echo(
            f"check: max abs diff {parity.max_abs_diff:.3g} <= tolerance {parity.tolerance:.3g} "
            f"on {len(parity.inputs)} images ({', '.join(Path(i).name for i in parity.inputs)})"
        )


def _format_for(out: str) -> str:
    suffix = Path(out).suffix.lower()
    return {".pt2": "torch.export", ".torchscript": "torchscript", ".pt": "torchscript"}.get(suffix, "onnx")
