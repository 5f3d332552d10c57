"""`build_model`: the one place a `Model` is made, from a spec, what it is (`ModelInfo`) and a weights file.

Catalog loads (`zoo.load("resnet18")`), checkpoint loads (`zoo.load("lenet5.safetensors")`) and plugin formats
(a YOLOv5 `.pt` file) all come here, so every model is built, loaded and placed on its device the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from zoo._frozen import thaw
from zoo.model import Model, ModelInfo

if TYPE_CHECKING:
    import torch

    from zoo.specs import ModelSpec

__all__ = ["build_model"]


def build_model(
    spec: ModelSpec,
    *,
    info: ModelInfo | None = None,
    weights_file: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = "auto",
) -> Model:
    """Build `spec`'s module, load `weights_file` into it, place it on `device` and wrap it in a `Model`.

    With a weights file, the module is built on the meta device and the tensors are assigned (no random
    init is paid) and loaded strictly: a missing or unexpected key is an error that names it. Without one,
    the module keeps the builder's own initialisation (random, or weights the builder loads itself).
    The module is then put in eval mode on the device (channels_last on CUDA).

    Args:
        spec: the model's `ModelSpec`; its builder is called with `info.builder_kwargs`.
        info: what the model is (weights tag and hash, labels, preprocessing, builder arguments, training);
            None: `ModelInfo.for_spec(spec)`, a random-init model with the spec's labels and preprocessing.
        weights_file: a safetensors file of the module's tensors (module versions in its header are kept).
        device: "auto" (cuda > mps > cpu, `ZOO_DEVICE` first), "cpu", "cuda:1", a `torch.device`, ...; a
            quantized (int8) module runs on the CPU only: "auto" gives it the CPU.

    Returns:
        The `Model`, its `info` the one given.

    Raises:
        ZooError: the builder refuses its arguments or returns no module, or the tensors do not fit it.
        UnsupportedError: the device is not available here, or another than the CPU for a quantized module.
    """
    from zoo.checkpoint import build_module
    from zoo.checkpoint.quantized import device_for, is_quantized_file, is_quantized_module
    from zoo.device import place_module, resolve_device

    info = info if info is not None else ModelInfo.for_spec(spec)
    target = resolve_device(device)
    state_path = Path(weights_file) if weights_file is not None else None
    if state_path is not None and target.type != "cpu":  # int8 weights: refuse another device before the build
        target = device_for(spec.name, is_quantized_file(state_path), device, target)
    module = build_module(spec.builder, thaw(info.builder_kwargs), state_path)
    if target.type != "cpu":  # only another device than the CPU needs the quantized check (and its walk)
        target = device_for(spec.name, is_quantized_module(module), device, target)
    return Model(place_module(module, target), spec, info=info, device=target)
