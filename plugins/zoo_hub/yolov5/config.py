"""The YOLOv5 family as data: the v6/v7 architecture yaml (as a dict), the per-size multiples, COCO's names."""

from __future__ import annotations

from typing import Any

__all__ = ["COCO_NAMES", "SIZES", "model_yaml"]

#: depth_multiple, width_multiple, params (M), mAP50-95 on COCO val at 640 (ultralytics' v7.0 table).
SIZES: dict[str, tuple[float, float, float, float]] = {
    "n": (0.33, 0.25, 1.9, 28.0),
    "s": (0.33, 0.50, 7.2, 37.4),
    "m": (0.67, 0.75, 21.2, 45.4),
    "l": (1.0, 1.0, 46.5, 49.0),
    "x": (1.33, 1.25, 86.7, 50.7),
}

_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
_BACKBONE = [
    [-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
    [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]], [-1, 9, "C3", [512]],
    [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]], [-1, 1, "SPPF", [1024, 5]],
]  # fmt: skip
_HEAD = [
    [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
    [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
    [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]],
    [[-1, 14], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]],
    [[-1, 10], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]], [[17, 20, 23], 1, "Detect", ["nc", "anchors"]],
]  # fmt: skip


def model_yaml(size: str, nc: int = 80) -> dict[str, Any]:
    """The yolov5{size}.yaml of ultralytics/yolov5 v6.0+ as a dict."""
    depth, width = SIZES[size][:2]
    return {
        "nc": nc,
        "depth_multiple": depth,
        "width_multiple": width,
        "anchors": [list(a) for a in _ANCHORS],
        "backbone": [[f, n, m, list(a)] for f, n, m, a in _BACKBONE],
        "head": [[list(f) if isinstance(f, list) else f, n, m, list(a)] for f, n, m, a in _HEAD],
    }


COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
