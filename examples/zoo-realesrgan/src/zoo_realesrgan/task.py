"""The `super-resolution` task: images in, images `scale` times larger out (`zoo.ImageOutput`).

The network sees RGB in [0, 1] and returns RGB in [0, 1] (clamped, rounded to 8 bits). An image larger than
`tile` pixels a side is cut into tiles of `tile`, each run with `overlap` pixels of its neighbours around it
as context, and only each tile's own part of the output is kept: with a context at least as wide as the
network's receptive radius (18 pixels for the x4 models) the tiles join without seams and the result is the
whole-image one, at a memory cost bounded by the tile size.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from zoo.ext import (
    ImageItem,
    ImageOutput,
    InputError,
    ResultList,
    SkippedInput,
    SkippedInputsWarning,
    Task,
    ZooError,
    collect_images,
    decode,
)

if TYPE_CHECKING:
    import torch

__all__ = ["SuperResolution", "tiles"]


class SuperResolution(Task):
    """Super-resolution, in tiles for large images."""

    name = "super-resolution"
    options = frozenset({"tile", "overlap", "keep_input", "on_error"})
    plots = True
    warns_random_weights = True

    def predict(
        self,
        inputs: Any,
        *,
        tile: int | None = 256,
        overlap: int = 24,
        keep_input: bool = False,
        on_error: str | None = None,
    ) -> ImageOutput | ResultList:
        """Make images larger.

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 array, tensor, or a list of those.
            tile: the largest side, in input pixels, run through the network at once; None runs whole images.
            overlap: input pixels of context around each tile (at least the network's receptive radius for
                seamless tiles).
            keep_input: keep the input in the result, for `side_by_side()`.
            on_error: "skip" leaves out unreadable images of a batch (named in `ResultList.skipped`, with a
                `SkippedInputsWarning`); "raise" or None raises.

        Returns:
            One `ImageOutput`, or a `ResultList` for list-like inputs.

        Raises:
            InputError: bad options, or an unreadable image (unless skipped).
        """
        if (tile is not None and tile < 16) or overlap < 0 or on_error not in (None, "raise", "skip"):
            raise InputError(
                f"tile must be at least 16 (or None), overlap at least 0 and on_error 'raise' or 'skip', "
                f"not {tile}, {overlap}, {on_error!r}."
            )
        items, is_batch = collect_images(inputs)
        results, skipped = [], []
        for item in items:
            try:
                image = decode(item)
            except ZooError as exc:
                if not (is_batch and on_error == "skip"):
                    raise
                skipped.append(SkippedInput(item.source, str(exc)))
                continue
            results.append(self._upscale(image, item, tile, overlap, keep_input))
        if skipped:
            warnings.warn(SkippedInputsWarning(f"{len(skipped)} unreadable image(s) skipped."), stacklevel=2)
        return ResultList(results, skipped) if is_batch else results[0]

    def _upscale(self, image: torch.Tensor, item: ImageItem, tile: int | None, overlap: int, keep: bool) -> ImageOutput:
        import torch

        x = (image.float() / 255 if not image.is_floating_point() else image.float()).to(self.model.device)
        _, h, w = x.shape
        boxes = tiles(h, w, tile or max(h, w))
        out: torch.Tensor | None = None
        self.model.module.eval()
        with torch.inference_mode():
            for y0, x0, th, tw in boxes:
                top, left = max(y0 - overlap, 0), max(x0 - overlap, 0)
                bottom, right = min(y0 + th + overlap, h), min(x0 + tw + overlap, w)
                part = self.model(x[None, :, top:bottom, left:right])[0]
                scale = part.shape[-1] // (right - left)
                if out is None:
                    out = torch.zeros(part.shape[0], h * scale, w * scale, device=part.device)
                dy, dx = (y0 - top) * scale, (x0 - left) * scale
                out[:, y0 * scale : (y0 + th) * scale, x0 * scale : (x0 + tw) * scale] = part[
                    :, dy : dy + th * scale, dx : dx + tw * scale
                ]
        assert out is not None
        return ImageOutput(_to_pil(out), item.source, _to_pil(x) if keep else None, len(boxes))


def tiles(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """`(top, left, height, width)` of the tiles of at most `tile` pixels a side that cover an image, row by row."""
    return [
        (y, x, min(tile, height - y), min(tile, width - x))
        for y in range(0, height, tile)
        for x in range(0, width, tile)
    ]


def _to_pil(x: torch.Tensor) -> Any:
    """A float CHW image in [0, 1] as a PIL RGB image, rounded to the nearest 8-bit value."""
    from PIL import Image

    return Image.fromarray(x.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
