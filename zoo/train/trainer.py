"""`Trainer`: the epoch loop of a fine-tuning run, with validation, early stopping, the best weights kept,
checkpoints, resume, and DDP when launched by torchrun."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.train import distributed as dist
from zoo.train.augment import BatchNormalizer, eval_transform, train_transform
from zoo.train.data import DataSplit, Samples, collate
from zoo.train.history import EpochMetrics, History
from zoo.train.loop import Stepper, Sums, precision_for
from zoo.train.optim import make_optimizer, make_scheduler
from zoo.train.progress import Reporter
from zoo.train.reports import write_epoch_reports, write_per_class
from zoo.train.state import BEST_NAME, STATE_NAME, check_labels, read_state, save_model, write_state
from zoo.train.strategies import backbone_trainable, param_groups, set_trainable

if TYPE_CHECKING:
    import torch

    from zoo.model import Model, ModelInfo
    from zoo.train.config import TrainConfig

__all__ = ["Trainer"]

log = logging.getLogger(__name__)
EpochCallback = Callable[[EpochMetrics], None]


class Trainer:
    """Fine-tunes `model.module` in place on one process of the job.

    The model's `info` is not changed here: checkpoints are written with `model_info` and the run's summary,
    and `finetune` gives the model its new `ModelInfo` when training ends.

    Args:
        model: the model; its head already matches `split.labels`.
        config: the run's settings.
        info: this process's place in the job.
        device: this process's device.
        model_info: what the model is once trained (its new labels, head size, preprocessing); None: `model.info`.
    """

    def __init__(
        self,
        model: Model,
        config: TrainConfig,
        info: dist.DistInfo,
        device: torch.device,
        *,
        model_info: ModelInfo | None = None,
    ) -> None:
        self.model = model
        self.model_info = model_info if model_info is not None else model.info
        self.module = model.module
        self.config = config
        self.info = info
        self.device = device
        self.epochs: list[EpochMetrics] = []
        self.best: tuple[tuple[float, ...], int] | None = None  # (score, 1-based epoch)
        self.best_state: dict[str, Any] | None = None
        self.checkpoint: str | None = None
        self._wrapped: dict[bool, Any] = {}
        self._labels: tuple[str, ...] = ()
        self._confusion: list[float] = []  # the last epoch's validation confusion counts, summed over ranks

    def fit(self, split: DataSplit, on_epoch: EpochCallback | None = None) -> History:
        """Train for `config.epochs` epochs (from the resumed one) and return the history."""
        cfg = self.config
        train_loader, sampler = self._train_loader(split)
        val_loader = self._val_loader(split)
        self._labels = split.labels
        lr = cfg.learning_rate(pretrained=self.model.weights is not None)
        optimizer = make_optimizer(param_groups(self.module, cfg, lr, head=self.model.spec.head), cfg)
        scheduler = make_scheduler(optimizer, cfg.epochs * len(train_loader), cfg.warmup)
        channels_last = cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        normalizer = BatchNormalizer(self.model_info.preprocess, self.device, channels_last=channels_last)
        stepper = Stepper(
            self.module, optimizer, scheduler, normalizer, precision_for(self.device, cfg.amp), cfg.label_smoothing
        )
        start = self._resume(stepper, split.labels) if cfg.resume is not None else 0
        reporter = Reporter(enabled=self.info.is_main, progress=cfg.progress, log_dir=cfg.log_dir)
        stopped = False
        try:
            for epoch in range(start, cfg.epochs):
                sampler.set_epoch(epoch)
                metrics = self._epoch(epoch, stepper, train_loader, val_loader, reporter)
                reporter.end_epoch(metrics)
                self._after_epoch(metrics, stepper, split)
                if on_epoch is not None and self.info.is_main:
                    on_epoch(metrics)
                if self._should_stop():
                    stopped = epoch + 1 < cfg.epochs
                    break
        finally:
            reporter.close()
            for param in self.module.parameters():  # a frozen backbone is trainable again afterwards
                param.requires_grad_(True)
        self._restore_best()
        return self._history(stopped)

    def _epoch(
        self, epoch: int, stepper: Stepper, train_loader: Any, val_loader: Any, reporter: Reporter
    ) -> EpochMetrics:
        backbone = backbone_trainable(self.config, epoch)
        set_trainable(self.module, backbone, head=self.model.spec.head)
        stepper.forward = self._forward_module(backbone)
        reporter.start_epoch(epoch + 1, self.config.epochs, len(train_loader))
        train, seconds = stepper.train_epoch(train_loader, reporter)
        dist.broadcast_buffers(self.module, self.info)
        classes = len(self._labels)
        stepper.confusion = [0.0] * classes**2
        val = stepper.evaluate(self.module, val_loader, classes) if val_loader is not None else Sums()
        confusion = stepper.confusion if len(stepper.confusion) == classes**2 else [0.0] * classes**2
        totals = dist.all_reduce_sums(train.as_list() + val.as_list() + [seconds] + confusion, self.info, self.device)
        train, val = Sums(*totals[:5]), Sums(*totals[5:10])
        self._confusion = totals[11:]
        if train.count == 0:
            raise InputError(
                f"None of the training images could be read ({int(train.skipped)} skipped): check the files."
            )
        if train.skipped and epoch == 0:
            log.warning("skipped %d unreadable training images", int(train.skipped))
        has_val = val_loader is not None and val.count > 0
        lr = float(stepper.optimizer.param_groups[0]["lr"])
        return EpochMetrics(
            epoch=epoch + 1,
            train_loss=train.loss / train.count,
            train_top1=train.correct1 / train.count,
            val_loss=val.loss / val.count if has_val else None,
            val_top1=val.correct1 / val.count if has_val else None,
            val_top5=val.correct5 / val.count if has_val else None,
            lr=lr,
            images_per_s=train.count / max(totals[10] / self.info.world_size, 1e-9),
            seconds=totals[10] / self.info.world_size,
            skipped=int(train.skipped + val.skipped),
            phase="all" if backbone else "head",
        )

    def _forward_module(self, backbone: bool) -> Any:
        """The callable for training forwards: DDP-wrapped (one wrapper per phase) and compiled when asked."""
        if backbone not in self._wrapped:
            forward: Any = dist.wrap(self.module, self.info, self.device)
            if self.config.compile:
                import torch

                forward = torch.compile(forward)
            self._wrapped = {backbone: forward}
        return self._wrapped[backbone]

    def _after_epoch(self, metrics: EpochMetrics, stepper: Stepper, split: DataSplit) -> None:
        self.epochs.append(metrics)
        score = _score(self._monitor(), metrics)
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = (score, metrics.epoch)
            if self._monitor() != "epoch":  # the last epoch needs no copy to come back to
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}
            self._save_best(split)
            if metrics.val_loss is not None and self.info.is_main and self.config.out is not None:
                write_per_class(self.config.out, self._confusion_matrix(), split.labels, metrics.epoch)
        if self.info.is_main and self.config.out is not None:
            write_state(self.config.out / STATE_NAME, self._state(stepper, split, metrics.epoch))
            write_epoch_reports(self.config.out, self._history(False), f"{self.model.name}: fine-tuning")
        dist.barrier(self.info)

    def _confusion_matrix(self) -> list[list[int]]:
        n = len(self._labels)
        return [[round(v) for v in self._confusion[i * n : (i + 1) * n]] for i in range(n)]

    def _save_best(self, split: DataSplit) -> None:
        if self.info.is_main and self.config.out is not None:
            trained = self.model_info.replace(training=summary(self, split, self._history(False)))
            self.checkpoint = str(save_model(self.model, self.config.out / BEST_NAME, info=trained))

    def _monitor(self) -> str:
        monitor = self.config.monitor
        if monitor.startswith("val") and (not self.epochs or self.epochs[-1].val_loss is None):
            return "epoch"  # no validation data: the last epoch is the one kept
        return monitor

    def _should_stop(self) -> bool:
        patience = self.config.patience
        if patience is None or self.best is None or self._monitor() == "epoch":
            return False
        return self.epochs[-1].epoch - self.best[1] >= patience

    def _restore_best(self) -> None:
        if self.best is not None and self.best_state is not None and self.best[1] != self.epochs[-1].epoch:
            log.info("restoring the weights of epoch %d, the best by %s", self.best[1], self._monitor())
            self.module.load_state_dict(self.best_state)

    def _history(self, stopped: bool) -> History:
        return History(
            epochs=tuple(self.epochs),
            monitor=self._monitor(),
            best_epoch=self.best[1] if self.best else None,
            stopped_early=stopped,
            checkpoint=self.checkpoint,
        )

    def _state(self, stepper: Stepper, split: DataSplit, epoch: int) -> dict[str, Any]:
        best_kept = self.best is not None and self.best[1] != epoch
        return {
            "model": self.module.state_dict(),
            "optimizer": stepper.optimizer.state_dict(),
            "scheduler": stepper.scheduler.state_dict(),
            "scaler": stepper.scaler.state_dict() if stepper.scaler is not None else None,
            "epoch": epoch,
            "global_step": stepper.global_step,
            "labels": list(split.labels),
            "strategy": self.config.strategy,
            "history": self._history(False).to_dict(),
            "best": {"score": list(self.best[0]), "epoch": self.best[1]} if self.best else None,
            "best_state": self.best_state if best_kept else None,
            "checkpoint": self.checkpoint,
        }

    def _resume(self, stepper: Stepper, labels: tuple[str, ...]) -> int:
        """Load a `last.pt`; returns the epoch to continue from."""
        assert self.config.resume is not None
        state = read_state(self.config.resume)
        check_labels(state, labels, str(self.config.resume))
        if state.get("strategy") != self.config.strategy:
            raise InputError(
                f"Cannot resume a {state.get('strategy')!r} run with strategy={self.config.strategy!r}: "
                f"use the same strategy."
            )
        self.module.load_state_dict(state["model"])
        stepper.optimizer.load_state_dict(state["optimizer"])
        stepper.scheduler.load_state_dict(state["scheduler"])
        if stepper.scaler is not None and state.get("scaler"):
            stepper.scaler.load_state_dict(state["scaler"])
        stepper.global_step = int(state.get("global_step", 0))
        history = History.from_dict(state.get("history", {}))
        self.epochs = list(history.epochs)
        best = state.get("best")
        self.best = (tuple(float(v) for v in best["score"]), int(best["epoch"])) if best else None
        self.best_state = state.get("best_state") or (self.module.state_dict() if self.best else None)
        if self.best_state is not None:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.best_state.items()}
        self.checkpoint = state.get("checkpoint")
        log.info("resuming from %s after epoch %d", self.config.resume, int(state["epoch"]))
        return int(state["epoch"])

    def _train_loader(self, split: DataSplit) -> tuple[Any, Any]:
        from torch.utils.data import DistributedSampler

        pre = self.model_info.preprocess
        transform = train_transform(pre, augment=self.config.augments) if pre is not None else None
        data = Samples(*split.train, transform, pre.channels if pre is not None else None)
        seed = self.config.seed if self.config.seed is not None else 0
        sampler: Any = DistributedSampler(data, self.info.world_size, self.info.rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        drop_last = len(sampler) > self.config.batch_size
        return self._loader(data, sampler, drop_last), sampler

    def _val_loader(self, split: DataSplit) -> Any:
        if split.val is None:
            return None
        pre = self.model_info.preprocess
        transform = eval_transform(pre) if pre is not None else None
        data = Samples(*split.val, transform, pre.channels if pre is not None else None)
        return self._loader(data, dist.ShardSampler(len(data), self.info), False)

    def _loader(self, data: Samples, sampler: Any, drop_last: bool) -> Any:
        from torch.utils.data import DataLoader

        workers = self.config.num_workers
        if workers is None:
            workers = min(4, (os.cpu_count() or 1) - 1) if self.device.type == "cuda" else 0
        return DataLoader(
            data,  # type: ignore[arg-type]
            batch_size=self.config.batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            drop_last=drop_last,
            persistent_workers=workers > 0,
        )


def _score(monitor: str, metrics: EpochMetrics) -> tuple[float, ...] | None:
    """Larger is better; accuracy ties are broken by the lower validation loss."""
    value = metrics.value(monitor)
    if value is None:
        return None
    if monitor == "val_top1":
        return (value, -(metrics.val_loss or 0.0))
    return (value,) if monitor == "epoch" else (-value,)


def summary(trainer: Trainer, split: DataSplit, history: History) -> dict[str, Any]:
    """The JSON-ready training summary stored in the model (and in its checkpoint's metadata)."""
    cfg = trainer.config
    best = history.best
    return {
        "epochs": len(history),
        "best_epoch": history.best_epoch,
        "monitor": history.monitor,
        "best_metric": best.value(history.monitor) if best else None,
        "metrics": best.to_dict() if best else None,
        "train_samples": len(split.train[1]),
        "val_samples": len(split.val[1]) if split.val else 0,
        "labels": list(split.labels),
        "strategy": cfg.strategy,
        "optimizer": cfg.optimizer,
        "lr": cfg.learning_rate(pretrained=trainer.model.weights is not None),
        "weight_decay": cfg.weight_decay,
        "label_smoothing": cfg.label_smoothing,
        "augment": cfg.augments,
        "batch_size": cfg.batch_size,
        "image_size": cfg.image_size,
        "seed": cfg.seed,
        "world_size": trainer.info.world_size,
        "stopped_early": history.stopped_early,
    }
