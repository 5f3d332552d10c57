"""Results of ultralytics models as zoo results: `Detections` with masks, keypoints or oriented boxes, and
`Classification` for classifiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo import Classification, Detections

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["PALETTE", "YoloDetections", "to_zoo"]

#: Mask colors by class id (ultralytics' palette).
PALETTE = (
    "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
    "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
)  # fmt: skip
#: Skeleton of the 17 COCO keypoints, drawn by `plot()` (pairs of keypoint indices).
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


@dataclass(frozen=True, eq=False, repr=False)
class YoloDetections(Detections):
    """`Detections` (whose `masks` and `keypoints` segmentation and pose models fill) with oriented boxes.

    Attributes:
        obb: float32 array (N, 5): center x, center y, width, height, rotation in radians (obb), or None;
            `boxes` then holds each oriented box's axis-aligned bounds.
    """

    obb: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """`Detections.to_dict` (with `mask_area` and `keypoints`), each detection with its `obb` when present."""
        data = super().to_dict()
        for i, det in enumerate(data["detections"]):
            if self.obb is not None:
                det["obb"] = [round(float(v), 4) for v in self.obb[i]]
        return data

    def plot(self, *, line_width: int | None = None, font_size: int | None = None) -> Image.Image:
        """`Detections.plot` (masks shaded, keypoints drawn), with the COCO skeleton joined."""
        from PIL import Image, ImageDraw

        canvas = super().plot(line_width=line_width, font_size=font_size)
        if self.keypoints is not None and len(self.keypoints):
            draw = ImageDraw.Draw(canvas)
            radius = max(round(sum(self.size) / 2 * 0.004), 2)
            for points in self.keypoints:
                _skeleton(draw, points, radius)
        return canvas if isinstance(canvas, Image.Image) else Image.fromarray(canvas)


def _skeleton(draw: Any, points: np.ndarray, radius: int, threshold: float = 0.5) -> None:
    visible = [float(p[2]) >= threshold if len(p) > 2 else True for p in points]
    if len(points) == 17:
        for a, b in COCO_SKELETON:
            if visible[a] and visible[b]:
                draw.line((*map(float, points[a][:2]), *map(float, points[b][:2])), fill="#FF8000", width=radius)
    for point, seen in zip(points, visible):
        if seen:
            x, y = float(point[0]), float(point[1])
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill="#00FF00")


def to_zoo(
    result: Any, *, labels: Sequence[str] | None, source: str, image: np.ndarray, top_k: int = 5
) -> YoloDetections | Classification:
    """One ultralytics `Results` as a zoo result (`Classification` for a classifier).

    Args:
        result: an `ultralytics.engine.results.Results`.
        labels: class labels (None: ids as text).
        source: where the image came from.
        image: the original image, uint8 HWC RGB.
        top_k: classes kept by a classifier's result.
    """
    import numpy as np

    def name(i: int) -> str:
        return labels[i] if labels and i < len(labels) else str(i)

    if result.probs is not None:
        probs = result.probs.data.float().cpu()
        k = min(top_k, probs.numel())
        scores, indices = probs.topk(k)
        ids = tuple(int(i) for i in indices.tolist())
        return Classification(tuple(name(i) for i in ids), tuple(float(s) for s in scores.tolist()), ids, source)
    extra: dict[str, Any] = {}
    if result.obb is not None:
        found = result.obb
        extra["obb"] = found.xywhr.float().cpu().numpy().astype(np.float32)
    else:
        found = result.boxes
    boxes = found.xyxy.float().cpu().numpy().astype(np.float32)
    scores = found.conf.float().cpu().numpy().astype(np.float32)
    class_ids = found.cls.cpu().numpy().astype(np.int64)
    if result.masks is not None:
        extra["masks"] = result.masks.data.cpu().numpy().astype(bool)
    if result.keypoints is not None:
        extra["keypoints"] = result.keypoints.data.float().cpu().numpy().astype(np.float32)
    height, width = image.shape[:2]
    names = tuple(name(int(i)) for i in class_ids)
    return YoloDetections(boxes, scores, class_ids, names, (width, height), source, image, **extra)
