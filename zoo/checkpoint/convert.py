"""`zoo convert`: any readable checkpoint to one safetensors file, without running pickled code."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from zoo.checkpoint.files import atomic_write, check_replaceable
from zoo.checkpoint.reader import read_tensors
from zoo.checkpoint.weights import flatten, save_safetensors
from zoo.errors import InputError

__all__ = ["DTYPES", "Conversion", "convert"]

#: `dtype=` choices: floating-point tensors are cast to it, others are kept.
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Conversion:
    """What `convert` wrote.

    Attributes:
        path: the safetensors file.
        tensors: number of tensors.
        nbytes: bytes of tensor data.
        source_format: format of the input (`torch-zip`, `pickle`, `safetensors`).
        key: the entry the state_dict came from ("" for the top level).
        reader: `weights_only`, `safe_pickle` or `safetensors`.
    """

    path: Path
    tensors: int
    nbytes: int
    source_format: str
    key: str
    reader: str


def _scales(layout: dict[str, str]) -> set[str]:
    """The quantization scales of a flattened quantized state_dict: kept in float64 whatever `dtype` asks."""
    from zoo.checkpoint.quantized import HEADER_KEY, SCALE

    return {key + SCALE for key in json.loads(layout[HEADER_KEY])["tensors"]} if layout else set()


def convert(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, key: str | None = None, dtype: str | None = None
) -> Conversion:
    """Write the state_dict held by `src` to the safetensors file `dst`, atomically.

    `src` may be a state_dict pickle (read with `torch.load(weights_only=True)`), a full-model pickle or
    a checkpoint dict holding other objects (read by `zoo.safe_pickle`, which runs no pickled code), or
    a safetensors file. TorchScript and tar archives are refused.

    Args:
        src: the checkpoint.
        dst: the `.safetensors` file to write; an existing file is replaced only if it is safetensors.
        key: dotted entry holding the state_dict (`model`, `ema`, `params_ema`); found by default.
        dtype: cast floating-point tensors to `float32`, `float16` or `bfloat16`.

    Raises:
        InputError: bad paths or options.
        UnsupportedError: the input is not a checkpoint zoo reads, or holds no state_dict.
    """
    import torch

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dst.suffix.lower() != ".safetensors":
        raise InputError(f"The output {dst.name} must end in .safetensors.")
    if dtype is not None and dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise InputError("The output would overwrite the input: choose another output path.")
    found = read_tensors(src, key=key)
    tensors, layout = flatten(found.tensors)
    if dtype is not None:
        target = getattr(torch, dtype)
        tensors = {
            k: t.to(target) if t.is_floating_point() and k not in _scales(layout) else t for k, t in tensors.items()
        }
    check_replaceable(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "zoo.source": src.name, **layout}
    if found.key:
        metadata["zoo.source_key"] = found.key
    atomic_write(dst, lambda tmp: save_safetensors(tensors, tmp, metadata))
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    return Conversion(dst, len(tensors), nbytes, found.format, found.key, found.reader)
