"""Training reports in the run folder: `results.csv` per epoch, `curves.png`, and for classifiers the validation
`confusion_matrix.png` and `per_class.csv` (accuracy, precision, recall, F1) of the best epoch.

Written by rank 0 after every epoch, so a run stopped half-way still has its reports.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from zoo.train.history import EpochMetrics, History

__all__ = ["CONFUSION_NAME", "CURVES_NAME", "PER_CLASS_NAME", "RESULTS_NAME", "write_epoch_reports", "write_per_class"]

RESULTS_NAME = "results.csv"
CURVES_NAME = "curves.png"
CONFUSION_NAME = "confusion_matrix.png"
PER_CLASS_NAME = "per_class.csv"
#: The series drawn in `curves.png` (losses in one panel, accuracies and mAPs in another, the learning rate in a
#: third); a series without values (a detector's top-1, a classifier's mAP) is left out.
CURVES = ("train_loss", "val_loss", "train_top1", "val_top1", "val_top5", "val_map", "val_map50", "lr")


def results_csv(history: History) -> str:
    """One row per epoch, one column per `EpochMetrics` field (empty where there is no value)."""
    names = [f.name for f in fields(EpochMetrics)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for epoch in history:
        writer.writerow(["" if getattr(epoch, n) is None else getattr(epoch, n) for n in names])
    return buffer.getvalue()


def write_epoch_reports(out: Path, history: History, title: str) -> None:
    """(Re)write `results.csv` and `curves.png` in `out` for the epochs so far."""
    from zoo.charts import curves_image, save_png

    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_NAME).write_text(results_csv(history))
    series = {name: history.metric(name) for name in CURVES}
    save_png(curves_image(series, title=title), out / CURVES_NAME)


def write_per_class(out: Path, confusion: Sequence[Sequence[int]], labels: Sequence[str], epoch: int) -> None:
    """Write `confusion_matrix.png` and `per_class.csv` for the validation confusion counts of `epoch`.

    Args:
        out: the run folder.
        confusion: counts, `confusion[true][predicted]`, over `labels`.
        labels: the class names.
        epoch: the 1-based epoch the counts come from (written in the CSV and the picture's title).
    """
    from zoo.charts import confusion_image, save_png

    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "accuracy", "precision", "recall", "f1", "support", "epoch"])
    for k, label in enumerate(labels):
        support = sum(confusion[k])
        predicted = sum(row[k] for row in confusion)
        hits = confusion[k][k]
        recall = hits / support if support else 0.0
        precision = hits / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        writer.writerow([label, f"{recall:.6f}", f"{precision:.6f}", f"{recall:.6f}", f"{f1:.6f}", support, epoch])
    (out / PER_CLASS_NAME).write_text(buffer.getvalue())
    save_png(confusion_image(confusion, labels, labels), out / CONFUSION_NAME)
