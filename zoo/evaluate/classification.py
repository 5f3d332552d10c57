"""Classifier evaluation on an ImageFolder: top-1/top-5, per-class precision/recall/F1, confusion matrix.

Every image goes through `model.predict` itself, so the preprocessing is predict's and the top-1 is exactly
the share of `predict` answers whose label is the image's folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, SkippedInputsWarning, UnsupportedError
from zoo.evaluate.report import Report
from zoo.images import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from PIL import Image

    from zoo.model import Model

__all__ = ["ClassificationEvaluation", "evaluate_classification", "image_folder"]

#: Subfolders of a dataset root that hold its evaluation split, in order of preference.
EVAL_FOLDERS = ("val", "valid", "validation", "test")
#: The confusion matrix's last column when the model predicted a class the data does not have.
OTHER = "(other)"


@dataclass(frozen=True)
class ClassificationEvaluation(Report):
    """How a classifier did on a labelled image folder.

    Attributes:
        model: the model's name (`mobilenet_v2:IMAGENET1K_V1`).
        data: the folder evaluated.
        count: images evaluated (unreadable ones are left out and listed in `skipped`).
        top1: share of images whose top-1 label is their folder, in [0, 1].
        top5: share whose folder is among the top-k labels (k = min(5, the model's classes)).
        classes: the data's classes (folder names), in the order of the per-class values.
        precision: per class: of the images predicted as it, the share that are.
        recall: per class: of its images, the share predicted as it (its accuracy).
        f1: per class: harmonic mean of precision and recall (0 when both are 0).
        support: per class: images evaluated.
        confusion: counts, one row per true class; columns are `classes`, then `(other)` when the model
            predicted classes the data does not have.
        skipped: the files that could not be read.
    """

    model: str
    data: str
    count: int
    top1: float
    top5: float
    classes: tuple[str, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    support: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...] = field(repr=False)
    skipped: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """What was measured: `image-classification`."""
        return "image-classification"

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes."""
        return sum(self.f1) / len(self.f1) if self.f1 else 0.0

    @property
    def columns(self) -> tuple[str, ...]:
        """The confusion matrix's predicted classes."""
        width = len(self.confusion[0]) if self.confusion else len(self.classes)
        return self.classes + ((OTHER,) if width > len(self.classes) else ())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the headline metrics, then one entry per class and the confusion matrix."""
        return {
            "task": self.task,
            "model": self.model,
            "data": self.data,
            "count": self.count,
            "top1": self.top1,
            "top5": self.top5,
            "macro_f1": self.macro_f1,
            "per_class": [
                {"class": c, "precision": p, "recall": r, "f1": f, "support": s}
                for c, p, r, f, s in zip(self.classes, self.precision, self.recall, self.f1, self.support)
            ],
            "confusion": {"rows": list(self.classes), "columns": list(self.columns), "counts": self.confusion},
            "skipped": list(self.skipped),
        }

    def plot(self) -> Image.Image:
        """The confusion matrix as a picture (rows: true classes, columns: predicted)."""
        from zoo.charts import confusion_image

        return confusion_image(self.confusion, self.classes, self.columns)

    def summary(self) -> str:
        """One line: images, top-1, top-5, macro F1."""
        return (
            f"{self.model} on {self.data}: {self.count} images, top-1 {self.top1:.4f}, top-5 {self.top5:.4f}, "
            f"macro F1 {self.macro_f1:.4f}" + (f", {len(self.skipped)} unreadable skipped" if self.skipped else "")
        )

    def __str__(self) -> str:
        width = max([len(c) for c in self.classes] + [5])
        lines = [self.summary(), f"  {'class'.ljust(width)}  precision  recall  f1     support"]
        for c, p, r, f, s in zip(self.classes, self.precision, self.recall, self.f1, self.support):
            lines.append(f"  {c.ljust(width)}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {s:7d}")
        return "\n".join(lines)


def image_folder(root: Path) -> tuple[Path, list[tuple[str, list[Path]]]]:
    """The evaluation folder of `root` (its `val/` or `test/` when it has `train/` beside one) and its
    classes with their image files, classes sorted by name.

    Raises:
        InputError: not a folder, or no class folder with images.
    """
    if not root.is_dir():
        raise InputError(f"No such folder: {root}. Pass an ImageFolder directory (one folder per class).")
    if (root / "train").is_dir():
        root = next((root / name for name in EVAL_FOLDERS if (root / name).is_dir()), root)
    classes = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            classes.append((folder.name, files))
    if not classes:
        raise InputError(f"{root} holds no class folders with images: lay it out as {root}/<class>/<image>.")
    return root, classes


def evaluate_classification(
    model: Model, data: str | Path, *, batch_size: int = 32, amp: bool | None = None
) -> ClassificationEvaluation:
    """Run `model.predict` over an ImageFolder and measure the answers against the folder names.

    Args:
        model: an image classifier.
        data: `root/<class>/<image>`; a root holding `train/` and `val/` (or `valid/`, `test/`) is
            measured on the latter. Folder names are the model's labels, or class indices.
        batch_size: images per forward pass.
        amp: bf16 autocast (default: on for CUDA).

    Raises:
        InputError: a folder name that is none of the model's labels, or no readable image.
    """
    root, classes = image_folder(Path(data).expanduser())
    labels = model.labels
    if not labels:
        raise UnsupportedError(f"{model.name} has no class labels to compare the folder names with.")
    targets = _targets([name for name, _ in classes], labels, root)
    files = [path for _, paths in classes for path in paths]
    truth = {str(path): targets[i] for i, (_, paths) in enumerate(classes) for path in paths}
    with warnings.catch_warnings():  # the result lists the unreadable files itself
        warnings.simplefilter("ignore", SkippedInputsWarning)
        results = model.predict(files, top_k=min(5, len(labels)), batch_size=batch_size, amp=amp, on_error="skip")
    if not hasattr(results, "skipped") or (results and not hasattr(results[0], "indices")):
        raise UnsupportedError(f"{model.name} is a {model.spec.task} model: its answers are not class labels.")
    skipped = tuple(str(s.source) for s in results.skipped)
    if not results:
        raise InputError(f"None of the {len(files)} images under {root} could be read.")
    pairs = [(truth[str(r.source)], tuple(r.indices)) for r in results]
    return _measure(model.name, str(root), [name for name, _ in classes], targets, pairs, skipped)


def _targets(names: Sequence[str], labels: Sequence[str], root: Path) -> list[int]:
    """The model's class index of each folder name: by label, else by index when every name is a number."""
    index = {label: i for i, label in enumerate(labels)}
    if all(name in index for name in names):
        return [index[name] for name in names]
    if all(name.isdigit() and int(name) < len(labels) for name in names):
        return [int(name) for name in names]
    unknown = [name for name in names if name not in index]
    shown = ", ".join(repr(n) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    raise InputError(
        f"{len(unknown)} folder(s) of {root} name no class of the model ({shown}): name each class folder "
        f"after one of the model's labels (see `zoo info`) or its class index."
    )


def _measure(
    model: str,
    data: str,
    classes: Sequence[str],
    targets: Sequence[int],
    pairs: Sequence[tuple[int, tuple[int, ...]]],
    skipped: tuple[str, ...],
) -> ClassificationEvaluation:
    column = {target: j for j, target in enumerate(targets)}
    n = len(classes)
    matrix = [[0] * (n + 1) for _ in range(n)]
    top1 = top5 = 0
    for true, top in pairs:
        matrix[column[true]][column.get(top[0], n)] += 1
        top1 += top[0] == true
        top5 += true in top
    predicted = [sum(row[j] for row in matrix) for j in range(n)]
    support = [sum(row) for row in matrix]
    precision = [matrix[j][j] / predicted[j] if predicted[j] else 0.0 for j in range(n)]
    recall = [matrix[j][j] / support[j] if support[j] else 0.0 for j in range(n)]
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall)]
    if not any(row[n] for row in matrix):
        matrix = [row[:n] for row in matrix]
    return ClassificationEvaluation(
        model=model,
        data=data,
        count=len(pairs),
        top1=top1 / len(pairs),
        top5=top5 / len(pairs),
        classes=tuple(classes),
        precision=tuple(precision),
        recall=tuple(recall),
        f1=tuple(f1),
        support=tuple(support),
        confusion=tuple(tuple(row) for row in matrix),
        skipped=skipped,
    )
