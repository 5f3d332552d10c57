"""The `semantic-segmentation` task: images in, `Segmentation` (a class per pixel) out.

Preprocessing is torchvision's `SemanticSegmentation` preset, from the model's `ImagePreprocess`: the uint8
image resized (shorter side to `resize`), scaled to [0, 1], normalized. The module's output (a tensor, or
torchvision's `{"out": ..., "aux": ...}`) is upsampled bilinearly to the original image size, then argmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.images import ImageItem, collect_images, decode_each
from zoo.progress import progress_bar
from zoo.results import Segmentation
from zoo.results.batch import SkippedInput, check_on_error, finish
from zoo.tasks.base import Task

if TYPE_CHECKING:
    import torch

    from zoo.specs import ImagePreprocess

__all__ = ["SemanticSegmentation", "segmentation_input"]


class SemanticSegmentation(Task):
    """Semantic segmentation: resize, normalize, forward, upsample the logits to the image, argmax."""

    name = "semantic-segmentation"
    options = frozenset({"on_error"})
    plots = True
    hub_pipeline = "image-segmentation"
    warns_random_weights = True
    evaluates = True  # mIoU on images with class masks (`zoo.evaluate.segmentation`)

    def predict(self, inputs: Any, *, on_error: str | None = None) -> Segmentation | list[Segmentation]:
        """Segment images (one at a time: images keep their own sizes).

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 array, tensor, or a list of those.
            on_error: what an unreadable image of a batch does: "raise", or "skip" it; None (default) raises
                for an input you named and skips files a folder or glob found.

        Returns:
            One `Segmentation`, or a `ResultList` for list-like inputs.
        """
        check_on_error(on_error)
        spec = self.model.preprocess
        if spec is None:
            raise UnsupportedError(f"{self.model.name} declares no preprocessing: semantic-segmentation needs it.")
        items, is_batch = collect_images(inputs)
        skipped: list[SkippedInput] = []
        results: list[Segmentation] = []
        self.model.module.eval()
        with progress_bar(len(items) if is_batch else 0, "segmenting") as advance:
            for item in items:
                for _, image in decode_each([item], 3, on_error=on_error, is_batch=is_batch, skipped=skipped):
                    results.append(self._result(image, item, self._class_map(image, spec)))
                advance(1)
        return finish(results, skipped, is_batch)

    def _class_map(self, image: torch.Tensor, spec: ImagePreprocess) -> torch.Tensor:
        import torch
        from torch.nn.functional import interpolate

        batch = segmentation_input(image.to(self.model.device), spec).unsqueeze(0)
        with torch.inference_mode():
            out = self.model.module(batch)
        logits = out["out"] if isinstance(out, dict) else out
        if not hasattr(logits, "ndim") or logits.ndim != 4:
            raise UnsupportedError(
                f"{self.model.name} returned {type(out).__name__}; semantic-segmentation needs (N, classes, H, W) "
                f"logits."
            )
        logits = interpolate(logits.float(), size=tuple(image.shape[1:]), mode="bilinear", align_corners=False)
        return logits.argmax(1)[0]

    def _result(self, image: torch.Tensor, item: ImageItem, class_map: torch.Tensor) -> Segmentation:
        labels = self.model.labels or tuple(str(i) for i in range(int(class_map.max()) + 1))
        hwc = None
        if not isinstance(item.data, Path):
            pixels = image.mul(255).round().clamp(0, 255).byte() if image.is_floating_point() else image
            hwc = pixels.permute(1, 2, 0).contiguous().cpu().numpy()
        return Segmentation(class_map.cpu().numpy().astype("int64"), tuple(labels), item.source, hwc)


def segmentation_input(image: torch.Tensor, spec: ImagePreprocess) -> torch.Tensor:
    """torchvision's `SemanticSegmentation` preset: resize the uint8 CHW image, scale to [0, 1], normalize."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    if spec.crop is not None:
        raise InputError(f"semantic segmentation keeps the whole image: a crop ({spec.crop}) is not supported.")
    if spec.resize is not None:
        size = [spec.resize] if isinstance(spec.resize, int) else list(spec.resize)
        image = F.resize(image, size, interpolation=InterpolationMode(spec.interpolation), antialias=spec.antialias)
    image = F.convert_image_dtype(image, torch.float)
    return F.normalize(image, mean=list(spec.mean), std=list(spec.std))
