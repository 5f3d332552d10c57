"""Drawing helpers shared by the result types' `plot()`: the font, class colours, labelled boxes and tags drawn
with `torchvision.utils`, and saving a picture."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "COCO_KEYPOINTS",
    "COCO_SKELETON",
    "default_font",
    "draw_labelled_boxes",
    "draw_tags",
    "font_file",
    "save_picture",
    "tag_height",
    "text_colour",
]

#: TrueType fonts looked for when matplotlib's bundled DejaVuSans is absent (nothing is ever downloaded).
SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:/Windows/Fonts/arial.ttf",
)
#: The 17 COCO person keypoints (Keypoint R-CNN's), and the pairs of them `plot()` joins.
COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


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


@functools.cache
def font_file() -> str | None:
    """A TrueType font file this environment has, for `torchvision.utils.draw_bounding_boxes` at any size:
    matplotlib's bundled DejaVuSans when matplotlib is installed (found without importing it), else a system
    DejaVu, Liberation or Arial; None when there is none (torchvision's fixed-size default font is then used)."""
    spec = importlib.util.find_spec("matplotlib")
    roots = (spec and spec.submodule_search_locations) or ()
    places = [Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf" for root in roots]
    for candidate in (*places, *map(Path, SYSTEM_FONTS)):
        if candidate.is_file() and _loads(candidate):
            return str(candidate)
    return None


def _loads(path: Path) -> bool:
    from PIL import ImageFont

    try:
        ImageFont.truetype(str(path), 10)
    except (OSError, ValueError):
        return False
    return True


def text_colour(background: str) -> str:
    """`"black"` or `"white"`, whichever contrasts more with the `#RRGGBB` colour `background` (WCAG relative
    luminance: at least 4.5:1 for any background)."""
    channels = [int(background.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "white"


def draw_labelled_boxes(
    pixels: torch.Tensor,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[str],
    colours: Sequence[str],
    *,
    width: int,
    font_size: int,
) -> torch.Tensor:
    """Boxes drawn by `torchvision.utils.draw_bounding_boxes`, each labelled on a tag of its colour (see
    `draw_tags`) set on the box's top edge: above the box where that fits, else just inside it, and moved
    left or down so that the whole tag stays in the picture.

    Args:
        pixels: uint8 (3, H, W) image.
        boxes: xyxy pixel boxes.
        labels: the text of each box.
        colours: `#RRGGBB` of each box.
        width: the boxes' line width in pixels.
        font_size: the labels' size in pixels.
    """
    import torch
    from torchvision.utils import draw_bounding_boxes

    if not len(boxes):
        return pixels
    xyxy = torch.as_tensor([[float(v) for v in box] for box in boxes], dtype=torch.float32)
    pixels = draw_bounding_boxes(pixels, xyxy, colors=list(colours), width=width)
    font, size = _font(font_size), _size(pixels)
    anchors = []
    for (x1, y1, _, _), text in zip(xyxy.tolist(), labels):
        box = _text_box(text, font)
        tag_h = box[3] - box[1] + 2
        anchors.append(_anchor(box, (x1, y1 - tag_h if y1 - tag_h >= 0 else y1), size))
    return _write(pixels, anchors, labels, colours, font_size)


def draw_tags(
    pixels: torch.Tensor,
    spots: Sequence[tuple[float, float]],
    texts: Sequence[str],
    colours: Sequence[str],
    *,
    font_size: int,
) -> torch.Tensor:
    """Texts written by `torchvision.utils.draw_bounding_boxes` on filled tags of `colours`, in black or
    white by the colour's luminance (legible on any picture), each tag's top-left corner at its spot, moved
    left or up as far as needed to keep the whole tag inside the picture."""
    if not len(texts):
        return pixels
    font, size = _font(font_size), _size(pixels)
    anchors = [_anchor(_text_box(text, font), spot, size) for spot, text in zip(spots, texts)]
    return _write(pixels, anchors, texts, colours, font_size)


def _anchor(box: tuple[int, int, int, int], spot: tuple[float, float], size: tuple[int, int]) -> list[int]:
    """The box to hand torchvision so that the tag around text of box `box` (`_text_box`) has its top-left
    corner at `spot`, moved left or up as far as needed to be whole inside a picture of `size` (W, H).
    torchvision writes the text 1 px in from its box's corner and fills 1 px around the text."""
    left, top, right, bottom = box
    tag_w, tag_h = right - left + 2, bottom - top + 2
    x = min(max(round(spot[0]), 0), max(size[0] - tag_w, 0))
    y = min(max(round(spot[1]), 0), max(size[1] - tag_h, 0))
    return [x - left, y - top, x - left, y - top]


def _write(
    pixels: torch.Tensor, anchors: list[list[int]], texts: Sequence[str], colours: Sequence[str], font_size: int
) -> torch.Tensor:
    import torch
    from torchvision.utils import draw_bounding_boxes

    path = font_file()
    return draw_bounding_boxes(
        pixels,
        torch.tensor(anchors, dtype=torch.float32),
        labels=list(texts),
        colors=list(colours),
        width=0,
        font=path,
        font_size=font_size if path else None,
        label_colors=[text_colour(c) for c in colours],
        label_background_colors=list(colours),
        fill_labels=True,
    )


def _size(pixels: torch.Tensor) -> tuple[int, int]:
    return int(pixels.shape[-1]), int(pixels.shape[-2])


def tag_height(font_size: int) -> int:
    """The height in pixels of a tag `draw_tags` writes at `font_size` (for stacking tags)."""
    left, top, right, bottom = _text_box("Ag%", _font(font_size))
    return bottom - top + 2


def _font(size: int) -> Any:
    """The font torchvision draws with for `font_file()` at `size` (its default font without a file)."""
    return _load_font(font_file(), size)


@functools.cache
def _load_font(path: str | None, size: int) -> Any:
    """The font file `path` at `size` (PIL's default font for None), read from disk once per file and size."""
    from PIL import ImageFont

    return ImageFont.truetype(path, size) if path else ImageFont.load_default()


def _text_box(text: str, font: Any) -> tuple[int, int, int, int]:
    """The pixels `text` covers when written at (0, 0): left, top, right, bottom (the last two exclusive)."""
    box = font.getbbox(text)
    return int(box[0]), int(box[1]), int(box[2]) + 1, int(box[3]) + 1
