"""Drawing helpers shared by the result types' `plot()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["default_font", "save_picture"]


def save_picture(picture: Any, path: str | Path, source: str | None, *, name: str | None, suffix: str) -> Path:
    """Write the PIL image `picture` to `path`; a folder (existing, or a path without a suffix) gets
    `<name or the source's stem><suffix>`. JPEGs are written at quality 95. Returns the path written."""
    target = Path(path)
    if target.is_dir() or not target.suffix:
        target.mkdir(parents=True, exist_ok=True)
        stem = name or (Path(source).stem if source and not source.startswith("<") else "image")
        target = target / f"{stem}{suffix}"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    picture.save(target, quality=95) if target.suffix.lower() in {".jpg", ".jpeg"} else picture.save(target)
    return target


def default_font(size: int) -> Any:
    """PIL's built-in font at `size` pixels (nothing is downloaded)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()
