"""`ImageOutput`: the image an image-to-image model made (style transfer, restoration, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.results._draw import save_picture

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ImageOutput"]


@dataclass(frozen=True, eq=False)
class ImageOutput:
    """The output image of one input.

    Attributes:
        image: the output as a PIL RGB image.
        source: where the input came from (a path, or `<input 3>`), when known.
        input: the input as the model saw it (after cropping), resized to the output's size, for
            `side_by_side()`; None when not kept.
        tiles: how many tiles the input was cut into (1 when it was processed whole).
    """

    image: Image.Image
    source: str | None = None
    input: Image.Image | None = field(default=None, repr=False)
    tiles: int = 1

    @property
    def size(self) -> tuple[int, int]:
        """`(width, height)` of the output."""
        return self.image.size

    def side_by_side(self) -> Image.Image:
        """Input and output next to each other, in one image (the output alone when no input was kept)."""
        from PIL import Image

        if self.input is None:
            return self.image.copy()
        left = self.input.convert("RGB").resize(self.image.size)
        canvas = Image.new("RGB", (left.width + self.image.width, self.image.height))
        canvas.paste(left, (0, 0))
        canvas.paste(self.image.convert("RGB"), (left.width, 0))
        return canvas

    def save(self, path: str | Path, *, side_by_side: bool = False) -> Path:
        """Save the output image (or the side-by-side pair); a folder gets `<source stem>.png`.

        Returns:
            The path written.
        """
        return save_picture(
            self.side_by_side() if side_by_side else self.image, path, self.source, name=None, suffix=".png"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source, output width and height, mode and tile count (not the pixels)."""
        return {
            "source": self.source,
            "width": self.image.width,
            "height": self.image.height,
            "mode": self.image.mode,
            "tiles": self.tiles,
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """One line: `me.jpg: 512x512 image`."""
        name = Path(self.source).name if self.source else "image"
        tiled = f" ({self.tiles} tiles)" if self.tiles > 1 else ""
        return f"{name}: {self.image.height}x{self.image.width} image{tiled}"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        where = f"{self.source!r}, " if self.source else ""
        return f"ImageOutput({where}{self.image.width}x{self.image.height})"
