"""`zoo predict --engine ray`: the same records as the local engine, computed by Ray Data actors."""

from __future__ import annotations

import json
from typing import Any

import click

from zoo.errors import InputError

__all__ = ["run_on_ray"]


def run_on_ray(name: str, inputs: list[str], *, out: str | None, resume: bool, workers: int | str,
               address: str | None, device: str, options: dict[str, Any], trust: bool) -> None:  # fmt: skip
    """Predict `inputs` with `name` on Ray and write one record per input to `out` as batches finish."""
    from zoo import ray as zoo_ray
    from zoo.outputs import open_records

    if not out:
        raise InputError("--engine ray writes its results to a file: add --out results.jsonl (or .csv, .parquet).")
    if trust:
        raise InputError("--trust is not passed to Ray workers: trust the repo with `zoo trust` first.")
    zoo_ray.connect(address)  # before the output file is opened: a wrong address leaves nothing behind
    sink = open_records(out, resume=resume)
    skipped = 0
    try:
        todo = inputs
        if sink.done:
            from zoo.outputs import remaining_inputs

            todo = remaining_inputs(inputs, sink.done)
            click.echo(f"resuming {out}: {len(sink.done)} input(s) done, {len(todo)} to go", err=True)
            if not todo:
                return
        count = workers if isinstance(workers, int) and workers > 0 else None
        dataset = zoo_ray.predict(todo, name, address=address, num_workers=count, device=device, **options)
        for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
            records = [_record(row) for row in batch.to_dict("records")]  # type: ignore[union-attr]
            sink.write(records)
            for record in records:
                if "error" in record:
                    skipped += 1
                    click.echo(f"error: {record['error']}", err=True)
                else:
                    click.echo(json.dumps(record, ensure_ascii=False))
    finally:
        sink.close()
    if skipped:
        raise click.exceptions.Exit(1)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    error = row.get("error")
    if isinstance(error, str):
        return {"input": row["input"], "error": error}
    return {"input": row["input"], **json.loads(row["result"])}
