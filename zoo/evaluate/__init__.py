"""`evaluate`: measure a loaded model on labelled data with the same preprocessing as `predict`.

- an image classifier on an ImageFolder (`root/<class>/<image>`): `ClassificationEvaluation` (top-1, top-5,
  per-class precision / recall / F1, confusion matrix);
- a detector on a COCO-json file or a YOLO folder: `DetectionEvaluation` (COCO mAP@[.5:.95], mAP@.5, per-class AP);
- a semantic-segmentation model on a VOC-style folder (`images/` + `masks/`, or VOC's `JPEGImages/` +
  `SegmentationClass/`): `SegmentationEvaluation` (mIoU, per-class IoU, pixel accuracy, confusion matrix).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError

if TYPE_CHECKING:
    from zoo.evaluate.classification import ClassificationEvaluation
    from zoo.evaluate.detection import DetectionEvaluation
    from zoo.evaluate.segmentation import SegmentationEvaluation
    from zoo.model import Model

__all__ = ["evaluate"]


def evaluate(
    model: Model, data: Any, **options: Any
) -> ClassificationEvaluation | DetectionEvaluation | SegmentationEvaluation:
    """Measure `model` on `data` and return a frozen result with `to_dict()`, `to_json()` and `save(folder)`.

    Args:
        model: a loaded model whose `predict` answers with class labels.
        data: an ImageFolder directory (`root/<class>/<image>`, folders named after the model's labels or
            class indices; a root holding `train/` and `val/` is measured on `val/`), or for a detector a
            COCO annotations `.json` file or a YOLO folder (`images/` and `labels/`), or for a segmentation
            model a folder with `images/` and `masks/` (PNGs of class ids, 255 = ignore) or VOC's
            `JPEGImages/`, `SegmentationClass/` (and `ImageSets/Segmentation/val.txt`).
        **options: `batch_size` (images per forward pass, default 32) and `amp` (bf16 autocast).

    Raises:
        InputError: data of the wrong layout, folder names the model does not know, bad options.
        UnsupportedError: a model whose answers are not class labels (or boxes, on detection data).
    """
    from zoo.evaluate.classification import evaluate_classification
    from zoo.evaluate.detection import evaluate_detection, is_detection_data
    from zoo.evaluate.segmentation import evaluate_segmentation, is_segmentation_data

    unknown = sorted(set(options) - {"batch_size", "amp"})
    if unknown:
        raise InputError(f"evaluate() got unknown options {unknown}; known: amp, batch_size.")
    batch_size = options.get("batch_size", 32)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r}: use a whole number >= 1.")
    if not isinstance(data, (str, Path)):
        raise UnsupportedError(f"Cannot evaluate on a {type(data).__name__}: pass an ImageFolder directory.")
    if is_detection_data(Path(data).expanduser()):
        return evaluate_detection(model, data, batch_size=batch_size)
    if is_segmentation_data(Path(data).expanduser()) or model.spec.task == "semantic-segmentation":
        return evaluate_segmentation(model, data, batch_size=batch_size)
    return evaluate_classification(model, data, batch_size=batch_size, amp=options.get("amp"))
