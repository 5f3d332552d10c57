"""torchvision's detectors (`object-detection`, `instance-segmentation`, `keypoint-detection`): images in,
`Detections` out, with masks (Mask R-CNN) and keypoints (Keypoint R-CNN).

The pipeline is torchvision's own: the image scaled to [0, 1] (`weights.transforms()`, an `ObjectDetection`
preset), the module in eval mode on a list of images (it resizes, normalizes and maps boxes back itself),
and its output dicts read as they are; masks are its per-pixel probabilities above 0.5.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.images import ImageItem, collect_images, decode_each
from zoo.progress import progress_bar
from zoo.results import Detections
from zoo.results.batch import SkippedInput, check_on_error, finish
from zoo.tasks.base import Task, TaskCapabilities

if TYPE_CHECKING:
    import torch

__all__ = ["MASK_THRESHOLD", "TorchvisionDetection"]

#: The probability above which a pixel belongs to a Mask R-CNN mask (torchvision's tutorials use 0.5).
MASK_THRESHOLD = 0.5


class TorchvisionDetection(Task):
    """Detection, instance segmentation and keypoints with torchvision's detectors (R-CNNs, RetinaNet, SSD, FCOS)."""

    name = "object-detection"
    options = frozenset({"conf", "classes", "max_det", "batch_size", "on_error"})
    plots = True
    evaluates = True  # COCO mAP on a COCO-json file or a YOLO folder (`zoo.evaluate`)
    finetunes = True  # on a COCO-json file or a YOLO folder, with a new class predictor (`zoo.train.detection`)
    swaps_box_predictor = True

    @classmethod
    def capabilities(cls, task: str | None = None) -> TaskCapabilities:
        """The declared capabilities, with the Hub pipeline tag of the task served as `task`."""
        tags = {"object-detection": "object-detection", "instance-segmentation": "image-segmentation"}
        boxes_only = task in (None, cls.name)  # Mask / Keypoint R-CNN need masks or keypoints to train
        return replace(
            super().capabilities(task), hub_pipeline=tags.get(task or ""), finetune=cls.finetunes and boxes_only
        )

    warns_random_weights = True

    def predict(
        self,
        inputs: Any,
        *,
        conf: float = 0.0,
        classes: Sequence[int] | None = None,
        max_det: int | None = None,
        batch_size: int = 4,
        on_error: str | None = None,
    ) -> Detections | list[Detections]:
        """Detect objects.

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 array, tensor, or a list of those.
            conf: keep boxes scoring at least this, on top of the model's own threshold (`box_score_thresh`,
                a builder argument: `zoo.load(name, box_score_thresh=0.5)`).
            classes: keep only these class ids.
            max_det: at most this many boxes per image (the model's own cap, `box_detections_per_img`, applies).
            batch_size: images per forward pass.
            on_error: what an unreadable image of a batch does: "raise", or "skip" it; None (default) raises
                for an input you named and skips files a folder or glob found.

        Returns:
            One `Detections`, or a `ResultList` for list-like inputs.
        """
        check_on_error(on_error)
        if not 0 <= conf <= 1:
            raise InputError(f"conf must be between 0 and 1, not {conf}.")
        if batch_size < 1 or (max_det is not None and max_det < 1):
            raise InputError(f"batch_size and max_det must be at least 1, not {batch_size} and {max_det}.")
        items, is_batch = collect_images(inputs)
        skipped: list[SkippedInput] = []
        results: list[Detections] = []
        self.model.module.eval()
        with progress_bar(len(items) if is_batch else 0, "detecting") as advance:
            for chunk in _chunks(items, batch_size):
                decoded = decode_each(chunk, 3, on_error=on_error, is_batch=is_batch, skipped=skipped)
                if decoded:
                    outputs = self._forward([image for _, image in decoded])
                    for (item, image), out in zip(decoded, outputs):
                        results.append(self._result(image, item, _keep(out, conf, classes, max_det)))
                advance(len(chunk))
        return finish(results, skipped, is_batch)

    def _forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        import torch
        from torchvision.transforms.functional import convert_image_dtype

        device = self.model.device
        batch = [convert_image_dtype(image.to(device), torch.float) for image in images]  # the ObjectDetection preset
        with torch.inference_mode():
            out = self.model.module(batch)
        if not (isinstance(out, list) and out and isinstance(out[0], dict) and "boxes" in out[0]):
            raise UnsupportedError(
                f"{self.model.name} returned {type(out).__name__}; this task needs torchvision's detection output "
                f"(a list of dicts with boxes, labels and scores)."
            )
        return out

    def _result(self, image: torch.Tensor, item: ImageItem, out: dict[str, torch.Tensor]) -> Detections:
        labels = self.model.labels
        ids = out["labels"].cpu().numpy().astype("int64")
        names = tuple(labels[i] if labels and i < len(labels) else str(i) for i in ids.tolist())
        masks = keypoints = None
        if "masks" in out:  # (N, 1, H, W) probabilities
            masks = (out["masks"][:, 0] > MASK_THRESHOLD).cpu().numpy()
        if "keypoints" in out:  # (N, K, 3): x, y, visibility; the scores per keypoint are in keypoints_scores
            points = out["keypoints"].float().clone()
            if "keypoints_scores" in out:
                points[..., 2] = out["keypoints_scores"].float()
            keypoints = points.cpu().numpy()
        hwc = None
        if not isinstance(item.data, Path):  # a file is read again by plot(); other inputs are kept
            pixels = image.mul(255).round().clamp(0, 255).byte() if image.is_floating_point() else image
            hwc = pixels.permute(1, 2, 0).contiguous().cpu().numpy()
        names_of_points = self.model.spec.meta.get("keypoint_names")
        return Detections(
            out["boxes"].float().cpu().numpy(),
            out["scores"].float().cpu().numpy(),
            ids,
            names,
            (image.shape[2], image.shape[1]),
            item.source,
            hwc,
            masks=masks,
            keypoints=keypoints,
            keypoint_names=tuple(names_of_points) if keypoints is not None and names_of_points else None,
        )


def _keep(out: dict[str, torch.Tensor], conf: float, classes: Sequence[int] | None, max_det: int | None) -> Any:
    """`out` restricted to the boxes that pass `conf` and `classes`, at most `max_det` (best first)."""
    import torch

    keep = out["scores"] >= conf
    if classes is not None:
        keep &= torch.isin(out["labels"], torch.as_tensor(list(classes), device=out["labels"].device))
    index = keep.nonzero().flatten()[:max_det]
    return {key: value[index] for key, value in out.items()}


def _chunks(items: Sequence[ImageItem], size: int) -> Iterator[Sequence[ImageItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
