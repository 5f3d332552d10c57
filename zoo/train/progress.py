"""What a run reports while it trains: a rich progress bar on a terminal and TensorBoard scalars.

Only rank 0 reports. rich and TensorBoard are imported when used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.progress import console, progress_enabled
from zoo.train.history import EpochMetrics

__all__ = ["Reporter"]

log = logging.getLogger(__name__)


class Reporter:
    """Progress bar (loss, images/s) and TensorBoard scalars (loss, accuracy, lr, images/s).

    Args:
        enabled: False on ranks other than 0 (then nothing is shown or written).
        progress: show a bar; None shows one when stderr is a terminal and `ZOO_PROGRESS` is not 0.
        log_dir: TensorBoard folder, or None.
    """

    def __init__(self, *, enabled: bool, progress: bool | None, log_dir: Path | None) -> None:
        self.enabled = enabled
        show = progress_enabled() if progress is None else progress
        self._bar: Any = _bar() if enabled and show else None
        self._task: Any = None
        self._writer: Any = _writer(log_dir) if enabled and log_dir is not None else None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        """A new epoch of `steps` steps begins (1-based `epoch` of `epochs`)."""
        if self._bar is not None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(f"epoch {epoch}/{epochs}", total=steps, loss=float("nan"), speed=0.0)

    def step(self, global_step: int, loss: float | None, images_per_s: float) -> None:
        """A training step finished; `loss` is None when it was not read back this step."""
        if self._bar is not None and self._task is not None:
            fields = {"speed": images_per_s} | ({"loss": loss} if loss is not None else {})
            self._bar.update(self._task, advance=1, **fields)
        if self._writer is not None and loss is not None:
            self._writer.add_scalar("train/step_loss", loss, global_step)

    def end_epoch(self, metrics: EpochMetrics) -> None:
        """Write the epoch's scalars and log its summary line."""
        if not self.enabled:
            return
        log.info("%s", metrics)
        if self._writer is None:
            return
        names = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "val_map", "val_map50", "lr")
        for name in (*names, "images_per_s"):
            value = metrics.value(name)
            if value is not None:
                group, _, key = name.partition("_")
                tag = f"{group}/{key}" if group in ("train", "val") else name
                self._writer.add_scalar(tag, value, metrics.epoch)
        self._writer.flush()

    def close(self) -> None:
        """Stop the bar and close the TensorBoard writer."""
        if self._bar is not None:
            self._bar.stop()
        if self._writer is not None:
            self._writer.close()


def _bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:.1f} img/s"),
        TimeRemainingColumn(),
        console=console(),  # shared with the CLI's log handler: log lines print above the bar
        transient=False,
    )
    bar.start()
    return bar


def _writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ZooError(
            "log_dir= needs TensorBoard: pip install 'zoo-sdk[tensorboard]' (or leave log_dir out)."
        ) from exc
    return SummaryWriter(log_dir=str(log_dir))
