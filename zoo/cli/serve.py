"""`zoo serve`: serve models over HTTP with dynamic batching, metrics and a browser page."""

from __future__ import annotations

import click


@click.command("serve")
@click.argument("names", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@click.option("--max-batch", type=int, default=32, show_default=True, help="Most requests in one forward batch.")
@click.option(
    "--batch-timeout-ms", type=float, default=10, show_default=True, help="How long a batch waits for more requests."
)
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes (each loads the models).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--queue-size", type=int, default=256, show_default=True, help="Waiting requests per model before 503.")
@click.option("--max-mb", type=float, default=20, show_default=True, help="Largest request body, in MB (413 above).")
@click.option("--max-pixels", type=int, default=40_000_000, show_default=True, help="Largest image (413 above).")
@click.option(
    "--calibrate/--no-calibrate", default=True, show_default=True,
    help="Measure batch sizes at startup and cap batches at the fastest per image (else: --max-batch).",
)  # fmt: skip
def serve_cmd(
    names: tuple[str, ...],
    host: str,
    port: int,
    max_batch: int,
    batch_timeout_ms: float,
    workers: int,
    device: str,
    queue_size: int,
    max_mb: float,
    max_pixels: int,
    calibrate: bool,
) -> None:
    """Serve models NAMES (names or paths: checkpoints, .onnx, .pt2) over HTTP.

    POST /v1/models/NAME/predict with an image; GET / for a page to try it; set ZOO_SERVE_TOKEN to require
    'Authorization: Bearer <token>'.
    """
    from zoo.serve import serve

    click.echo(f"zoo serve: loading {', '.join(names)}; then http://{host}:{port}/ (Ctrl-C stops)", err=True)
    serve(
        names, host=host, port=port, max_batch=max_batch, batch_timeout_ms=batch_timeout_ms, workers=workers,
        device=device, queue_size=queue_size, max_bytes=int(max_mb * 2**20), max_pixels=max_pixels,
        calibrate=calibrate,
    )  # fmt: skip
