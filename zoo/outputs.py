"""Result files: one record per input (`input`, the result's fields, or `error`), written a batch at a time.

`zoo predict ... --out results.jsonl` (or `.csv`, `.parquet`) writes through `open_records`. JSON lines and
CSV are appended and flushed to disk (fsync) after every batch, so a run killed at any moment leaves every
finished batch on disk and at most one torn last line, which `--resume` cuts off before it reads the inputs
already done. Parquet files cannot be appended to: their records go to a JSON-lines journal next to the
file (`results.parquet.partial.jsonl`) while the run goes, and the Parquet file is written from the journal
(plus the records of the file being resumed) when the run ends.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from zoo.errors import InputError, ZooError

__all__ = ["RecordFile", "open_records", "record_of", "remaining_inputs"]

SUFFIXES = (".jsonl", ".csv", ".parquet")


def record_of(event: Any) -> dict[str, Any]:
    """The record of one result (`input` + its `to_dict()` fields) or one `SkippedInput` (`input` + `error`)."""
    from zoo.results.batch import SkippedInput

    if isinstance(event, SkippedInput):
        return {"input": event.source, "error": event.error}
    fields = dict(event.to_dict())
    source = fields.pop("source", None)
    return {"input": source, **fields}


class RecordFile:
    """An output file of records, opened for appending; `done` holds the inputs it already has.

    Attributes:
        path: the file.
        done: the `input` of every record already in the file (empty for a new file).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append one batch of records and make them durable (flush + fsync) before returning."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (Parquet: write it from the journal)."""

    def __enter__(self) -> RecordFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_records(path: str | os.PathLike[str], *, resume: bool = False) -> RecordFile:
    """Open `path` (`.jsonl`, `.csv` or `.parquet`) to write records into.

    Args:
        path: the output file; its suffix chooses the format.
        resume: continue an existing file: its records are kept (a torn last line is cut off) and their
            inputs are in `done`, to be skipped. Without it, an existing file is refused.

    Raises:
        InputError: an unknown suffix, an existing file without `resume`, or a missing pyarrow for Parquet.
        ZooError: a file to resume whose records cannot be read (not one written by `--out`).
    """
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"--out {target}: use a .jsonl, .csv or .parquet file.")
    if target.is_dir():
        raise InputError(f"--out {target} is a folder: name a .jsonl, .csv or .parquet file.")
    if not resume and (target.exists() or _journal(target).exists()):
        raise InputError(f"{target} already exists: pass --resume to continue it, or choose another file.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        return JsonLines(target)
    if suffix == ".csv":
        return CsvRecords(target)
    return ParquetRecords(target)


class JsonLines(RecordFile):
    """JSON lines: one record per line."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.done = {str(r.get("input")) for r in _read_json_lines(path)}
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        _sync(self._file)

    def close(self) -> None:
        self._file.close()


class CsvRecords(RecordFile):
    """CSV: one row per record; values that are lists or objects are written as JSON text.

    The columns are fixed by the first batch written (or the header of the file resumed): `input`, the
    result's fields, `error`.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._columns: list[str] | None = None
        if path.exists():
            text = _cut_torn_line(path).decode("utf-8")
            reader = csv.DictReader(io.StringIO(text))
            rows = list(reader)
            self._columns = list(reader.fieldnames or []) or None
            if self._columns is not None and "input" not in self._columns:
                raise ZooError(f"{path} has no 'input' column: it is not a file `zoo predict --out` wrote.")
            self.done = {row["input"] for row in rows}
        self._file = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - held open for the run

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self._columns is None:
            keys = [k for r in records for k in r if k not in ("input", "error")]
            self._columns = ["input", *dict.fromkeys(keys), "error"]
            csv.writer(self._file).writerow(self._columns)
        writer = csv.DictWriter(self._file, self._columns, extrasaction="ignore")
        for record in records:
            writer.writerow({k: _cell(v) for k, v in record.items()})
        _sync(self._file)

    def close(self) -> None:
        self._file.close()


class ParquetRecords(RecordFile):
    """Parquet (needs pyarrow): records journaled as JSON lines during the run, the file written at the end."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise InputError(
                "Writing .parquet needs pyarrow: pip install 'zoo-sdk[pandas]' pyarrow, or use --out results.jsonl."
            ) from exc
        self._previous = _read_parquet(path) if path.exists() else []
        self._journal = JsonLines(_journal(path))
        self.done = {str(r.get("input")) for r in self._previous} | self._journal.done

    def write(self, records: list[dict[str, Any]]) -> None:
        self._journal.write(records)

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._journal.close()
        records = self._previous + list(_read_json_lines(self._journal.path))
        if not records:
            self._journal.path.unlink(missing_ok=True)
            return
        columns = ["input", *dict.fromkeys(k for r in records for k in r if k not in ("input", "error")), "error"]
        table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in records])
        from zoo._atomic import atomic_path

        with atomic_path(self.path) as tmp:
            pq.write_table(table, tmp)
        self._journal.path.unlink()


def _journal(path: Path) -> Path:
    return path.with_name(path.name + ".partial.jsonl") if path.suffix.lower() == ".parquet" else path


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
        raise ZooError(f"Cannot read {path} as Parquet ({exc}): resume a file `zoo predict --out` wrote.") from exc


def _read_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file, after cutting off a torn last line (a run killed mid-write)."""
    if not path.exists():
        return
    for number, line in enumerate(_cut_torn_line(path).decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ZooError(
                f"{path} line {number} is not a JSON record: resume only a file `zoo predict --out` wrote."
            ) from exc
        if not isinstance(record, dict) or "input" not in record:
            raise ZooError(f"{path} line {number} has no 'input': resume only a file `zoo predict --out` wrote.")
        yield record


def _cut_torn_line(path: Path) -> bytes:
    """The file's complete lines; a partial last line (no newline: the write was cut) is truncated away on disk."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as file:
            file.truncate(end)
            file.flush()
            os.fsync(file.fileno())
        data = data[:end]
    return data


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, tuple, dict)) else value


def _sync(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())


def remaining(items: Iterable[Any], done: set[str]) -> list[Any]:
    """The image items whose source is not in `done`."""
    return [item for item in items if item.source not in done]


def remaining_inputs(inputs: list[str], done: set[str]) -> list[str]:
    """The image files of `inputs` (expanded like predict does) whose path is not already recorded."""
    from zoo.images import collect_images

    items, _ = collect_images(inputs)
    return [item.source for item in items if item.source not in done]
