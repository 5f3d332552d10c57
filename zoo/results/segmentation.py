"""`Segmentation`: the class of every pixel of one image (semantic segmentation)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UnsupportedError
from zoo.results._draw import save_picture

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["Segmentation"]

_PALETTE = (
    "000000", "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334",
    "00D4BB", "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
)  # fmt: skip


def _colour(class_id: int) -> str:
    """The colour of a class (black for class 0, the background): the same in every picture."""
    return "#" + _PALETTE[class_id % len(_PALETTE)]


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The class of every pixel of one image.

    Attributes:
        class_map: int64 array (height, width) of class ids, in the original image's pixels: the model's
            logits upsampled bilinearly to the image size, then the best class per pixel.
        labels: the model's class labels (indexed by class id; the id as text when the model has none).
        source: where the image came from (a path, or `<input 3>`), when known.
        image: the original image as a uint8 HWC RGB array for `plot()`; None for a file, read again.
    """

    class_map: np.ndarray
    labels: tuple[str, ...]
    source: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """`(width, height)` of the image."""
        return int(self.class_map.shape[1]), int(self.class_map.shape[0])

    def label(self, class_id: int) -> str:
        """The label of `class_id`."""
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    @property
    def shares(self) -> dict[str, float]:
        """Share of the image's pixels per class present, largest first (`{"background": 0.62, ...}`)."""
        import numpy as np

        ids, counts = np.unique(self.class_map, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        total = float(self.class_map.size)
        return {self.label(int(ids[i])): float(counts[i]) / total for i in order}

    def mask(self, label: str | int) -> np.ndarray:
        """Bool array (height, width): the pixels of class `label` (a label or a class id)."""
        class_id = label if isinstance(label, int) else self.labels.index(label)
        return self.class_map == class_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source, image size and `{label, class_id, share}` per class present, largest first."""
        import numpy as np

        ids, counts = np.unique(self.class_map, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {
            "source": self.source,
            "width": self.size[0],
            "height": self.size[1],
            "classes": [
                {
                    "label": self.label(int(ids[i])),
                    "class_id": int(ids[i]),
                    "share": round(float(counts[i]) / self.class_map.size, 6),
                }
                for i in order
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """One line: `bus.jpg: 1080x810 background 62.1%, bus 30.2%, person 7.7%`."""
        name = Path(self.source).name if self.source else "image"
        found = ", ".join(f"{label} {share:.1%}" for label, share in list(self.shares.items())[:5])
        return f"{name}: {self.size[1]}x{self.size[0]} {found}"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        where = f"{self.source!r}, " if self.source else ""
        found = ", ".join(f"{label!r}: {share:.3f}" for label, share in list(self.shares.items())[:5])
        return f"Segmentation({where}{self.size[0]}x{self.size[1]}, {{{found}}})"

    def plot(self, *, alpha: float = 0.5, font_size: int | None = None) -> Image.Image:
        """The image with each class present (class 0, the background, left clear) shaded in its colour
        (`torchvision.utils.draw_segmentation_masks`) and a legend of the classes and their shares, each on a
        tag of its class colour in black or white text (`draw_bounding_boxes`), inside the picture.

        Raises:
            UnsupportedError: the result holds no image and its source is not a file.
        """
        import numpy as np
        import torch
        from PIL import Image
        from torchvision.utils import draw_segmentation_masks

        from zoo.results._draw import draw_tags, tag_height

        pixels = torch.from_numpy(np.array(self._original())).permute(2, 0, 1)  # a view: no copy
        ids = [int(i) for i in np.unique(self.class_map) if i != 0]
        if ids:
            masks = torch.stack([torch.from_numpy(self.class_map == i) for i in ids])
            pixels = draw_segmentation_masks(pixels, masks, alpha=alpha, colors=[_colour(i) for i in ids])
        size = font_size or max(round(min(self.size) * 0.035), 12)
        step = tag_height(size) + 2
        texts = [f"{label} {share:.1%}" for label, share in self.shares.items()]
        colours = [_colour(self.labels.index(label) if label in self.labels else 0) for label in self.shares]
        pixels = draw_tags(pixels, [(4, 4 + k * step) for k in range(len(texts))], texts, colours, font_size=size)
        return Image.fromarray(pixels.permute(1, 2, 0).numpy())

    def _original(self) -> Image.Image:
        from PIL import Image

        if self.image is not None:
            return Image.fromarray(self.image).convert("RGB")
        if self.source and Path(self.source).is_file():
            from zoo.images import open_upright

            return open_upright(self.source)
        raise UnsupportedError("This segmentation holds no image to draw on: predict from an image to plot.")

    def save(self, path: str | Path = "runs/segment", *, name: str | None = None) -> Path:
        """Save `plot()`; a folder (existing, or without a suffix) gets `<source stem>.png`. Returns the path."""
        return save_picture(self.plot(), path, self.source, name=name, suffix=".png")
