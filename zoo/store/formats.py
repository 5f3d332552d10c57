"""What a cached file's bytes must look like: format checks, and the byte-stable form of safetensors headers.

A file with no published hash is pinned on its first download; before that, `check_format` makes sure it
is a complete file of its declared format (a cut-short zip, safetensors or gzip fails here). Conversions
are made byte-stable by `canonicalize_safetensors`, because the safetensors library writes its
``__metadata__`` keys in hash order, which differs from process to process.

Pure standard library: nothing here imports torch or safetensors.
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import zipfile
from pathlib import Path
from typing import Any

from zoo._atomic import atomic_write
from zoo.errors import UnsupportedError

__all__ = ["FormatError", "canonicalize_safetensors", "check_format", "safetensors_header"]

_ZIP = b"PK\x03\x04"
_GZIP = b"\x1f\x8b"
#: The safetensors library refuses headers above 100 MB; so does this reader.
_MAX_HEADER = 100_000_000
_PICKLE_FORMATS = ("state_dict-pickle", "full-pickle", "torchscript")


class FormatError(UnsupportedError):
    """A file that is not a complete file of the format it should have."""


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed JSON header of a safetensors file and its length in bytes (padding included).

    Raises:
        FormatError: no complete header, or tensor data that does not end exactly at the end of the file.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            raise FormatError(f"{path.name} is {size} bytes: too short for a safetensors header")
        length = int.from_bytes(first, "little")
        if length > min(_MAX_HEADER, size - 8):
            raise FormatError(f"{path.name} declares a {length}-byte header but holds {size} bytes: cut short?")
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path.name} has no valid safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path.name} has no valid safetensors header (not a JSON object)")
    end = 0
    for key, value in header.items():
        if key == "__metadata__":
            continue
        offsets = value.get("data_offsets") if isinstance(value, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise FormatError(f"{path.name}: tensor {key!r} has no valid data_offsets")
        end = max(end, offsets[1])
    if 8 + length + end != size:
        raise FormatError(f"{path.name} holds {size} bytes but its header describes {8 + length + end}: cut short?")
    return header, length


def check_format(path: Path, fmt: str) -> None:
    """Check that `path` is a complete, readable file of format `fmt`, without running any code.

    - `safetensors`: the header parses and the tensor data ends exactly at the end of the file;
    - pickles and TorchScript: a zip (torch >= 1.6) whose every member's CRC matches, or a legacy
      pickle stream that parses to its STOP opcode;
    - `repo` (a file of a commit-pinned repo, or a repo archive: read and checked by its own reader) and
      `file` (any bytes): nothing to check here.

    Raises:
        FormatError: what is wrong with it.
    """
    with open(path, "rb") as f:
        magic = f.read(4)
    if fmt == "safetensors":
        safetensors_header(path)
    elif fmt in _PICKLE_FORMATS:
        if magic == _ZIP:
            _check_zip(path)
        elif fmt == "torchscript":
            raise FormatError(f"{path.name} is not a zip archive, as TorchScript files are")
        else:
            _check_pickle(path)


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise FormatError(f"{path.name} is not a complete zip archive ({exc})") from None
    if bad is not None:
        raise FormatError(f"{path.name}: member {bad!r} of its zip archive is damaged")


def _check_pickle(path: Path) -> None:
    with open(path, "rb") as f:
        try:
            for opcode, _, _ in pickletools.genops(f):
                if opcode.name == "STOP":
                    return
        except Exception as exc:  # noqa: BLE001 - pickletools raises ValueError, EOFError, KeyError...
            raise FormatError(f"{path.name} is not a complete pickle ({type(exc).__name__}: {exc})") from None
    raise FormatError(f"{path.name} is not a complete pickle (no STOP opcode)")


def canonicalize_safetensors(path: Path) -> None:
    """Rewrite the header of a safetensors file in one fixed form, so equal tensors give equal bytes.

    The form: ``__metadata__`` first with its keys sorted, then the tensors in the order of their data,
    compact JSON, padded with spaces to a multiple of 8 bytes. The tensor data is not touched; when the
    new header has the old one's length (the usual case: only key order changes) it is written in place.

    Raises:
        FormatError: `path` is not a complete safetensors file.
    """
    header, length = safetensors_header(path)
    out: dict[str, Any] = {}
    if "__metadata__" in header:
        metadata = header["__metadata__"]
        out["__metadata__"] = dict(sorted(metadata.items())) if isinstance(metadata, dict) else metadata
    tensors = sorted((k for k in header if k != "__metadata__"), key=lambda k: (header[k]["data_offsets"], k))
    out.update((k, header[k]) for k in tensors)
    raw = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    if len(raw) == length:
        with open(path, "r+b") as f:
            f.seek(8)
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        return
    with atomic_write(path) as dst:
        dst.write(len(raw).to_bytes(8, "little") + raw)
        with open(path, "rb") as src:
            src.seek(8 + length)
            shutil.copyfileobj(src, dst, 1 << 22)
