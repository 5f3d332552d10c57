"""Small PNG charts drawn with PIL alone (no matplotlib): a confusion matrix and line curves.

Used by evaluation results and training reports, so a run folder holds pictures a person opens directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.results._draw import default_font

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["confusion_image", "curves_image"]

#: Line colours of `curves_image`, one per series (tab10).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_MAX_LABEL = 24  # characters of a class name written beside the matrix


def confusion_image(matrix: Sequence[Sequence[int]], rows: Sequence[str], columns: Sequence[str]) -> Image.Image:
    """A confusion matrix as a picture: true classes down, predicted classes across, each row shaded by
    its share (so a rare class reads as clearly as a common one), counts written in the cells.

    Args:
        matrix: counts, one row per true class, one column per predicted class.
        rows: the true classes' names.
        columns: the predicted classes' names.
    """
    from PIL import Image, ImageDraw

    n_rows, n_cols = len(rows), len(columns)
    cell = max(12, min(48, 900 // max(n_rows, n_cols, 1)))
    font = default_font(max(8, cell // 3))
    small = default_font(max(9, min(14, cell // 2)))
    names = [_short(str(name)) for name in (*rows, *columns)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = int(max((probe.textlength(name, font=small) for name in names), default=0)) + 12
    top = margin + 24
    width, height = margin + n_cols * cell + 8, top + n_rows * cell + 8
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 4), "predicted", fill="black", font=small)
    draw.text((4, top - 18), "true", fill="black", font=small)
    for j, name in enumerate(columns):  # column names written vertically
        label = Image.new("RGBA", (margin, cell), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((4, cell // 2), _short(str(name)), fill="black", font=small, anchor="lm")
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (margin + j * cell, 22), rotated)
    for i, (name, counts) in enumerate(zip(rows, matrix)):
        y = top + i * cell
        draw.text((margin - 6, y + cell // 2), _short(str(name)), fill="black", font=small, anchor="rm")
        total = sum(counts) or 1
        for j, count in enumerate(counts):
            share = count / total
            shade = int(255 * (1 - share))
            fill = (shade, shade, 255) if i == j or j >= n_rows else (255, shade, shade)
            box = (margin + j * cell, y, margin + (j + 1) * cell - 1, y + cell - 1)
            draw.rectangle(box, fill=fill, outline="#dddddd")
            if count and cell >= 16:
                colour = "white" if share > 0.55 else "black"
                draw.text((box[0] + cell // 2, y + cell // 2), _count(count), fill=colour, font=font, anchor="mm")
    return image


def curves_image(series: Mapping[str, Sequence[float | None]], *, title: str = "") -> Image.Image:
    """Line charts of per-epoch values: one panel per group of series sharing a unit (losses, accuracies,
    learning rate), epochs along the x axis starting at 1.

    Args:
        series: name -> one value per epoch (None where the epoch has none, e.g. no validation).
        title: written above the panels.
    """
    from PIL import Image, ImageDraw

    panels: dict[str, dict[str, list[float | None]]] = {}
    for name, values in series.items():
        if any(v is not None and math.isfinite(v) for v in values):
            panels.setdefault(_panel(name), {})[name] = list(values)
    panel_w, panel_h, pad = 440, 320, 64
    count = max(1, len(panels))
    image = Image.new("RGB", (count * panel_w, panel_h + 30), "white")
    draw = ImageDraw.Draw(image)
    font = default_font(13)
    draw.text((8, 6), title, fill="black", font=font)
    for k, (panel, lines) in enumerate(panels.items()):
        x0, y0 = k * panel_w + pad, 30 + 20 + 16 * len(lines)
        x1, y1 = (k + 1) * panel_w - 16, panel_h - 10
        draw.text((x0, 30), panel, fill="black", font=font)
        draw.rectangle((x0, y0, x1, y1), outline="#888888")
        finite = [v for line in lines.values() for v in _finite(line)]
        axes = _Axes((x0, y0, x1, y1), min(finite), max(finite), max(len(line) for line in lines.values()))
        for tick in (axes.low, (axes.low + axes.high) / 2, axes.high):
            draw.text((x0 - 4, axes.point(0, tick)[1]), f"{tick:.2g}", fill="#444444", font=font, anchor="rm")
        for i in range(axes.epochs):
            draw.text((axes.point(i, axes.low)[0], y1 + 4), str(i + 1), fill="#444444", font=font, anchor="mt")
        for n, (name, line) in enumerate(lines.items()):
            colour = COLOURS[n % len(COLOURS)]
            points = [axes.point(i, v) for i, v in enumerate(line) if v is not None and math.isfinite(v)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
            draw.text((x0 + 8, 48 + 16 * n), f"- {name}", fill=colour, font=font)
    return image


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write `image` as a PNG at `path` (its folder created) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, format="PNG")
    return target


class _Axes:
    """Maps (epoch index, value) to pixels inside `box` = (x0, y0, x1, y1)."""

    def __init__(self, box: tuple[float, float, float, float], low: float, high: float, epochs: int) -> None:
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        self.box, self.low, self.high, self.epochs = box, low, high, epochs

    def point(self, i: int, value: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        x = x0 + (x1 - x0) * (i / (self.epochs - 1) if self.epochs > 1 else 0.5)
        return x, y1 - (y1 - y0) * (value - self.low) / (self.high - self.low)


def _finite(line: Sequence[float | None]) -> list[float]:
    return [float(v) for v in line if v is not None and math.isfinite(v)]


def _panel(name: str) -> str:
    if "loss" in name:
        return "loss"
    if name == "lr":
        return "learning rate"
    return "accuracy"


def _count(count: int) -> str:
    """A count short enough for a cell: `987`, `12k`, `3.4M` (pixel counts of a segmentation run are large)."""
    if count < 10_000:
        return str(count)
    for size, unit in ((1_000, "k"), (1_000_000, "M"), (1_000_000_000, "G")):
        value = count / size
        if round(value) < 1000:
            return f"{value:.2g}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
    return f"{count / 1e9:.0f}G"


def _short(name: str) -> str:
    return name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"
