"""Detection training data: a COCO-json file or a YOLO folder read into checked boxes per image.

The files are read by `zoo.evaluate.detection`'s readers (the ones `zoo eval` uses), then every box is checked
against its image: a box outside the image, one with zero area, a class the dataset does not name and an empty
dataset are one-line `InputError`s naming the file. Class names are only strings: nothing read here chooses code.

Targets follow torchvision's detection convention: class 0 is the background, so the dataset's k-th class
(0-based) is label k + 1 and the model's labels are `("__background__", *names)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["BACKGROUND", "DetectionData", "DetectionSample", "is_detection_path", "read_detection"]

#: The name of class 0 in a fine-tuned detector's labels (torchvision's detectors reserve it).
BACKGROUND = "__background__"
#: How far (pixels) a box may stick out of its image and be clipped back, for rounding in normalised YOLO labels.
TOLERANCE = 0.5


@dataclass(frozen=True)
class DetectionSample:
    """One training image and its boxes.

    Attributes:
        path: the image file.
        size: (width, height) of the image in pixels.
        boxes: (x1, y1, x2, y2) per box, in pixels, inside the image.
        classes: the 0-based dataset class of each box.
    """

    path: Path
    size: tuple[int, int]
    boxes: tuple[tuple[float, float, float, float], ...]
    classes: tuple[int, ...]

    def target(self) -> dict[str, torch.Tensor]:
        """torchvision's training target: `boxes` (N, 4) float xyxy and `labels` (N,) int64, background = 0."""
        import torch

        boxes = torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        return {"boxes": boxes, "labels": torch.tensor([c + 1 for c in self.classes], dtype=torch.int64)}


@dataclass(frozen=True)
class DetectionData:
    """A detection dataset: its class names and its images.

    Attributes:
        source: the file or folder read.
        names: the dataset's class names, in class order (without the background).
        samples: the images, in file order.
    """

    source: str
    names: tuple[str, ...]
    samples: tuple[DetectionSample, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The fine-tuned model's labels: the background, then the dataset's classes."""
        return (BACKGROUND, *self.names)

    def split(self, fraction: float, seed: int) -> tuple[DetectionData, DetectionData]:
        """(train, val): `fraction` of the images (at least one) held out at random for validation."""
        import random

        order = list(range(len(self.samples)))
        random.Random(seed).shuffle(order)
        count = max(1, round(len(order) * fraction))
        if count >= len(order):
            raise InputError(f"{self.source} has {len(order)} images: too few to hold {fraction} out for validation.")
        held = set(order[:count])
        train = tuple(s for i, s in enumerate(self.samples) if i not in held)
        val = tuple(s for i, s in enumerate(self.samples) if i in held)
        return DetectionData(self.source, self.names, train), DetectionData(self.source, self.names, val)


def is_detection_path(data: Any) -> bool:
    """Whether `data` names a COCO `.json` file or a YOLO folder (`images/` beside `labels/`)."""
    if not isinstance(data, (str, Path)):
        return False
    path = Path(data).expanduser()
    return (path.suffix.lower() == ".json" and path.is_file()) or (path / "labels").is_dir()


def read_detection(data: str | Path, *, names: Sequence[str] | None = None, split: str = "train") -> DetectionData:
    """Read and check a COCO annotations `.json` file or a YOLO folder.

    Args:
        data: the `.json` file, or the YOLO root (`images/` and `labels/`, or their `train/` and `val/` subfolders).
        names: class names for a YOLO folder without `data.yaml` / `classes.txt`.
        split: which subfolders of a YOLO root to read when it has them: "train" or "val".

    Raises:
        InputError: an unreadable file, a missing image, a box outside its image or with zero area, a class
            id the dataset does not name, or no image or no box at all.
    """
    from zoo.evaluate.detection import _coco

    path = Path(data).expanduser()
    if not is_detection_path(path):
        raise InputError(
            f"{path} is not detection data: pass a COCO annotations .json file or a YOLO folder "
            "(images/ and labels/, with data.yaml naming the classes)."
        )
    try:
        gt, files = _coco(path) if path.is_file() else _read_yolo(path, names, split)
        return _checked(path, gt, files)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: malformed annotations ({type(exc).__name__}: {exc}); check the file.") from None


def _read_yolo(root: Path, names: Sequence[str] | None, split: str) -> tuple[dict[str, Any], list[tuple[Path, int]]]:
    """`_yolo`, with a data.yaml that `yaml.safe_load` refuses (a tag that would build an object) as an InputError."""
    import yaml

    from zoo.evaluate.detection import _yolo

    try:
        return _yolo(root, names, split=split)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise InputError(f"{root}: could not read its data.yaml ({reason}): write plain YAML names.") from None


def _checked(path: Path, gt: dict[str, Any], files: list[tuple[Path, int]]) -> DetectionData:
    """`DetectionData` from a COCO-style dict, every box checked against its image."""
    categories = gt["categories"]
    index = {int(c["id"]): k for k, c in enumerate(categories)}
    names = tuple(str(c["name"]) for c in categories)
    if len(set(names)) != len(names):
        raise InputError(f"{path} names a class twice ({', '.join(names)}): give each class one name.")
    if not files:
        raise InputError(f"{path} lists no images: a detector needs images with boxes to learn from.")
    info = {int(im["id"]): im for im in gt["images"]}
    per_image: dict[int, list[dict[str, Any]]] = {}
    for annotation in gt["annotations"]:
        per_image.setdefault(int(annotation["image_id"]), []).append(annotation)
    samples = []
    for file, image_id in files:
        size = _size(file, info.get(image_id, {}))
        boxes, classes = [], []
        for annotation in per_image.pop(image_id, []):
            category = int(annotation["category_id"])
            if category not in index:
                raise InputError(
                    f"{path}: a box of {file.name} has class id {category}, which is not one of the "
                    f"{len(names)} categories: fix the id or add the category."
                )
            boxes.append(_box(path, file, size, annotation["bbox"]))
            classes.append(index[category])
        samples.append(DetectionSample(file, size, tuple(boxes), tuple(classes)))
    if per_image:
        raise InputError(f"{path}: annotations refer to image id {next(iter(per_image))}, which it does not list.")
    if not any(s.boxes for s in samples):
        raise InputError(f"{path} has images but no boxes: a detector needs labelled boxes to learn from.")
    return DetectionData(str(path), names, tuple(samples))


def _size(file: Path, image: dict[str, Any]) -> tuple[int, int]:
    if image.get("width") and image.get("height"):
        return int(image["width"]), int(image["height"])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"Cannot read image {file} ({type(exc).__name__}): replace or remove it.") from None


def _box(path: Path, file: Path, size: tuple[int, int], bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """A COCO xywh box as xyxy, clipped by at most `TOLERANCE` pixels; an `InputError` when it cannot be used."""
    x, y, w, h = (float(v) for v in bbox)
    width, height = size
    where = f"{path}: box ({x:g}, {y:g}, {w:g}, {h:g}) (x, y, w, h) of {file.name}"
    if not w > 0 or not h > 0:
        raise InputError(f"{where} has zero area: drop it or give it a width and height.")
    x1, y1, x2, y2 = x, y, x + w, y + h
    if x1 < -TOLERANCE or y1 < -TOLERANCE or x2 > width + TOLERANCE or y2 > height + TOLERANCE:
        raise InputError(f"{where} lies outside the {width}x{height} image: fix its coordinates.")
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
        raise InputError(f"{where} has zero area inside the image: drop it or fix its coordinates.")
    return x1, y1, x2, y2
