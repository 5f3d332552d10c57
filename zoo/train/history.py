"""Per-epoch metrics of a fine-tuning run (`EpochMetrics`) and the run's record (`History`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EpochMetrics", "History"]


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured, reduced over every process.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: mean training loss (with label smoothing).
        train_top1: training top-1 accuracy on the augmented images, in [0, 1] (None for a detector).
        val_loss: mean validation cross-entropy, or None without validation data.
        val_top1: validation top-1 accuracy, or None.
        val_top5: validation top-5 accuracy (top-k for fewer than 5 classes), or None.
        lr: learning rate of the head at the end of the epoch.
        images_per_s: training images per second over the epoch (every process together).
        seconds: wall time of the epoch, validation included.
        skipped: unreadable images skipped this epoch.
        phase: "head" while the backbone is frozen, else "all".
        val_map: a detector's COCO mAP@[.5:.95] on the validation data, or None.
        val_map50: a detector's COCO mAP@.5 on the validation data, or None.
    """

    epoch: int
    train_loss: float
    train_top1: float | None
    val_loss: float | None
    val_top1: float | None
    val_top5: float | None
    lr: float
    images_per_s: float
    seconds: float
    skipped: int = 0
    phase: str = "all"
    val_map: float | None = None
    val_map50: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def value(self, name: str) -> float | None:
        """The metric called `name` (`val_top1`, `train_loss`, ...)."""
        return getattr(self, name)

    def __str__(self) -> str:
        parts = [f"epoch {self.epoch}", f"loss {self.train_loss:.4f}"]
        parts += [f"acc {self.train_top1:.3f}"] if self.train_top1 is not None else []
        if self.val_loss is not None:
            parts.append(f"val_loss {self.val_loss:.4f}")
        if self.val_top1 is not None:
            parts += [f"val_top1 {self.val_top1:.3f}", f"val_top5 {self.val_top5:.3f}"]
        if self.val_map is not None:
            parts += [f"val_mAP {self.val_map:.4f}", f"val_mAP50 {self.val_map50:.4f}"]
        parts += [f"lr {self.lr:.2e}", f"{self.images_per_s:.1f} img/s", f"{self.seconds:.1f}s"]
        if self.skipped:
            parts.append(f"{self.skipped} unreadable skipped")
        return "  ".join(parts)


@dataclass(frozen=True)
class History:
    """The record of a fine-tuning run: one `EpochMetrics` per epoch run, and which was best.

    Attributes:
        epochs: metrics of each epoch, in order (a resumed run includes the epochs before it).
        monitor: the metric that picked the best epoch ("epoch" when the last one was kept: no validation).
        best_epoch: 1-based number of the best epoch (the model ends with its weights).
        stopped_early: True when early stopping ended the run.
        checkpoint: path of the best checkpoint written, or None.
    """

    epochs: tuple[EpochMetrics, ...]
    monitor: str
    best_epoch: int | None = None
    stopped_early: bool = False
    checkpoint: str | None = None

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self) -> Iterator[EpochMetrics]:
        return iter(self.epochs)

    def __getitem__(self, index: int) -> EpochMetrics:
        return self.epochs[index]

    @property
    def best(self) -> EpochMetrics | None:
        """Metrics of the best epoch."""
        return next((e for e in self.epochs if e.epoch == self.best_epoch), None)

    def metric(self, name: str) -> list[float | None]:
        """One metric over the epochs, e.g. `history.metric("val_top1")`."""
        return [e.value(name) for e in self.epochs]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "monitor": self.monitor,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "checkpoint": self.checkpoint,
            "epochs": [e.to_dict() for e in self.epochs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Read back `to_dict`."""
        return cls(
            epochs=tuple(EpochMetrics(**e) for e in data.get("epochs", ())),
            monitor=str(data.get("monitor", "val_top1")),
            best_epoch=data.get("best_epoch"),
            stopped_early=bool(data.get("stopped_early", False)),
            checkpoint=data.get("checkpoint"),
        )
