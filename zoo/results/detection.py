"""`Detections`: the boxes an object detector found in one image, with their scores and labels."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from zoo.errors import UnsupportedError
from zoo.results._draw import save_picture

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

__all__ = ["Detections"]

#: Ultralytics' palette, so plots look like the ones in the YOLOv5 tutorials.
_PALETTE = (
    "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
    "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Detections:
    """Objects found in one image, best score first.

    Boxes are in the original image's pixels, `(x1, y1, x2, y2)`.

    Attributes:
        boxes: float32 array of shape (N, 4), xyxy in pixels of the original image.
        scores: float32 array of shape (N,): confidence (objectness x class probability for YOLO).
        class_ids: int64 array of shape (N,).
        labels: class label of each box (the class id as text when the model has no labels).
        size: `(width, height)` of the original image.
        source: where the image came from (a path, or `<input 3>`), when known.
        image: the original image as a uint8 HWC RGB array, for `plot()` and `save()`; None for an image
            read from a file, which `plot()` reads again (a folder of photos does not stay in memory).
        masks: bool array (N, height, width) in the original image's pixels (instance segmentation), or None.
        keypoints: float32 array (N, K, 3): x, y in pixels and a visibility or score (keypoint detection),
            or None.
        keypoint_names: the name of each of the K keypoints, when the model says.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]
    size: tuple[int, int]
    source: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    masks: np.ndarray | None = field(default=None, repr=False)
    keypoints: np.ndarray | None = field(default=None, repr=False)
    keypoint_names: tuple[str, ...] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    # -- box formats ----------------------------------------------------------------------------------

    @property
    def xyxy(self) -> np.ndarray:
        """Boxes as (x1, y1, x2, y2) pixels (the same array as `boxes`)."""
        return self.boxes

    @property
    def xywh(self) -> np.ndarray:
        """Boxes as (center x, center y, width, height) pixels."""
        import numpy as np

        b = self.boxes
        return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)

    @property
    def xyxyn(self) -> np.ndarray:
        """Boxes as (x1, y1, x2, y2) divided by the image width and height."""
        return self.boxes / self._scale()

    @property
    def xywhn(self) -> np.ndarray:
        """Boxes as (center x, center y, width, height) divided by the image width and height."""
        return self.xywh / self._scale()

    def _scale(self) -> np.ndarray:
        import numpy as np

        w, h = self.size
        return np.array([w, h, w, h], dtype=np.float32)

    # -- serialisation --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source, image size and a list of `{label, class_id, score, xyxy, xywhn}`, each with
        its `mask_area` (pixels) and `keypoints` (`[x, y, score]`, plus `keypoint_names` once) when present."""
        data = self._boxes_dict()
        for i, det in enumerate(data["detections"]):
            if self.masks is not None:
                det["mask_area"] = int(self.masks[i].sum())
            if self.keypoints is not None:
                det["keypoints"] = [[round(float(v), 2) for v in point] for point in self.keypoints[i]]
        if self.keypoint_names is not None:
            data["keypoint_names"] = list(self.keypoint_names)
        return data

    def _boxes_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.size[0],
            "height": self.size[1],
            "detections": [
                {
                    "label": label,
                    "class_id": int(cid),
                    "score": round(float(score), 5),
                    "xyxy": [round(float(v), 2) for v in box],
                    "xywhn": [round(float(v), 6) for v in norm],
                }
                for label, cid, score, box, norm in zip(
                    self.labels, self.class_ids, self.scores, self.boxes, self.xywhn
                )
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_df(self) -> Any:
        """A pandas DataFrame with YOLOv5's columns: xmin, ymin, xmax, ymax, confidence, class, name.

        Raises:
            UnsupportedError: pandas is not installed (`pip install 'zoo-sdk[pandas]'`).
        """
        try:
            import pandas as pd
        except ImportError:
            raise UnsupportedError("Detections.to_df() needs pandas: pip install 'zoo-sdk[pandas]'.") from None
        b = self.boxes
        return pd.DataFrame(
            {
                "xmin": b[:, 0],
                "ymin": b[:, 1],
                "xmax": b[:, 2],
                "ymax": b[:, 3],
                "confidence": self.scores,
                "class": self.class_ids,
                "name": list(self.labels),
            }
        )

    # -- people ---------------------------------------------------------------------------------------

    def summary(self) -> str:
        """One line like YOLOv5's `results.print()`: `bus.jpg: 1080x810 4 persons, 1 bus`."""
        counts = Counter(self.labels)
        found = ", ".join(f"{n} {label}{'s' * (n > 1)}" for label, n in counts.items()) or "(no detections)"
        name = Path(self.source).name if self.source else "image"
        return f"{name}: {self.size[1]}x{self.size[0]} {found}"

    def print(self, file: TextIO | None = None) -> None:
        """Write `summary()` and a line per box to `file` (stdout by default), like YOLOv5's `print()`."""
        out = file or sys.stdout
        out.write(self.summary() + "\n")
        for label, score, box in zip(self.labels, self.scores, self.boxes):
            coords = ", ".join(f"{v:.1f}" for v in box)
            out.write(f"  {label:<16} {float(score):.3f}  [{coords}]\n")

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        where = f"{self.source!r}, " if self.source else ""
        top = ", ".join(f"{label!r}: {float(s):.3f}" for label, s in zip(self.labels[:5], self.scores[:5]))
        more = f", +{len(self) - 5} more" if len(self) > 5 else ""
        extra = "".join(f", with {name}" for name in ("masks", "keypoints") if getattr(self, name) is not None)
        return f"Detections({where}{len(self)} boxes{': ' if top else ''}{top}{more}{extra})"

    # -- images ---------------------------------------------------------------------------------------

    def plot(self, *, line_width: int | None = None, font_size: int | None = None) -> Image.Image:
        """The image with the masks shaded, the keypoints drawn (COCO's 17 person keypoints joined by
        torchvision's white lines) and every box with its label and score, all by `torchvision.utils`
        (`draw_segmentation_masks`, `draw_keypoints`, `draw_bounding_boxes`). Each class has its own colour;
        a label sits on a tag of that colour in black or white text (whichever contrasts more), above its box
        or just inside it, and never past the image's edge. The font is a TrueType font the environment has
        (nothing is downloaded).

        Raises:
            UnsupportedError: the result holds no image (built from boxes only).
        """
        import numpy as np
        import torch
        from PIL import Image

        from zoo.results._draw import draw_labelled_boxes

        pixels = torch.from_numpy(np.array(self._original())).permute(2, 0, 1)  # a view: no copy
        pixels = self._draw_masks_and_keypoints(pixels)
        pixels = draw_labelled_boxes(
            pixels,
            self.boxes.tolist(),
            [f"{label} {float(score):.2f}" for label, score in zip(self.labels, self.scores)],
            [self._colour(cid) for cid in self.class_ids],
            width=line_width or max(round(sum(self.size) / 2 * 0.003), 2),
            font_size=font_size or max(round(sum(self.size) / 2 * 0.025), 12),
        )
        return Image.fromarray(pixels.permute(1, 2, 0).numpy())

    @staticmethod
    def _colour(class_id: Any) -> str:
        """The colour of a class: the same for the same class id in every picture."""
        return "#" + _PALETTE[int(class_id) % len(_PALETTE)]

    def _draw_masks_and_keypoints(self, pixels: torch.Tensor) -> torch.Tensor:
        """`pixels` (uint8 CHW) with the masks shaded and the keypoints drawn, when present."""
        import numpy as np
        import torch
        from torchvision.utils import draw_keypoints, draw_segmentation_masks

        from zoo.results._draw import COCO_KEYPOINTS, COCO_SKELETON

        colours = [self._colour(cid) for cid in self.class_ids]
        if self.masks is not None and len(self.masks):
            pixels = draw_segmentation_masks(pixels, torch.from_numpy(self.masks).bool(), alpha=0.45, colors=colours)
        if self.keypoints is not None and len(self.keypoints):
            points = torch.from_numpy(np.ascontiguousarray(self.keypoints[..., :2])).float()
            visible = torch.from_numpy(np.ascontiguousarray(self.keypoints[..., 2] > 0))
            radius = max(round(sum(self.size) / 2 * 0.004), 2)
            skeleton = list(COCO_SKELETON) if self.keypoint_names == COCO_KEYPOINTS else None  # white lines
            pixels = draw_keypoints(
                pixels, points, skeleton, colors="#00FF00", radius=radius, width=radius, visibility=visible
            )
        return pixels

    def _original(self) -> Image.Image:
        from PIL import Image

        if self.image is not None:
            return Image.fromarray(self.image).convert("RGB")
        if self.source and Path(self.source).is_file():
            from zoo.images import open_upright

            return open_upright(self.source)  # upright, as the boxes were found
        raise UnsupportedError("These detections hold no image to draw on: predict from an image to plot.")

    def save(self, path: str | Path = "runs/detect", *, name: str | None = None) -> Path:
        """Save `plot()` as an image; a folder (existing, or without a suffix) gets the source's file name.

        Returns:
            The path written.
        """
        return save_picture(self.plot(), path, self.source, name=name, suffix=".jpg")
