"""`OpticalFlow`: the motion of every pixel from one frame to the next."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.results._draw import save_picture

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["OpticalFlow"]


@dataclass(frozen=True, eq=False)
class OpticalFlow:
    """The flow field between two frames.

    Attributes:
        flow: float32 array (2, height, width): horizontal and vertical motion in pixels of the first frame.
        source: where the first frame came from, when known.
    """

    flow: np.ndarray
    source: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """`(width, height)` of the frames."""
        return int(self.flow.shape[2]), int(self.flow.shape[1])

    @property
    def magnitude(self) -> np.ndarray:
        """Motion length per pixel, (height, width)."""
        import numpy as np

        return np.hypot(self.flow[0], self.flow[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: source, size, mean and max motion (pixels); not the field itself."""
        magnitude = self.magnitude
        return {
            "source": self.source,
            "width": self.size[0],
            "height": self.size[1],
            "mean_motion": round(float(magnitude.mean()), 4),
            "max_motion": round(float(magnitude.max()), 4),
        }

    def to_json(self, **kwargs: Any) -> str:
        """`to_dict` as JSON text; keyword arguments go to `json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def plot(self) -> Image.Image:
        """The flow as colors (`torchvision.utils.flow_to_image`: hue is direction, saturation is length)."""
        import torch
        from PIL import Image
        from torchvision.utils import flow_to_image

        pixels = flow_to_image(torch.from_numpy(self.flow).float())
        return Image.fromarray(pixels.permute(1, 2, 0).numpy())

    def save(self, path: str | Path = "runs/flow", *, name: str | None = None) -> Path:
        """Save `plot()`; a folder (existing, or without a suffix) gets `<source stem>.png`. Returns the path."""
        return save_picture(self.plot(), path, self.source, name=name, suffix=".png")

    def __repr__(self) -> str:
        data = self.to_dict()
        where = f"{self.source!r}, " if self.source else ""
        return f"OpticalFlow({where}{data['width']}x{data['height']}, mean {data['mean_motion']:.2f} px)"
