"""`Classification`: the top-k result of an image or sequence classifier."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UnsupportedError
from zoo.results._draw import save_picture

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Classification"]


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one input, best first.

    Attributes:
        labels: class labels, best first (the index as text when the model has no labels).
        scores: softmax probabilities, descending.
        indices: class indices into the model's output.
        source: where the input came from (a path, or `<input 3>`), when known.
    """

    labels: tuple[str, ...]
    scores: tuple[float, ...]
    indices: tuple[int, ...]
    source: str | None = None

    @property
    def label(self) -> str:
        """The top-1 label."""
        return self.labels[0]

    @property
    def score(self) -> float:
        """The top-1 score."""
        return self.scores[0]

    @property
    def index(self) -> int:
        """The top-1 class index."""
        return self.indices[0]

    def __len__(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source and a list of `{label, index, score}`, best first."""
        return {
            "source": self.source,
            "top": [
                {"label": label, "index": index, "score": score}
                for label, index, score in zip(self.labels, self.indices, self.scores)
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def plot(self, image: Any = None, *, font_size: int | None = None) -> Image.Image:
        """The image with its top-k labels and scores written in its top-left corner, white on black tags
        (`torchvision.utils.draw_bounding_boxes`, with a TrueType font the environment has).

        Args:
            image: the picture to draw on (a PIL image or a path); default the source file, upright.
            font_size: text height in pixels; default scales with the image.

        Raises:
            UnsupportedError: no image given and the source is not a file.
        """
        import numpy as np
        import torch
        from PIL import Image as PILImage

        from zoo.images import open_upright
        from zoo.results._draw import draw_tags, tag_height

        if image is None:
            if not (self.source and Path(self.source).is_file()):
                raise UnsupportedError(
                    "This classification holds no image to draw on: predict from a file, or pass plot(image=...)."
                )
            image = self.source
        canvas = open_upright(image) if not isinstance(image, PILImage.Image) else image.convert("RGB")
        size = font_size or max(round(min(canvas.size) * 0.04), 12)
        lines = [f"{label} {score:.3f}" for label, score in zip(self.labels, self.scores)]
        spots = [(4, 4 + k * (tag_height(size) + 2)) for k in range(len(lines))]
        pixels = torch.from_numpy(np.array(canvas)).permute(2, 0, 1)
        pixels = draw_tags(pixels, spots, lines, ["#000000"] * len(lines), font_size=size)
        return PILImage.fromarray(pixels.permute(1, 2, 0).numpy())

    def save(self, path: str | Path = "runs/classify", *, name: str | None = None) -> Path:
        """Save `plot()` as an image; a folder (existing, or without a suffix) gets `<source stem>.jpg`.

        Returns:
            The path written.
        """
        return save_picture(self.plot(), path, self.source, name=name, suffix=".jpg")

    def __repr__(self) -> str:
        top = ", ".join(f"{label!r}: {score:.3f}" for label, score in zip(self.labels, self.scores))
        where = f"{self.source!r}, " if self.source else ""
        return f"Classification({where}{{{top}}})"
