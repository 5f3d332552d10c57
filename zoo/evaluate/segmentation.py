"""Semantic-segmentation evaluation on a VOC-style folder: mIoU, per-class IoU, pixel accuracy, confusion matrix.

Every image goes through `model.predict`, and its `Segmentation.class_map` (the logits upsampled to the image,
then argmax) is compared pixel by pixel with the image's mask, so the figures are exactly those one computes
from predict's class maps.

Datasets (masks are PNGs of class ids with the image's stem, palette or grayscale; 255 marks pixels to ignore):
- `images/` beside `masks/` (or their `val/` subfolders);
- VOC itself: `JPEGImages/` beside `SegmentationClass/`, the images listed in `ImageSets/Segmentation/val.txt`
  when it exists, else every mask's image.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, SkippedInputsWarning, UnsupportedError
from zoo.evaluate.report import Report
from zoo.images import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from zoo.model import Model

__all__ = ["IGNORE", "SegmentationEvaluation", "evaluate_segmentation", "is_segmentation_data", "read_mask"]

#: The mask value of pixels that are not scored (VOC's object borders and "difficult" regions).
IGNORE = 255
#: (images folder, masks folder) of the layouts read, in order of preference.
LAYOUTS = (("images", "masks"), ("JPEGImages", "SegmentationClass"))
_VOC_SPLIT = Path("ImageSets") / "Segmentation" / "val.txt"


@dataclass(frozen=True)
class SegmentationEvaluation(Report):
    """How a semantic-segmentation model did on images with class masks.

    Attributes:
        model: the model's name.
        data: the dataset folder evaluated.
        count: images evaluated (unreadable ones are listed in `skipped`).
        miou: mean of `iou` over the classes that occur in the masks or the predictions, in [0, 1].
        pixel_accuracy: share of the scored pixels (mask value not 255) whose predicted class is the mask's.
        classes: the model's classes, in class-id order (the order of every per-class value).
        iou: per class: intersection over union of predicted and true pixels; NaN when the class is in
            neither (left out of `miou`; `null` in JSON).
        support: per class: scored pixels of that class in the masks.
        confusion: pixel counts, one row per true class, one column per predicted class.
        skipped: the images that could not be read.
    """

    model: str
    data: str
    count: int
    miou: float
    pixel_accuracy: float
    classes: tuple[str, ...]
    iou: tuple[float, ...]
    support: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...] = field(repr=False)
    skipped: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """What was measured: `semantic-segmentation`."""
        return "semantic-segmentation"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the headline metrics, one entry per class, the confusion matrix."""
        return {
            "task": self.task,
            "model": self.model,
            "data": self.data,
            "count": self.count,
            "miou": self.miou,
            "pixel_accuracy": self.pixel_accuracy,
            "per_class": [
                {"class": c, "iou": None if math.isnan(i) else i, "support": s}
                for c, i, s in zip(self.classes, self.iou, self.support)
            ],
            "confusion": {"rows": list(self.classes), "columns": list(self.classes), "counts": self.confusion},
            "skipped": list(self.skipped),
        }

    def plot(self) -> Image.Image:
        """The confusion matrix as a picture (rows: true classes, columns: predicted; pixel counts), limited
        to the classes that occur in the masks or the predictions."""
        from zoo.charts import confusion_image

        keep = [k for k, value in enumerate(self.iou) if not math.isnan(value)] or list(range(len(self.classes)))
        matrix = [[self.confusion[i][j] for j in keep] for i in keep]
        names = [self.classes[k] for k in keep]
        return confusion_image(matrix, names, names)

    def summary(self) -> str:
        """One line: images, mIoU, pixel accuracy."""
        return (
            f"{self.model} on {self.data}: {self.count} images, mIoU {self.miou:.4f}, "
            f"pixel accuracy {self.pixel_accuracy:.4f}"
            + (f", {len(self.skipped)} unreadable skipped" if self.skipped else "")
        )

    def __str__(self) -> str:
        width = max([len(c) for c in self.classes] + [5])
        lines = [self.summary(), f"  {'class'.ljust(width)}  IoU     pixels"]
        for c, i, s in zip(self.classes, self.iou, self.support):
            if not math.isnan(i):
                lines.append(f"  {c.ljust(width)}  {i:.4f}  {s:d}")
        return "\n".join(lines)


def is_segmentation_data(path: Path) -> bool:
    """Whether `path` is a folder with class masks: `masks/` or VOC's `SegmentationClass/`."""
    return any((path / masks).is_dir() for _, masks in LAYOUTS)


def read_mask(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The class ids of a mask PNG as a (height, width) int64 array: a palette PNG's indices, a grayscale
    PNG's values.

    Args:
        path: the mask.
        size: `(width, height)` the mask must have (its image's), checked before its pixels are decoded.

    Raises:
        InputError: not readable, another size than `size`, or a colour image (whose colours are not class ids).
    """
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            if size is not None and image.size != size:
                raise InputError(
                    f"Mask {path} is {image.width}x{image.height} but its image is {size[0]}x{size[1]}: "
                    "save the mask at the image's size.",
                    path=path,
                )
            mode = image.mode
            pixels = np.array(image)
    except (OSError, ValueError, ImportError, Image.DecompressionBombError) as exc:  # ImportError: see _upright_size
        if isinstance(exc, InputError):
            raise
        raise InputError(f"Cannot read mask {path} ({exc}): save it as a palette or grayscale PNG.", path=path) from exc
    if pixels.ndim == 3:
        values = pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1]  # LA / PA: the alpha is not a class
        if not (values == values[..., :1]).all():
            raise InputError(
                f"Mask {path} is a {mode} colour image: save class ids as a palette or grayscale PNG "
                f"(one value per pixel, {IGNORE} = ignore).",
                path=path,
            )
        pixels = pixels[..., 0]
    return pixels.astype(np.int64)


def evaluate_segmentation(model: Model, data: str | Path, *, batch_size: int = 32) -> SegmentationEvaluation:
    """Run `model.predict` over a VOC-style folder and compare every class map with its mask.

    Args:
        model: a semantic-segmentation model.
        data: a folder with `images/` and `masks/`, or VOC's `JPEGImages/` and `SegmentationClass/`.
        batch_size: images predicted per call (bounds the class maps held at once).

    Raises:
        InputError: a missing or unreadable mask, a mask of another size than its image, a class id that is
            not one of the model's classes (other than 255), a folder with no images.
        UnsupportedError: the model's answers are not class maps.
    """
    import numpy as np

    root = Path(data).expanduser()
    pairs = _pairs(root)
    classes = tuple(model.labels or ())
    highest = max(_check_mask(image, mask, len(classes) or None) for image, mask in pairs)  # before the model runs
    n = len(classes) or highest + 1
    confusion = np.zeros((n, n), dtype=np.int64)
    skipped: list[str] = []
    count = 0
    for results in _predict(model, [image for image, _ in pairs], batch_size):
        skipped += [str(s.source) for s in results.skipped]
        masks = {str(image): mask for image, mask in pairs}
        for result in results:
            if not hasattr(result, "class_map"):
                raise UnsupportedError(f"{model.name} is a {model.spec.task} model: its answers are not class maps.")
            truth = read_mask(masks[str(result.source)])
            if truth.shape != result.class_map.shape:  # an image whose size the check could not read
                raise InputError(f"Mask {masks[str(result.source)]} is not the size of its image {result.source}.")
            confusion = _add(confusion, truth, result.class_map)
            count += 1
    if not count:
        raise InputError(f"None of the {len(pairs)} images under {root} could be read.")
    names = classes + tuple(str(i) for i in range(len(classes), len(confusion)))
    return _measure(model.name, str(root), names, confusion, count, tuple(skipped))


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) of every image to evaluate, sorted by image path."""
    if not root.is_dir():
        raise InputError(f"No such folder: {root}. Pass a folder with images/ and masks/ (or VOC's layout).")
    layout = next(((root / i, root / m) for i, m in LAYOUTS if (root / m).is_dir()), None)
    if layout is None:
        raise InputError(
            f"{root} has no masks/ folder: lay it out as {root}/images/<image> and {root}/masks/<stem>.png "
            "(or VOC's JPEGImages/ and SegmentationClass/)."
        )
    images, masks = layout
    if not images.is_dir():
        raise InputError(f"{root} has {masks.name}/ but no {images.name}/ beside it: put the images there.")
    if (images / "val").is_dir() and (masks / "val").is_dir():
        images, masks = images / "val", masks / "val"
    if masks.name == "SegmentationClass" and (root / _VOC_SPLIT).is_file():
        stems = [s.strip() for s in (root / _VOC_SPLIT).read_text().split() if s.strip()]
        files = [_voc_image(images, stem, root / _VOC_SPLIT) for stem in stems]
    elif masks.name == "SegmentationClass":  # VOC's JPEGImages hold every image; only some have a mask
        found = sorted(masks.glob("*.png"))
        files = [_voc_image(images, m.stem, m) for m in found]
    else:
        files = sorted(p for p in images.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{images} holds no images: put the images in it and their masks in {masks}.")
    pairs = [(image, masks / image.relative_to(images).with_suffix(".png")) for image in files]
    missing = [mask for _, mask in pairs if not mask.is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(
            f"No mask {missing[0]}{more}: give each image a PNG of class ids with its stem in {masks}.",
            path=missing[0],
        )
    return sorted(pairs)


def _voc_image(images: Path, stem: str, listed_by: Path) -> Path:
    found = next((images / f"{stem}{s}" for s in (".jpg", ".jpeg", ".png") if (images / f"{stem}{s}").is_file()), None)
    if found is None:
        raise InputError(f"{listed_by} names {stem!r} but {images} has no {stem}.jpg: add it or remove the entry.")
    return found


def _check_mask(image: Path, mask: Path, classes: int | None) -> int:
    """Check one mask against its image and the model's number of classes; returns its highest class id."""
    import numpy as np

    ids = read_mask(mask, _upright_size(image))
    if classes is not None:
        outside = np.unique(ids[(ids != IGNORE) & ((ids < 0) | (ids >= classes))])
        if outside.size:
            raise InputError(
                f"Mask {mask} holds class id {int(outside[0])}, outside the model's {classes} classes "
                f"(0-{classes - 1}; {IGNORE} = ignore): fix the mask or evaluate a model with those classes.",
                path=mask,
            )
    return int(ids[ids != IGNORE].max(initial=0))


def _upright_size(image: Path) -> tuple[int, int] | None:
    """`(width, height)` of an image as predict sees it (EXIF orientation applied); None when unreadable
    (predict then skips it)."""
    from PIL import Image

    from zoo.images import exif_orientation

    try:
        with Image.open(image) as opened:
            width, height = opened.size
            return (height, width) if exif_orientation(opened) in (5, 6, 7, 8) else (width, height)
    except (OSError, ValueError, ImportError):  # ultralytics patches Image.open to import pi_heif on unknown files
        return None


def _predict(model: Model, files: Sequence[Path], batch_size: int) -> Iterator[Any]:
    """`model.predict` over `files`, `batch_size` at a time (unreadable images skipped)."""
    with warnings.catch_warnings():  # the result lists the unreadable files itself
        warnings.simplefilter("ignore", SkippedInputsWarning)
        for start in range(0, len(files), batch_size):
            yield model.predict(list(files[start : start + batch_size]), on_error="skip")


def _add(confusion: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """`confusion` plus the scored pixels of one image (grown when a prediction has a higher class id)."""
    import numpy as np

    scored = truth != IGNORE
    true, found = truth[scored], predicted[scored]
    n = max(len(confusion), int(found.max(initial=0)) + 1)
    if n > len(confusion):
        confusion = np.pad(confusion, ((0, n - len(confusion)), (0, n - len(confusion))))
    confusion += np.bincount(true * n + found, minlength=n * n).reshape(n, n)
    return confusion


def _measure(
    model: str,
    data: str,
    classes: Sequence[str],
    confusion: np.ndarray,
    count: int,
    skipped: tuple[str, ...],
) -> SegmentationEvaluation:
    import numpy as np

    true, hit = confusion.sum(1), np.diag(confusion)
    union = true + confusion.sum(0) - hit
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, hit / union, np.nan)
    present = iou[~np.isnan(iou)]
    return SegmentationEvaluation(
        model=model,
        data=data,
        count=count,
        miou=float(present.mean()) if present.size else 0.0,
        pixel_accuracy=float(hit.sum() / true.sum()) if true.sum() else 0.0,
        classes=tuple(classes),
        iou=tuple(float(v) for v in iou),
        support=tuple(int(v) for v in true),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        skipped=skipped,
    )
