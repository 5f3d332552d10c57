"""Detector evaluation on a COCO-json or YOLO-format dataset: COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP
through faster-coco-eval, from the `Detections` that `model.predict` returns (same preprocessing as predict).

Datasets:
- COCO: an annotations `.json` file (`images`, `annotations` with xywh `bbox`, `categories`); image `file_name`s are
  found beside the file, in its `images/` folder, or in its parent's `images/` folder.
- YOLO: a folder with `images/` and `labels/` (one `class cx cy w h` line per box, normalised), or their `val/`
  subfolders; class names from a `data.yaml` / `classes.txt` beside them, else the model's labels by index.

Model classes are matched to the dataset's categories by name; boxes of other classes are not scored.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, SkippedInputsWarning, UnsupportedError
from zoo.evaluate.report import Report
from zoo.images import IMAGE_SUFFIXES, exif_orientation

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["DetectionEvaluation", "evaluate_boxes", "evaluate_detection", "is_detection_data"]

#: Score threshold and boxes per image for mAP (COCO scores at most 100 boxes per image).
CONF, MAX_DET = 0.001, 100


@dataclass(frozen=True)
class DetectionEvaluation(Report):
    """How a detector did on a labelled dataset (COCO metrics).

    Attributes:
        model: the model's name.
        data: the dataset evaluated.
        count: images evaluated (unreadable ones are listed in `skipped`).
        map: mAP@[.5:.95], in [0, 1].
        map50: mAP at IoU 0.5.
        map75: mAP at IoU 0.75.
        classes: the dataset's categories that have ground truth, in the order of `ap`.
        ap: per class AP@[.5:.95] (-1 when the class has no ground truth box).
        skipped: the files that could not be read.
    """

    model: str
    data: str
    count: int
    map: float
    map50: float
    map75: float
    classes: tuple[str, ...]
    ap: tuple[float, ...]
    skipped: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """What was measured: `object-detection`."""
        return "object-detection"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "task": self.task,
            "model": self.model,
            "data": self.data,
            "count": self.count,
            "map": self.map,
            "map50": self.map50,
            "map75": self.map75,
            "per_class": [{"class": c, "ap": a} for c, a in zip(self.classes, self.ap)],
            "skipped": list(self.skipped),
        }

    def summary(self) -> str:
        """One line: images and the three mAPs."""
        return (
            f"{self.model} on {self.data}: {self.count} images, mAP@[.5:.95] {self.map:.4f}, "
            f"mAP@.5 {self.map50:.4f}, mAP@.75 {self.map75:.4f}"
            + (f", {len(self.skipped)} unreadable skipped" if self.skipped else "")
        )

    def __str__(self) -> str:
        width = max([len(c) for c in self.classes] + [5])
        lines = [self.summary(), f"  {'class'.ljust(width)}  AP@[.5:.95]"]
        lines += [f"  {c.ljust(width)}  {a:.4f}" for c, a in zip(self.classes, self.ap)]
        return "\n".join(lines)


def is_detection_data(path: Path) -> bool:
    """Whether `path` looks like a COCO json file or a YOLO folder (`images/` beside `labels/`)."""
    return (path.is_file() and path.suffix.lower() == ".json") or (path / "labels").is_dir()


def evaluate_detection(model: Model, data: str | Path, *, batch_size: int = 16) -> DetectionEvaluation:
    """Run `model.predict` over a COCO-json or YOLO-format dataset and score the boxes with COCO mAP.

    Raises:
        InputError: an unreadable dataset, or categories none of which the model knows.
        UnsupportedError: faster-coco-eval is missing, or the model's answers are not boxes.
    """
    path = Path(data).expanduser()
    gt, files = _coco(path) if path.is_file() else _yolo(path, model.labels)
    return _evaluate(model, gt, files, str(path), batch_size)


def evaluate_boxes(
    model: Model,
    images: Sequence[tuple[Path, Sequence[Sequence[float]], Sequence[int]]],
    names: Sequence[str],
    *,
    data: str,
    batch_size: int = 16,
) -> DetectionEvaluation:
    """COCO mAP of `model` on images whose true boxes are already in memory (a part of a training set held out).

    Args:
        images: (image file, its boxes as (x1, y1, x2, y2) pixels of the upright image, each box's class index).
        names: the class names the indices point into; model classes are matched to them by name.
        data: what the report names as its dataset.
        batch_size: images per forward pass.

    Raises:
        InputError: none of `names` is a class of the model.
        UnsupportedError: faster-coco-eval is missing, or the model's answers are not boxes.
    """
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(names)]
    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
    files = []
    for image_id, (path, boxes, classes) in enumerate(images, 1):
        gt["images"].append({"id": image_id, "file_name": str(path)})
        files.append((Path(path), image_id))
        for (x1, y1, x2, y2), cls in zip(boxes, classes):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            box = {"image_id": image_id, "category_id": int(cls) + 1, "bbox": bbox, "area": bbox[2] * bbox[3]}
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, **box, "iscrowd": 0})
    return _evaluate(model, gt, files, data, batch_size)


def _evaluate(
    model: Model, gt: dict[str, Any], files: list[tuple[Path, int]], data: str, batch_size: int
) -> DetectionEvaluation:
    """Predict every file and score the boxes against `gt` (a COCO dict whose image ids `files` name)."""
    by_name = {c["name"]: c["id"] for c in gt["categories"]}
    if not any(label in by_name for label in model.labels or ()):
        raise InputError(
            f"None of {data}'s categories ({', '.join(list(by_name)[:5])}) is a class of {model.name}: "
            "name the categories after the model's labels (see `zoo info`)."
        )
    options: dict[str, Any] = {"batch_size": batch_size, "on_error": "skip"}
    options |= {k: v for k, v in (("conf", CONF), ("max_det", MAX_DET)) if model.task.accepts(k)}
    image_ids = {str(p): i for p, i in files}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedInputsWarning)
        results = model.predict([p for p, _ in files], **options)
    if results and not hasattr(results[0], "boxes"):
        raise UnsupportedError(f"{model.name} is a {model.spec.task} model: its answers are not boxes.")
    detections = []
    for result in results:
        for box, score, label in zip(result.boxes.tolist(), result.scores.tolist(), result.labels):
            if label in by_name:
                x1, y1, x2, y2 = box
                bbox = [x1, y1, x2 - x1, y2 - y1]
                detections.append(
                    {
                        "image_id": image_ids[str(result.source)],
                        "category_id": by_name[label],
                        "bbox": bbox,
                        "score": score,
                    }
                )
    skipped = tuple(str(s.source) for s in getattr(results, "skipped", ()))
    read = {image_ids[str(r.source)] for r in results}
    gt = {**gt, "images": [im for im in gt["images"] if im["id"] in read]}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in read]
    return _score(model.name, data, gt, detections, len(results), skipped)


def _score(
    model: str, data: str, gt: dict[str, Any], detections: list[dict[str, Any]], count: int, skipped: tuple[str, ...]
) -> DetectionEvaluation:
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError as exc:
        raise UnsupportedError("Detection evaluation needs faster-coco-eval: pip install 'zoo-sdk[coco]'.") from exc
    ground = COCO(gt)
    if not detections:
        return DetectionEvaluation(model, data, count, 0.0, 0.0, 0.0, (), (), skipped)
    found = ground.loadRes(detections)
    scorer = COCOeval_faster(ground, found, iouType="bbox", print_function=lambda *a: None)
    scorer.evaluate()
    scorer.accumulate()
    scorer.summarize()
    stats = scorer.stats_as_dict
    precision = scorer.eval["precision"]  # [iou, recall, class, area, max_dets]
    names = {c["id"]: c["name"] for c in gt["categories"]}
    with_truth = {a["category_id"] for a in gt["annotations"]}
    classes, ap = [], []
    for k, category in enumerate(scorer.params.catIds):
        if category in with_truth:
            values = precision[:, :, k, 0, -1]
            values = values[values > -1]
            classes.append(names[category])
            ap.append(float(values.mean()) if values.size else -1.0)
    return DetectionEvaluation(
        model, data, count, stats["AP_all"], stats["AP_50"], stats["AP_75"], tuple(classes), tuple(ap), skipped
    )


def _coco(path: Path) -> tuple[dict[str, Any], list[tuple[Path, int]]]:
    try:
        gt = json.loads(path.read_text())
        images, categories = gt["images"], gt["categories"]
        gt.setdefault("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a COCO annotations file ({exc}): it needs images and categories.") from exc
    roots = [path.parent, path.parent / "images", path.parent.parent / "images"]
    files = []
    for image in images:
        found = next((root / image["file_name"] for root in roots if (root / image["file_name"]).is_file()), None)
        if found is None:
            raise InputError(f"Image {image['file_name']!r} of {path} is not beside it nor in an images/ folder.")
        files.append((found, int(image["id"])))
    for annotation in gt["annotations"]:
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", annotation["bbox"][2] * annotation["bbox"][3])
    if not categories:
        raise InputError(f"{path} lists no categories.")
    return gt, files


#: EXIF orientations that turn the stored picture a quarter turn (its upright width is the stored height).
_TRANSPOSED = frozenset({5, 6, 7, 8})


def _yolo(
    root: Path, labels: Sequence[str] | None, *, split: str = "val"
) -> tuple[dict[str, Any], list[tuple[Path, int]]]:
    """A YOLO folder as a COCO-style dict; with `split/` subfolders in images/ and labels/, those are read."""
    if not (root / "images").is_dir() or not (root / "labels").is_dir():
        raise InputError(f"{root} is neither a COCO .json file nor a YOLO folder with images/ and labels/.")
    images, label_dir = root / "images", root / "labels"
    if (images / split).is_dir() and (label_dir / split).is_dir():
        images, label_dir = images / split, label_dir / split
    names = _yolo_names(root) or list(labels or ())
    if not names:
        raise InputError(f"{root} names no classes (data.yaml or classes.txt) and the model has no labels.")
    from PIL import Image

    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    gt["categories"] = [{"id": i, "name": str(n)} for i, n in enumerate(names)]
    files = []
    paths = sorted(p for p in images.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for image_id, path in enumerate(paths):
        with Image.open(path) as im:
            width, height = im.size
            if exif_orientation(im) in _TRANSPOSED:  # labels are on the upright photo, as predict sees it
                width, height = height, width
        gt["images"].append({"id": image_id, "file_name": path.name, "width": width, "height": height})
        files.append((path, image_id))
        label = label_dir / path.relative_to(images).with_suffix(".txt")
        for line_no, line in enumerate(label.read_text().splitlines() if label.is_file() else [], 1):
            if not line.strip():
                continue
            try:
                cls, cx, cy, w, h = (float(v) for v in line.split()[:5])
            except ValueError as exc:
                raise InputError(f"{label}:{line_no}: expected 'class cx cy w h', got {line!r}.") from exc
            if cls != int(cls):
                raise InputError(f"{label}:{line_no}: class {line.split()[0]!r} is not a whole number.")
            if not 0 <= cls < len(names):
                raise InputError(f"{label}:{line_no}: class {int(cls)} is not one of the {len(names)} classes.")
            box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }  # fmt: skip
            )
    if not files:
        raise InputError(f"{images} holds no images.")
    return gt, files


def _yolo_names(root: Path) -> list[str] | None:
    if (root / "classes.txt").is_file():
        return [n.strip() for n in (root / "classes.txt").read_text().splitlines() if n.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            try:
                import yaml
            except ImportError:  # pragma: no cover - ultralytics brings PyYAML
                return None
            names = (yaml.safe_load((root / name).read_text()) or {}).get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            return [str(n) for n in names] if names else None
    return None
