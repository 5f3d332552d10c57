"""Real-ESRGAN `.pth` checkpoints as zoo models: read without running pickled code, cached as safetensors.

Upstream saves `{"params": state_dict}`, or `{"params_ema": ..., "params": ...}` from training (the EMA
weights are the ones to use). The file is read by zoo's safe pickle reader, which calls nothing the pickle
names; the architecture (width, depth, scale) is read from the tensors' shapes and checked against the
module it describes; the tensors are written once to a safetensors file in zoo's cache (`Store.derive`,
keyed by the checkpoint's sha256), so later loads are a memory map.
"""

from __future__ import annotations

import json
import os
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import InputError, ModelSpec, UnsupportedError

if TYPE_CHECKING:
    import torch

    from zoo import Model
    from zoo.ext import CacheEntry

__all__ = ["PARAM_KEYS", "architecture", "cached", "convert", "load_checkpoint", "read_checkpoint"]

#: Where upstream keeps the state_dict, in the order it prefers them.
PARAM_KEYS = ("params_ema", "params")
_META_KEY = "zoo.realesrgan"
_BODY = re.compile(r"body\.(\d+)\.weight")


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The float32 state_dict of a Real-ESRGAN SRVGGNetCompact checkpoint and its architecture, read safely.

    Raises:
        UnsupportedError: not a torch checkpoint, or not one of an SRVGGNetCompact.
    """
    import torch

    from zoo.ext import read_pickle

    name = Path(path).name
    ckpt = read_pickle(path)
    found = next((ckpt[k] for k in PARAM_KEYS if isinstance(ckpt, dict) and isinstance(ckpt.get(k), dict)), None)
    if found is None:
        raise UnsupportedError(f"{name} is not a Real-ESRGAN checkpoint: it has no 'params_ema' or 'params' entry.")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in found.items()):
        raise UnsupportedError(f"{name} is not a Real-ESRGAN checkpoint: its params hold something else than tensors.")
    state = {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in found.items()}
    return state, architecture(state, name)


def architecture(state: dict[str, torch.Tensor], name: str = "the checkpoint") -> dict[str, int]:
    """`{"num_feat", "num_conv", "upscale"}` of the SRVGGNetCompact whose state_dict is `state`.

    Raises:
        UnsupportedError: the tensors are not exactly those of an SRVGGNetCompact with PReLU activations.
    """
    import torch

    from zoo_realesrgan.arch import SRVGGNetCompact

    convs = sorted(int(m[1]) for k in state if (m := _BODY.fullmatch(k)) and state[k].ndim == 4)
    if not convs or convs[0] != 0 or len(convs) < 2:
        raise UnsupportedError(f"{name} is not an SRVGGNetCompact checkpoint: no body.0 convolution.")
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    upscale = round((last.shape[0] / first.shape[1]) ** 0.5)
    arch = {"num_feat": int(first.shape[0]), "num_conv": len(convs) - 2, "upscale": upscale}
    with torch.device("meta"):
        module = SRVGGNetCompact(num_in_ch=first.shape[1], **arch)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise UnsupportedError(
            f"{name} is not an SRVGGNetCompact checkpoint with PReLU activations ({', '.join(wrong[:3])} do not fit)."
        )
    return arch


# --8<-- [start:format]
def convert(src: Path, dst: Path) -> None:
    """Write a Real-ESRGAN checkpoint as safetensors, its architecture in the header metadata."""
    from safetensors.torch import save_file

    from zoo.ext import untie

    state, arch = read_checkpoint(src)
    save_file(untie(state), str(dst), metadata={"format": "pt", _META_KEY: json.dumps(arch)})


def cached(path: str | os.PathLike[str]) -> tuple[CacheEntry, dict[str, Any]]:
    """The safetensors conversion of the checkpoint at `path` (made once, then found by content hash) and the
    architecture recorded in it.

    Raises:
        InputError: nothing at `path`.
        UnsupportedError: the file is not a Real-ESRGAN SRVGGNetCompact checkpoint.
    """
    from safetensors import safe_open

    from zoo.ext import CacheEntry, get_store, hash_file, parse_json

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file.")
    sha, size = hash_file(path)
    origin = CacheEntry(path, sha, size, str(path), in_cache=False)
    entry = get_store().derive(f"realesrgan-{sha[:16]}.safetensors", "safetensors", origin, partial(convert, path))
    with safe_open(str(entry.path), "pt") as f:
        arch = parse_json((f.metadata() or {}).get(_META_KEY, "null"), what="architecture", source=entry.path.name)
    return entry, arch


def load_checkpoint(path: str | os.PathLike[str], *, device: str | torch.device | None = "auto") -> Model:
    """Load a Real-ESRGAN SRVGGNetCompact `.pth` file as a `super-resolution` model.

    Args:
        path: the checkpoint (`{"params": ...}` or `{"params_ema": ...}`).
        device: "auto", "cpu", "cuda:1", ...

    Raises:
        InputError: nothing at `path`, or a damaged conversion in the cache.
        UnsupportedError: the file is not a Real-ESRGAN SRVGGNetCompact checkpoint.
    """
    from zoo.ext import ModelInfo, build_model, file_kwargs
    from zoo_realesrgan import TASK, srvgg_compact

    path = Path(path)
    entry, arch = cached(path)
    name = re.sub(r"[^a-z0-9._+-]+", "-", path.stem.lower()).strip("-.") or "realesrgan"
    spec = ModelSpec(name=name, task=TASK, builder=srvgg_compact, plugin="realesrgan",
                     meta={"family": "real-esrgan", "checkpoint": str(path)})  # fmt: skip
    kwargs = file_kwargs(spec, arch, source=entry.path.name)  # data read from a file: checked against the builder
    info = ModelInfo(weights=path.name, builder_kwargs=kwargs, weights_sha256=entry.sha256)
    return build_model(spec, info=info, weights_file=entry.path, device=device)


# --8<-- [end:format]
