"""ultralytics models (YOLOv3u-YOLO26, RT-DETR: detect, segment, classify, pose, obb) as zoo models.

The names come from `catalog.json`, generated from ultralytics' own model yamls by `zoo_yolo._generate`
(a test checks that it still matches the installed ultralytics), so importing this never imports torch
or ultralytics. `yolov8n` loads ultralytics' released weights, fetched by the zoo store into the zoo
cache and converted once to safetensors without unpickling code; `yolov8n:none` builds the model from
its yaml with random weights. ultralytics does the pre- and post-processing (`zoo_yolo.task`) and the
training (`Model.finetune(data="data.yaml", ...)`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from zoo import ModelSpec, Plugin, Weights
from zoo_yolo.build import Arch, build, fp32_hook
from zoo_yolo.runtime import INSTALL_HINT

__all__ = ["TASKS", "plugin"]

_HERE = Path(__file__).resolve().parent
LICENSE = "AGPL-3.0"
#: zoo task name of each ultralytics task (the one vocabulary; oriented boxes are object detection too, the
#: ultralytics task stays in `spec.meta["ultralytics_task"]`); one task class runs them all through
#: ultralytics' predictors. The names used before (`ultralytics-detect`, ...) still resolve as aliases.
TASKS = {
    "detect": "object-detection",
    "segment": "instance-segmentation",
    "classify": "image-classification",
    "pose": "keypoint-detection",
    "obb": "object-detection",
}
_WHAT = {
    "detect": "object detector",
    "segment": "instance segmenter",
    "classify": "image classifier",
    "pose": "pose (keypoint) detector",
    "obb": "oriented-box detector",
}
_DATA = {"coco": "COCO", "imagenet": "ImageNet", "coco-pose": "COCO-pose", "dota": "DOTAv1"}

plugin = Plugin("ultralytics", description="ultralytics YOLO and RT-DETR models (detect, segment, classify, pose, obb)")
for _task in sorted(set(TASKS.values())):
    plugin.task(_task, "zoo_yolo.task:UltralyticsTask")
plugin.backend("ultralytics", home_env="YOLO_CONFIG_DIR", offline_env=("YOLO_OFFLINE",))


def _spec(name: str, entry: Mapping[str, Any], catalog: Mapping[str, Any]) -> ModelSpec:
    arch = Arch(cfg=entry["cfg"], scale=entry["scale"], task=entry["task"], family=entry["family"])
    labels = tuple(catalog["labels"][entry["labels"]])
    weights = {}
    if entry["weights"]:
        weights[catalog["release"]] = Weights(
            url=catalog["url"].format(release=catalog["release"], file=entry["weights"]),
            format="full-pickle",
            license=LICENSE,
            builder_kwargs={"num_classes": len(labels)},
            meta={"note": "upstream publishes no hash: the full sha256 is recorded at first download"},
        )
    classes = f"{len(labels)} class{'es' if len(labels) != 1 else ''}"
    trained = f"{_DATA[entry['labels']]}, {classes}" + ("" if weights else "; no released weights")
    return ModelSpec(
        name=name,
        task=TASKS[entry["task"]],
        builder=partial(build, arch, num_classes=len(labels)),
        plugin=plugin.name,
        labels=labels,
        weights=weights,
        default_weights=next(iter(weights), None),
        description=f"ultralytics {name} {_WHAT[entry['task']]} ({trained})",
        defaults={"num_classes": len(labels), "channels": 3},
        meta={
            "family": entry["family"],
            "ultralytics_task": entry["task"],
            "yaml": entry["cfg"],
            "scale": entry["scale"],
            "image_size": 224 if entry["task"] == "classify" else 640,
        },
        state_dict_hook=fp32_hook,
        requires={"ultralytics": INSTALL_HINT},
    )


def _declare(target: Plugin) -> None:
    catalog = json.loads((_HERE / "catalog.json").read_text(encoding="utf-8"))
    for name, entry in catalog["models"].items():
        target.add(_spec(name, entry, catalog))


_declare(plugin)
