"""One epoch of training or evaluation: device transfer, AMP, channels_last, loss and top-k counts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.tasks.classification import logits_of

if TYPE_CHECKING:
    import torch

    from zoo.train.augment import BatchNormalizer
    from zoo.train.progress import Reporter

__all__ = ["Precision", "Sums", "Stepper", "precision_for"]

#: Steps between reads of the loss for the progress bar (each read waits for the GPU).
LOSS_EVERY = 10


@dataclass(frozen=True)
class Precision:
    """Mixed-precision setting of a run.

    Attributes:
        dtype: autocast dtype (torch.bfloat16 / torch.float16), or None for float32.
        scaler: True when fp16 needs a GradScaler.
    """

    dtype: Any = None
    scaler: bool = False


def precision_for(device: torch.device, amp: bool | None) -> Precision:
    """bf16 autocast where the device supports it, else fp16 with a GradScaler; off on CPU by default."""
    import torch

    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return Precision()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return Precision(torch.float16, scaler=True)
    return Precision(torch.bfloat16)


@dataclass
class Sums:
    """Running sums of an epoch (summed over ranks before dividing)."""

    loss: float = 0.0
    correct1: float = 0.0
    correct5: float = 0.0
    count: float = 0.0
    skipped: float = 0.0

    def as_list(self) -> list[float]:
        return [self.loss, self.correct1, self.correct5, self.count, self.skipped]


class Stepper:
    """Runs training and evaluation epochs of one module with one optimizer and schedule.

    Args:
        forward: the module to call (possibly DDP-wrapped or compiled).
        optimizer: the optimizer.
        scheduler: stepped after every optimizer step.
        normalizer: moves and normalises batches.
        precision: AMP setting.
        label_smoothing: training loss label smoothing.
    """

    def __init__(
        self,
        forward: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        normalizer: BatchNormalizer,
        precision: Precision,
        label_smoothing: float = 0.0,
    ) -> None:
        import torch

        self.forward = forward
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.normalizer = normalizer
        self.precision = precision
        self.device = normalizer.device
        self.scaler = torch.amp.GradScaler(self.device.type) if precision.scaler else None
        self.loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.global_step = 0
        #: validation counts of the last `evaluate(..., classes=n)`, `[true * n + predicted]`, flattened
        self.confusion: list[float] = []

    def _autocast(self) -> Any:
        import torch

        if self.precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.dtype)

    def train_epoch(self, batches: Iterable[Any], reporter: Reporter) -> tuple[Sums, float]:
        """Train over `batches`; returns the epoch's sums and its wall time in seconds."""
        import torch

        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        sums = Sums()
        start = time.perf_counter()
        for step, (x, y, skipped) in enumerate(batches):
            sums.skipped += skipped
            if x is None:
                continue
            x, y = self.normalizer(x), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = logits_of(self.forward(x))
            loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self._backward_and_step(loss)
            self.scheduler.step()
            self.global_step += 1
            n = y.shape[0]
            sums.count += n
            loss_sum += loss.detach() * n
            correct += (logits.detach().argmax(-1) == y).sum()
            read = step % LOSS_EVERY == 0 or self.device.type == "cpu"
            speed = sums.count / max(time.perf_counter() - start, 1e-9)
            reporter.step(self.global_step, float(loss.detach()) if read else None, speed)
        sums.loss, sums.correct1 = float(loss_sum), float(correct)
        return sums, time.perf_counter() - start

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def evaluate(self, module: torch.nn.Module, batches: Iterable[Any], classes: int | None = None) -> Sums:
        """Loss (plain cross-entropy) and top-1 / top-5 counts of `module` over `batches`; with `classes`,
        also the confusion counts (in `self.confusion`)."""
        import torch
        import torch.nn.functional as F

        module.eval()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)
        confusion = torch.zeros((classes or 0) ** 2, dtype=torch.float64, device=self.device)
        sums = Sums()
        with torch.inference_mode():
            for x, y, skipped in batches:
                sums.skipped += skipped
                if x is None:
                    continue
                x, y = self.normalizer(x), y.to(self.device, non_blocking=True)
                with self._autocast():
                    logits = logits_of(module(x)).float()
                top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
                if classes and logits.shape[-1] == classes:
                    confusion += torch.bincount(y * classes + top[:, 0], minlength=classes**2).double()
                hits = top == y[:, None]
                totals += torch.stack(
                    [F.cross_entropy(logits, y, reduction="sum"), hits[:, 0].sum(), hits.any(dim=1).sum()]
                ).double()
                sums.count += y.shape[0]
        sums.loss, sums.correct1, sums.correct5 = totals.tolist()
        self.confusion = confusion.tolist()
        return sums
