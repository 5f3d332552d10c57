"""Any YOLOv5 `.pt` (custom-trained too) as a zoo `Model`: read by the safe reader, cached as safetensors.

The architecture yaml, class names, stride and anchors come out of the checkpoint; no pickled code runs.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import UnsupportedError

if TYPE_CHECKING:
    import torch

    from zoo import Model

__all__ = ["convert", "load_checkpoint", "read_checkpoint"]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The float32 state_dict and `{"yaml", "names", "stride"}` of a YOLOv5 checkpoint, read safely.

    Raises:
        UnsupportedError: the file is not a YOLOv5 checkpoint (no pickled model with a yaml).
    """
    from zoo.ext import module_state_dict, read_pickle

    ckpt = read_pickle(path)
    stub = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else ckpt
    state = getattr(stub, "state", None)
    if not isinstance(state, dict) or not isinstance(state.get("yaml"), dict):
        raise UnsupportedError(f"{Path(path).name} is not a YOLOv5 checkpoint: no pickled model with a yaml in it.")
    names = state.get("names") or [str(i) for i in range(int(state["yaml"]["nc"]))]
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    stride = state.get("stride")
    meta = {"yaml": state["yaml"], "names": [str(n) for n in names],
            "stride": [float(s) for s in stride.tolist()] if hasattr(stride, "tolist") else None}  # fmt: skip
    tensors = module_state_dict(stub)
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, meta


def convert(src: Path, dst: Path) -> None:
    """Write a YOLOv5 checkpoint as safetensors, its yaml and names in the header metadata."""
    from safetensors.torch import save_file

    from zoo.ext import untie

    state, meta = read_checkpoint(src)
    save_file(untie(state), str(dst), metadata={"format": "pt", "zoo.yolov5": json.dumps(meta)})


def load_checkpoint(path: str | Path, *, device: str = "auto") -> Model:
    """Load a YOLOv5 `.pt` file as an object-detection `Model` (converted once, cached by content hash).

    The model is built like every other (`zoo.build.build_model`): on the meta device, its tensors loaded
    strictly, placed on `device` in eval mode (channels_last on CUDA).
    """
    from safetensors import safe_open

    from zoo import ModelSpec
    from zoo.ext import CacheEntry, ModelInfo, build_model, get_store, hash_file
    from zoo_hub.yolov5.arch import build

    path = Path(path)
    sha, size = hash_file(path)
    origin = CacheEntry(path, sha, size, str(path), in_cache=False)
    entry = get_store().derive(f"yolov5-{sha[:16]}.safetensors", "safetensors", origin, partial(convert, path))
    with safe_open(str(entry.path), "pt") as f:
        meta = json.loads(f.metadata()["zoo.yolov5"])
    names = tuple(meta["names"])
    spec = ModelSpec(name=path.stem.lower().replace(":", "_") or "yolov5", task="object-detection",
                     builder=partial(build, meta["yaml"], names=names), plugin="hub", labels=names,
                     meta={"family": "yolov5", "image_size": 640, "checkpoint": str(path)})  # fmt: skip
    info = ModelInfo(weights=path.name, labels=names, weights_sha256=entry.sha256)
    return build_model(spec, info=info, weights_file=entry.path, device=device)
