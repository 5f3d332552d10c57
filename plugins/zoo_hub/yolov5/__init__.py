"""YOLOv5 n/s/m/l/x as catalog models: zoo's own implementation by default, ultralytics/yolov5's hub code
with `backend="hub"`. Importing this never imports torch."""

from __future__ import annotations

from functools import partial
from typing import Any

from zoo import ModelSpec, Plugin, Weights
from zoo_hub.yolov5.config import COCO_NAMES, SIZES, model_yaml

__all__ = ["RELEASE", "build", "declare", "fp32_hook"]

RELEASE = "v7.0"
URL = "https://github.com/ultralytics/yolov5/releases/download/{release}/yolov5{size}.pt"
HUB_REPO = ("ultralytics", "yolov5")
TASK = "object-detection"
#: Arguments that choose hub code, trust or its source: only a caller sets them, never a checkpoint.
CALLER_ONLY = frozenset({"backend", "trust", "repo", "ref"})


def declare(plugin: Plugin) -> None:
    """Add yolov5n ... yolov5x to `plugin`."""
    for size, (_, _, params, map5095) in SIZES.items():
        weights = Weights(
            url=URL.format(release=RELEASE, size=size),
            format="full-pickle",
            license="AGPL-3.0",
            metrics={"mAP50-95": map5095},
            meta={
                "params_m": params,
                "note": "upstream publishes no hash: the full sha256 is recorded at first download",
            },
        )
        plugin.add(
            ModelSpec(
                name=f"yolov5{size}",
                task=TASK,
                builder=partial(build, size),
                plugin=plugin.name,
                labels=COCO_NAMES,
                weights={RELEASE: weights},
                default_weights=RELEASE,
                description=f"YOLOv5{size} object detector (COCO, 80 classes); backend='native' or 'hub'",
                defaults={"backend": "native", "nc": 80},
                caller_only=CALLER_ONLY,
                meta={"family": "yolov5", "image_size": 640, "hub": f"{'/'.join(HUB_REPO)}:{RELEASE}/yolov5{size}"},
                state_dict_hook=fp32_hook,
            )
        )


def fp32_hook(state: dict[str, Any]) -> dict[str, Any]:
    """Float tensors as float32 (YOLOv5 checkpoints are saved in half precision)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def build(size: str, *, backend: str = "native", nc: int = 80, trust: bool | None = None, repo: str | None = None,
          ref: str = RELEASE) -> Any:  # fmt: skip
    """A YOLOv5 model of `size` with `nc` classes (weights are loaded by zoo afterwards).

    Args:
        size: n, s, m, l or x.
        backend: "native" (zoo's own implementation) or "hub" (ultralytics/yolov5's code, trust needed).
        nc: number of classes.
        trust: for `backend="hub"`: True trusts ultralytics/yolov5 for this call.
        repo: for `backend="hub"`: a local clone to use instead of the GitHub snapshot.
        ref: for `backend="hub"`: the tag, branch or commit of ultralytics/yolov5.
    """
    if backend == "native":
        from zoo_hub.yolov5.arch import build as build_native

        return build_native(model_yaml(size, nc), names=COCO_NAMES if nc == 80 else None)
    if backend == "hub":
        from zoo_hub.yolov5.hub import build_hub

        return build_hub(size, nc=nc, trust=trust, repo=repo, ref=ref)
    from zoo import UnsupportedError

    raise UnsupportedError(f"YOLOv5 backend {backend!r} is unknown: use backend='native' or backend='hub'.")
