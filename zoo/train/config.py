"""`TrainConfig`: every knob of a fine-tuning run as one frozen, validated value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from zoo.errors import InputError
from zoo.images import MAX_SIDE

__all__ = ["OPTIMIZERS", "STRATEGIES", "TrainConfig"]

#: `full`: every parameter; `linear`: the head only; `freeze_unfreeze`: the head for `freeze_epochs`
#: epochs, then everything, the backbone at `lr * backbone_lr_scale`.
STRATEGIES = ("full", "linear", "freeze_unfreeze")
OPTIMIZERS = ("adamw", "sgd")
#: Default learning rates: (optimizer, what is trained) -> lr. "head" is a new head on a frozen or
#: slowly unfrozen backbone (and random-init models); "pretrained" is `full` on pretrained weights.
#: AdamW 1e-3 for `full` was chosen by experiment (docs/guides/fine-tuning.md, bench/finetune_defaults.py):
#: on a small dataset 1e-4 barely moves a new head in the few steps of a short run.
DEFAULT_LR = {
    ("adamw", "head"): 1e-3,
    ("adamw", "pretrained"): 1e-3,
    ("sgd", "head"): 1e-2,
    ("sgd", "pretrained"): 1e-3,
}
MONITORS = ("val_top1", "val_loss", "train_loss")
#: With `augment=None`, runs of at least this many epochs augment; shorter ones train on the eval transform,
#: where augmentation costs accuracy (it pays off only once the model starts to overfit).
AUGMENT_FROM_EPOCHS = 5


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune; `zoo.train.finetune` documents each argument.

    Attributes:
        epochs: epochs to run (in total, when resuming).
        lr: learning rate of the head (and of everything for `full`); None picks `DEFAULT_LR`.
        batch_size: images per step on each process.
        strategy: one of `STRATEGIES`.
        optimizer: "adamw" or "sgd" (with Nesterov momentum).
        weight_decay: decoupled (AdamW) or L2 (SGD) decay; biases and norm layers get none.
        momentum: SGD momentum.
        warmup: fraction of all steps spent warming the learning rate up linearly, then cosine decay.
        label_smoothing: cross-entropy label smoothing while training (validation loss has none; default 0).
        freeze_epochs: epochs the backbone stays frozen under `freeze_unfreeze`.
        backbone_lr_scale: backbone lr = lr * this, once unfrozen under `freeze_unfreeze`.
        patience: stop after this many epochs without a better `monitor` value (None: never).
        monitor: "val_top1" (ties broken by val_loss), "val_loss" or "train_loss": picks the best epoch,
            whose weights the model ends with. Without validation data, a val metric means the last epoch.
        amp: mixed precision (None: on for CUDA; bf16 where supported, else fp16 with a GradScaler).
        channels_last: NHWC memory format (None: on for CUDA).
        compile: wrap the module in `torch.compile`.
        num_workers: DataLoader worker processes (None: min(4, CPUs - 1) on CUDA, 0 on CPU).
        seed: seeds data order, augmentation and new heads; same seed, same weights (on CPU).
        image_size: train and predict at this square size instead of the weights' crop size.
        augment: random resized crops and flips while training (False: the eval transform; None: only for
            runs of `AUGMENT_FROM_EPOCHS` (5) epochs or more).
        val_split: fraction of the training data held out for validation when no `val` is given.
        out: folder for `best.safetensors` and the resumable `last.pt` (None: nothing written).
        resume: a `last.pt` (or a folder holding one) to continue from.
        log_dir: TensorBoard log folder (None: no TensorBoard).
        progress: a progress bar (None: when stderr is a terminal).
    """

    epochs: int = 3
    lr: float | None = None
    batch_size: int = 32
    strategy: str = "full"
    optimizer: str = "adamw"
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup: float = 0.05
    label_smoothing: float = 0.0
    freeze_epochs: int = 1
    backbone_lr_scale: float = 0.1
    patience: int | None = 5
    monitor: str = "val_top1"
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    num_workers: int | None = None
    seed: int | None = None
    image_size: int | None = None
    augment: bool | None = None
    val_split: float | None = None
    out: Path | None = None
    resume: Path | None = None
    log_dir: Path | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name in ("out", "resume", "log_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value).expanduser())
        _check(self.strategy in STRATEGIES, f"strategy={self.strategy!r}: use one of {', '.join(STRATEGIES)}.")
        _check(self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}.")
        _check(self.monitor in MONITORS, f"monitor={self.monitor!r}: use one of {', '.join(MONITORS)}.")
        _check(_int(self.epochs) and self.epochs >= 1, f"epochs={self.epochs!r}: use a whole number >= 1.")
        _check(_int(self.batch_size) and self.batch_size >= 1, f"batch_size={self.batch_size!r}: use >= 1.")
        _check(self.lr is None or self.lr > 0, f"lr={self.lr!r}: use a positive learning rate.")
        _check(self.weight_decay >= 0, f"weight_decay={self.weight_decay!r}: use a value >= 0.")
        _check(0 <= self.label_smoothing < 1, f"label_smoothing={self.label_smoothing!r}: use a value in [0, 1).")
        _check(0 <= self.warmup < 1, f"warmup={self.warmup!r}: use a fraction of the steps in [0, 1).")
        _check(_int(self.freeze_epochs) and self.freeze_epochs >= 0, f"freeze_epochs={self.freeze_epochs!r}: use >= 0.")
        _check(self.patience is None or self.patience >= 1, f"patience={self.patience!r}: use >= 1, or None.")
        _check(
            self.image_size is None or 8 <= self.image_size <= MAX_SIDE,
            f"image_size={self.image_size!r}: use 8 to {MAX_SIDE} pixels.",
        )
        split = self.val_split
        _check(split is None or 0 < split < 1, f"val_split={split!r}: use a fraction in (0, 1).")
        workers = self.num_workers
        _check(workers is None or (_int(workers) and workers >= 0), f"num_workers={workers!r}: use >= 0.")

    def learning_rate(self, pretrained: bool) -> float:
        """The head's learning rate: `lr`, or the default for this optimizer and strategy."""
        if self.lr is not None:
            return float(self.lr)
        kind = "pretrained" if pretrained and self.strategy == "full" else "head"
        return DEFAULT_LR[(self.optimizer, kind)]

    @property
    def augments(self) -> bool:
        """Whether training images are augmented: `augment`, or by default only in runs of 5 epochs or more."""
        return self.augment if self.augment is not None else self.epochs >= AUGMENT_FROM_EPOCHS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as text)."""
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The argument names `finetune` accepts."""
        return tuple(f.name for f in fields(cls))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)
