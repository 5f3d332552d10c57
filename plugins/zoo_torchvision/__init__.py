"""Every torchvision model as a zoo model, declared from data (importing this never imports torch).

The specs come from `catalog.json`, generated from the installed torchvision by
`scripts/gen_torchvision_catalog.py` (every builder of `torchvision.models.list_models()`: classifiers,
detectors, instance and semantic segmentation, keypoints, video, optical flow, quantized classifiers); a
test checks that the catalog still matches torchvision.

A bare name loads the original ImageNet weights, `IMAGENET1K_V1`, as `pretrained=True` and the PyTorch
tutorials do (models without them load torchvision's default); `name:DEFAULT` loads torchvision's
current best weights (`weights="DEFAULT"`).

Quantized classifiers (`quantized_resnet18`, `quantized_mobilenet_v2`, ...) load their published int8 weights
like any other (`zoo.load("quantized_mobilenet_v2")`, `zoo.load("quantized_resnet18:IMAGENET1K_FBGEMM_V1")`): the
`.pth` file is read without running pickled code and converted once to safetensors (quantized tensors as their int
values plus scales and zero points, see `zoo.checkpoint.quantized`), then rebuilt exactly into the module
torchvision's builder makes with `quantize=True`. They run on the CPU only, with the engine of their weights tag
(`fbgemm` or `qnnpack`, `spec.meta["quantized_engines"]`; `backend=` picks another), set in
`torch.backends.quantized.engine` when the model is built. `name:none` with `quantize=True` builds the
quantized structure without weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from zoo import ImagePreprocess, ModelSpec, Plugin, Weights
from zoo_torchvision._build import KEY_HOOKS, build, chain_hooks, drop_prefixes

__all__ = ["HEADS", "plugin"]

_HERE = Path(__file__).resolve().parent
#: License of torchvision's weights unless the catalog names another (the SWAG weights link theirs).
DEFAULT_LICENSE = "BSD-3-Clause"
TASK = "image-classification"
#: The weights a bare name loads when the model has them.
ORIGINAL_TAG = "IMAGENET1K_V1"

#: Where each family's classifiers keep their head (`ModelSpec.head`), auxiliary heads after the main one.
HEADS: dict[str, str | tuple[str, ...]] = {
    "alexnet": "classifier.6",
    "convnext": "classifier.2",
    "densenet": "classifier",
    "efficientnet": "classifier.1",
    "googlenet": ("fc", "aux1.fc2", "aux2.fc2"),
    "inception": ("fc", "AuxLogits.fc"),
    "maxvit": "classifier.5",
    "mnasnet": "classifier.1",
    "mobilenetv2": "classifier.1",
    "mobilenetv3": "classifier.3",
    "regnet": "fc",
    "resnet": "fc",
    "shufflenetv2": "fc",
    "squeezenet": "classifier.1",
    "swin_transformer": "head",
    "vgg": "classifier.6",
    "vision_transformer": "heads.head",
}

plugin = Plugin(
    "torchvision",
    description="every torchvision model (classification, detection, segmentation, "
    "keypoints, video, optical flow, quantized), every weights tag",
)
for _task, _target in {
    "object-detection": "zoo.tasks.torchvision_detection:TorchvisionDetection",
    "instance-segmentation": "zoo.tasks.torchvision_detection:TorchvisionDetection",
    "keypoint-detection": "zoo.tasks.torchvision_detection:TorchvisionDetection",
    "semantic-segmentation": "zoo.tasks.segmentation:SemanticSegmentation",
    "video-classification": "zoo.tasks.video:VideoClassifier",
    "optical-flow": "zoo.tasks.optical_flow:OpticalFlowTask",
}.items():
    plugin.task(_task, _target)


def _read_json(name: str) -> Any:
    return json.loads((_HERE / name).read_text(encoding="utf-8"))


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples torchvision passes (e.g. MaxViT's `input_size`)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _weights(tag: Mapping[str, Any], label_sets: Mapping[str, tuple[str, ...]]) -> Weights:
    """`Weights` of one catalog tag."""
    return Weights(
        url=tag["url"],
        hash_prefix=tag["hash_prefix"],
        license=tag["license"] or DEFAULT_LICENSE,
        labels=label_sets[tag["labels"]] if tag["labels"] else (),  # () : features only, no class labels
        preprocess=ImagePreprocess.from_dict(tag["preprocess"]),
        builder_kwargs={key: _tuples(value) for key, value in tag["builder_kwargs"].items()},
        metrics=tag["metrics"],
        meta=tag["meta"],
    )


def _state_dict_hook(entry: Mapping[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """The hook that turns the model's upstream files into its module's keys, or None when they match."""
    tags = entry["tags"].values()
    hooks: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
    if any(tag.get("renames_keys") for tag in tags) and entry["family"] in KEY_HOOKS:
        hooks.append(KEY_HOOKS[entry["family"]])
    prefixes = sorted({prefix for tag in tags for prefix in tag.get("drop_prefixes", ())})
    if prefixes:
        hooks.append(partial(drop_prefixes, prefixes=tuple(prefixes)))
    if len(hooks) > 1:
        return partial(chain_hooks, hooks=tuple(hooks))
    return hooks[0] if hooks else None


def _spec(name: str, entry: Mapping[str, Any], label_sets: Mapping[str, tuple[str, ...]]) -> ModelSpec:
    """`ModelSpec` of one catalog model."""
    weights = {tag: _weights(data, label_sets) for tag, data in entry["tags"].items()}
    default_tag = ORIGINAL_TAG if ORIGINAL_TAG in weights else entry["default"]
    default = weights[default_tag]
    meta: dict[str, Any] = {
        "family": entry["family"],
        "summary": entry["summary"],
        "weights_enum": entry["weights_enum"],
    }
    quantized = {tag: data["meta"]["backend"] for tag, data in entry["tags"].items() if data.get("quantized")}
    if quantized:  # int8 weights: CPU only, each tag with the engine it was quantized for
        meta["quantized_engines"] = quantized
    keypoints = default.meta.get("keypoint_names")
    if keypoints:
        meta["keypoint_names"] = list(keypoints)
    return ModelSpec(
        name=name,
        task=entry.get("task", TASK),
        builder=partial(build, name),
        plugin=plugin.name,
        labels=default.labels or None,
        preprocess=default.preprocess,
        weights=weights,
        default_weights=default_tag,
        aliases={"DEFAULT": entry["default"]},
        description=entry["description"] + ("; int8, runs on the CPU" if quantized else ""),
        meta=meta,
        state_dict_hook=_state_dict_hook(entry),
        head=HEADS.get(entry["family"]),
    )


def _declare(target: Plugin, catalog: Mapping[str, Any]) -> None:
    """Add every model of `catalog` to `target`; label sets are read once and shared between specs."""
    label_sets = {key: tuple(_read_json(file)) for key, file in catalog["labels"].items()}
    for name, entry in catalog["models"].items():
        target.add(_spec(name, entry, label_sets))


_declare(plugin, _read_json("catalog.json"))
