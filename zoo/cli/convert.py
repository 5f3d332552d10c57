"""`zoo convert`: extract the state_dict of a checkpoint into a safetensors file, running no pickled code."""

from __future__ import annotations

import click

from zoo.cli.render import echo_json

_READERS = {
    "weights_only": "torch.load(weights_only=True)",
    "safe_pickle": "zoo's safe reader (no pickled code run)",
    "safetensors": "safetensors",
}


@click.command("convert")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--key", help="Entry holding the state_dict, dotted (model, ema, params_ema). Found by default.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), help="Cast floating-point tensors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def convert_cmd(src: str, dst: str, key: str | None, dtype: str | None, as_json: bool) -> None:
    """Convert checkpoint SRC (.pt/.pth state_dict or full-model pickle) to DST.safetensors.

    Pickles are read with torch.load(weights_only=True), else by zoo's safe reader, which turns every
    class and function the pickle names into an inert stand-in: no pickled code ever runs. TorchScript
    and tar archives are refused. DST is written atomically.
    """
    from zoo.checkpoint import convert

    done = convert(src, dst, key=key, dtype=dtype)
    if as_json:
        echo_json(
            {
                "path": str(done.path),
                "tensors": done.tensors,
                "bytes": done.nbytes,
                "source_format": done.source_format,
                "key": done.key,
                "reader": done.reader,
            }
        )
        return
    entry = f" entry {done.key!r}" if done.key else ""
    click.echo(f"read {src}{entry} ({done.source_format}) with {_READERS.get(done.reader, done.reader)}")
    click.echo(f"wrote {done.path}: {done.tensors} tensors, {done.nbytes / 1e6:.2f} MB")
