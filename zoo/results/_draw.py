"""Drawing helpers shared by the result types' `plot()`."""

from __future__ import annotations

from typing import Any

__all__ = ["default_font"]


def default_font(size: int) -> Any:
    """PIL's built-in font at `size` pixels (nothing is downloaded)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()
