"""`finetune_detection`: fine-tune a torchvision detector on a COCO-json or YOLO-format dataset.

torchvision's object detection fine-tuning recipe: the class predictor is replaced for the dataset's classes
(`zoo.train.detection_heads`), and the detector trains on its own losses (it resizes and normalises images
itself) on lists of images in [0, 1] with their boxes. Each epoch is recorded as classifiers' are
(`results.csv`, `curves.png`), validated by loss and COCO mAP through `zoo.evaluate` (faster-coco-eval), on a
validation dataset file or folder or on the images held out of the training data. The best epoch is kept and
written as `best.safetensors`, which reloads by path (`zoo.load("runs/x/best.safetensors")`) with the new class
names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, RandomWeightsWarning, UnsupportedError
from zoo.train.config import TrainConfig
from zoo.train.detection_data import DetectionData, DetectionSample, is_detection_path, read_detection
from zoo.train.history import EpochMetrics, History

if TYPE_CHECKING:
    import torch

    from zoo.model import Model

__all__ = ["DEFAULT_LR", "finetune_detection"]

log = logging.getLogger(__name__)

#: Default learning rates by optimizer: SGD's is the tutorial's (0.005, momentum 0.9, weight decay 5e-4).
DEFAULT_LR = {"adamw": 1e-4, "sgd": 5e-3}
SGD_WEIGHT_DECAY = 5e-4
#: `TrainConfig` options that mean nothing here yet: refused when set, so a run never silently ignores them.
NOT_YET = {"resume": None, "compile": False, "label_smoothing": 0.0, "log_dir": None}


def finetune_detection(
    model: Model,
    train: Any,
    val: Any = None,
    *,
    epochs: int = 3,
    lr: float | None = None,
    batch_size: int = 4,
    strategy: str = "full",
    labels: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    **options: Any,
) -> Model:
    """Fine-tune the detector `model` in place on boxes and return it, with `model.history` set.

    The class predictor is replaced when the dataset has another number of classes; the model's labels become
    `("__background__", *class names)`. With validation data the model ends with the weights of its best
    epoch (highest mAP, else lowest validation loss).

    Args:
        model: a loaded torchvision Faster R-CNN, RetinaNet, FCOS, SSD or SSDlite (`zoo.load(...)`).
        train: a COCO annotations `.json` file or a YOLO folder (`images/` and `labels/`, or their `train/`
            and `val/` subfolders; class names from `data.yaml` or `classes.txt`).
        val: validation data of the same kinds, a fraction of `train` to hold out (e.g. 0.2), or None (a YOLO
            folder's `val/` subfolders when it has them).
        epochs: epochs to run.
        lr: learning rate (None: 1e-4 AdamW; SGD 5e-3).
        batch_size: images per step.
        strategy: `full` (what the detector's builder leaves trainable), `linear` (the class predictor only)
            or `freeze_unfreeze` (the predictor for `freeze_epochs` epochs, then the rest).
        labels: class names for a YOLO folder that does not name its classes.
        device: move the model there first (None: where it is).
        on_epoch: called with each epoch's `EpochMetrics`.
        **options: `optimizer`, `weight_decay`, `momentum`, `warmup`, `freeze_epochs`, `patience`, `amp`,
            `num_workers`, `seed`, `image_size` (the detector's resize: shorter and longer side), `augment`
            (random horizontal flips), `val_split`, `out`, `progress`, and the other `TrainConfig` fields.

    Raises:
        InputError: unusable data (a missing image, a box outside its image or of zero area, a class id out of
            range, no image or box) or options; nothing is written then.
        UnsupportedError: a model that is not a detector zoo fine-tunes, or an option detection does not take.
    """
    from zoo.device import resolve_device
    from zoo.train.detection_heads import box_classes

    config = _config(epochs=epochs, lr=lr, batch_size=batch_size, strategy=strategy, **options)
    current = box_classes(model.module)  # refuses a model that is not a detector zoo can fine-tune
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UnsupportedError("Detection fine-tuning runs on one process: launch it without torchrun.")
    train_data, val_data, val_source = _datasets(train, val, labels, config)
    target = resolve_device(device) if device is not None else model.device
    changes = _fit_detector(model, train_data, config, current)
    model.replace_info(**changes)  # the module has its new predictor: predict (and mAP) name the new classes
    model.to(target)
    if config.seed is not None:
        from zoo.train.finetune import _seed

        _seed(config.seed)
    run = _Run(model, config, target, train_data, val_data, val_source)
    history = run.fit(on_epoch)
    model.module.eval()
    model.history = history
    model.replace_info(training=run.summary(history))
    if config.out is not None and run.epochs:
        from zoo.train.state import BEST_NAME, save_model

        path = save_model(model, config.out / BEST_NAME)  # the final summary, as the returned model has it
        model.history = replace(history, checkpoint=str(path))
    return model


def _config(**options: Any) -> TrainConfig:
    unknown = sorted(set(options) - set(TrainConfig.names()))
    if unknown:
        raise InputError(f"finetune() got unknown options {unknown}; known: {', '.join(TrainConfig.names())}.")
    config = TrainConfig(**options)
    for name, default in NOT_YET.items():
        if getattr(config, name) != default:
            raise UnsupportedError(f"{name}= is not supported by detection fine-tuning yet: leave it out.")
    return config


def _datasets(
    train: Any, val: Any, names: Sequence[str] | None, config: TrainConfig
) -> tuple[DetectionData, DetectionData | None, Path | None]:
    """(train, val, the validation file or folder mAP is measured on), all read and checked before training."""
    if not is_detection_path(train):
        raise InputError(
            f"Detection fine-tuning reads a COCO annotations .json file or a YOLO folder (images/ and labels/), "
            f"not {train!r}."
        )
    data = read_detection(train, names=names, split="train")
    fraction = val if isinstance(val, float) else config.val_split if val is None else None
    if fraction is not None:
        if not 0 < fraction < 1:
            raise InputError(f"val={fraction}: hold out a fraction in (0, 1).")
        held_train, held_val = data.split(fraction, config.seed or 0)
        return held_train, held_val, None
    root = Path(train).expanduser()
    if val is None and root.is_dir() and (root / "images" / "val").is_dir() and (root / "labels" / "val").is_dir():
        val = root
    if val is None:
        return data, None, None
    checked = read_detection(val, names=names or data.names, split="val")
    if checked.names != data.names:
        raise InputError(
            f"The validation data's classes ({', '.join(checked.names)}) differ from the training data's "
            f"({', '.join(data.names)}): use one class list for both."
        )
    return data, checked, Path(val).expanduser()


def _fit_detector(model: Model, data: DetectionData, config: TrainConfig, current: int) -> dict[str, Any]:
    """Give the detector a class predictor for the data (and the resize `image_size` asks for); returns the
    `ModelInfo` changes that go with it."""
    from torchvision.models.detection.ssd import SSD

    from zoo.train.detection_heads import replace_box_predictor

    count = len(data.labels)
    kwargs = dict(model.builder_kwargs)
    if config.image_size is not None:
        if isinstance(model.module, SSD):
            raise UnsupportedError(f"{model.name} detects at a fixed size: leave image_size out.")
        transform: Any = model.module.transform
        transform.min_size, transform.max_size = (config.image_size,), config.image_size
        kwargs |= {"min_size": config.image_size, "max_size": config.image_size}
    if current != count:
        log.info("replacing the %d-class predictor of %s with a %d-class one", current, model.name, count)
        replace_box_predictor(model.module, count, seed=config.seed or 0)
        kwargs["num_classes"] = count
    return {"labels": data.labels, "builder_kwargs": kwargs}


class _Samples:
    """The dataset's images (decoded upright, RGB, float in [0, 1]) with their training targets."""

    def __init__(self, samples: Sequence[DetectionSample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        import torch
        from torchvision.transforms.functional import convert_image_dtype

        from zoo.images import ImageItem, decode

        sample = self.samples[index]
        image = decode(ImageItem(sample.path, str(sample.path)), 3)
        if (image.shape[2], image.shape[1]) != sample.size:
            raise InputError(
                f"{sample.path} is {image.shape[2]}x{image.shape[1]} but its annotations say {sample.size[0]}x"
                f"{sample.size[1]}: fix the width and height of the annotations."
            )
        return convert_image_dtype(image, torch.float), sample.target()


def _as_batch(items: list[Any]) -> tuple[list[Any], list[Any]]:
    return [image for image, _ in items], [target for _, target in items]


class _Run:
    """The epochs of one detection fine-tuning run."""

    def __init__(
        self,
        model: Model,
        config: TrainConfig,
        device: torch.device,
        train: DetectionData,
        val: DetectionData | None,
        val_source: Path | None,
    ) -> None:
        self.model, self.config, self.device = model, config, device
        self.train, self.val, self.val_source = train, val, val_source
        self.module = model.module
        self.epochs: list[EpochMetrics] = []
        self.best: tuple[tuple[float, ...], int] | None = None
        self.best_state: dict[str, Any] | None = None
        self.checkpoint: str | None = None
        self.monitor = "epoch"
        self.lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]

    def fit(self, on_epoch: Callable[[EpochMetrics], None] | None) -> History:
        import torch
        from torch.utils.data import DataLoader

        from zoo.train.optim import make_scheduler
        from zoo.train.progress import Reporter

        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed or 0)
        loader: Any = DataLoader(
            _Samples(self.train.samples),  # type: ignore[arg-type]
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=_as_batch,
            num_workers=cfg.num_workers or 0,
            drop_last=len(self.train.samples) > cfg.batch_size,  # batch norm needs more than one image per batch
        )
        trainable = {name: p.requires_grad for name, p in self.module.named_parameters()}
        optimizer = self._optimizer(trainable)
        scheduler = make_scheduler(optimizer, cfg.epochs * len(loader), cfg.warmup)
        reporter = Reporter(enabled=True, progress=cfg.progress, log_dir=None)
        flips = torch.Generator().manual_seed((cfg.seed or 0) + 1)
        stopped = False
        try:
            for epoch in range(cfg.epochs):
                self._set_trainable(trainable, epoch)
                reporter.start_epoch(epoch + 1, cfg.epochs, len(loader))
                metrics = self._epoch(epoch, loader, optimizer, scheduler, reporter, flips)
                reporter.end_epoch(metrics)
                self._after_epoch(metrics)
                if on_epoch is not None:
                    on_epoch(metrics)
                if self._should_stop():
                    stopped = epoch + 1 < cfg.epochs
                    break
        finally:
            reporter.close()
            for name, param in self.module.named_parameters():  # as the builder left them
                param.requires_grad_(trainable.get(name, True))
        if self.best is not None and self.best_state is not None and self.best[1] != self.epochs[-1].epoch:
            log.info("restoring the weights of epoch %d, the best by %s", self.best[1], self.monitor)
            self.module.load_state_dict(self.best_state)
        return self._history(stopped)

    def _optimizer(self, trainable: dict[str, bool]) -> torch.optim.Optimizer:
        import torch

        cfg = self.config
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, param in self.module.named_parameters():
            if trainable[name]:
                (no_decay if param.ndim <= 1 else decay).append(param)
        weight_decay = cfg.weight_decay if cfg.optimizer == "adamw" else SGD_WEIGHT_DECAY
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=cfg.momentum)
        return torch.optim.AdamW(groups, lr=self.lr)

    def _set_trainable(self, trainable: dict[str, bool], epoch: int) -> None:
        """The class predictor always trains; the rest as the builder left it unless the strategy freezes it."""
        from zoo.train.detection_heads import box_predictor
        from zoo.train.strategies import backbone_trainable

        predictor = {id(p) for p in box_predictor(self.module).parameters()}
        everything = backbone_trainable(self.config, epoch)
        for name, param in self.module.named_parameters():
            param.requires_grad_(id(param) in predictor or (everything and trainable[name]))
        self.module.train()
        if not everything:  # a frozen body keeps its normalisation statistics
            for layer in self.module.modules():
                if isinstance(layer, _norm_types()) and not any(p.requires_grad for p in layer.parameters()):
                    layer.eval()

    def _epoch(
        self, epoch: int, loader: Any, optimizer: Any, scheduler: Any, reporter: Any, flips: torch.Generator
    ) -> EpochMetrics:
        import torch

        loss_sum, count, start = 0.0, 0, time.perf_counter()
        for step, (images, targets) in enumerate(loader, 1):
            if self.config.augments:
                images, targets = _flip(images, targets, flips)
            images = [image.to(self.device) for image in images]
            targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
            with self._autocast():
                losses = self.module(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise InputError(f"The loss became {float(loss)} in epoch {epoch + 1}: lower the learning rate.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            count += len(images)
            loss_sum += float(loss.detach()) * len(images)
            reporter.step(epoch * len(loader) + step, float(loss.detach()), count / _since(start))
        train_seconds = _since(start)
        val_loss, val_map, val_map50 = self._validate() if self.val is not None else (None, None, None)
        return EpochMetrics(
            epoch=epoch + 1,
            train_loss=loss_sum / max(count, 1),
            train_top1=None,
            val_loss=val_loss,
            val_top1=None,
            val_top5=None,
            lr=float(optimizer.param_groups[0]["lr"]),
            images_per_s=count / train_seconds,
            seconds=_since(start),
            phase="all" if self._everything(epoch) else "head",
            val_map=val_map,
            val_map50=val_map50,
        )

    def _everything(self, epoch: int) -> bool:
        from zoo.train.strategies import backbone_trainable

        return backbone_trainable(self.config, epoch)

    def _autocast(self) -> Any:
        import torch

        from zoo.train.loop import precision_for

        precision = precision_for(self.device, self.config.amp)
        if precision.dtype is None or precision.scaler:  # fp16 without a scaler would underflow: float32 then
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=precision.dtype)

    def _validate(self) -> tuple[float, float | None, float | None]:
        """Validation loss (the detector's training losses, nothing updated) and mAP on the validation images."""
        import torch

        assert self.val is not None
        was = {m: m.training for m in self.module.modules()}
        self.module.train()
        for layer in self.module.modules():  # running statistics stay as trained
            if isinstance(layer, _norm_types()):
                layer.eval()
        total = 0.0
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(self.config.seed or 0)  # the detectors sample proposals and anchors at random
                samples = _Samples(self.val.samples)
                for index in range(len(samples)):
                    image, target = samples[index]
                    losses = self.module([image.to(self.device)], [{k: v.to(self.device) for k, v in target.items()}])
                    total += float(sum(losses.values()))
        finally:
            for layer, training in was.items():
                layer.train(training)
        val_loss = total / len(self.val.samples)
        return (val_loss, *self._map())

    def _map(self) -> tuple[float | None, float | None]:
        """mAP and mAP@.5 on the validation file or folder, or on the images held out of the training data."""
        from zoo.evaluate.detection import evaluate_boxes, evaluate_detection

        assert self.val is not None
        size = self.config.batch_size
        try:
            with warnings.catch_warnings():  # a model trained from random weights is being trained: no warning
                warnings.simplefilter("ignore", RandomWeightsWarning)
                if self.val_source is not None:
                    result = evaluate_detection(self.model, self.val_source, batch_size=size)
                else:
                    held = [(s.path, s.boxes, s.classes) for s in self.val.samples]
                    data = f"{self.val.source} ({len(held)} held out)"
                    result = evaluate_boxes(self.model, held, self.val.names, data=data, batch_size=size)
        except UnsupportedError as exc:  # faster-coco-eval missing: the run goes on by validation loss
            log.warning("no validation mAP: %s", exc)
            return None, None
        finally:
            self.module.train()
        return result.map, result.map50

    def _after_epoch(self, metrics: EpochMetrics) -> None:
        from zoo.train.reports import write_epoch_reports
        from zoo.train.state import BEST_NAME, save_model

        self.epochs.append(metrics)
        has_loss = metrics.val_loss is not None
        self.monitor = "val_map" if metrics.val_map is not None else "val_loss" if has_loss else "epoch"
        score = _score(self.monitor, metrics)
        if self.best is None or score > self.best[0]:
            self.best = (score, metrics.epoch)
            if self.monitor != "epoch":
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}
            if self.config.out is not None:
                info = self.model.info.replace(training=self.summary(self._history(False)))
                self.checkpoint = str(save_model(self.model, self.config.out / BEST_NAME, info=info))
        if self.config.out is not None:
            write_epoch_reports(self.config.out, self._history(False), f"{self.model.name}: detection fine-tuning")

    def _should_stop(self) -> bool:
        patience = self.config.patience
        if patience is None or self.best is None or self.monitor == "epoch":
            return False
        return self.epochs[-1].epoch - self.best[1] >= patience

    def _history(self, stopped: bool) -> History:
        return History(
            epochs=tuple(self.epochs),
            monitor=self.monitor,
            best_epoch=self.best[1] if self.best else None,
            stopped_early=stopped,
            checkpoint=self.checkpoint,
        )

    def summary(self, history: History) -> dict[str, Any]:
        """The JSON-ready training summary stored in the model and its checkpoint."""
        cfg, best = self.config, history.best
        return {
            "epochs": len(history),
            "best_epoch": history.best_epoch,
            "monitor": history.monitor,
            "best_metric": best.value(history.monitor) if best and history.monitor != "epoch" else None,
            "metrics": best.to_dict() if best else None,
            "train_samples": len(self.train.samples),
            "val_samples": len(self.val.samples) if self.val else 0,
            "labels": list(self.train.labels),
            "strategy": cfg.strategy,
            "optimizer": cfg.optimizer,
            "lr": self.lr,
            "batch_size": cfg.batch_size,
            "image_size": cfg.image_size,
            "seed": cfg.seed,
            "world_size": 1,
            "stopped_early": history.stopped_early,
        }


def _score(monitor: str, metrics: EpochMetrics) -> tuple[float, ...]:
    """Larger is better: mAP (ties broken by the lower validation loss), else the validation loss, else the epoch."""
    if monitor == "val_map":
        return (metrics.val_map or 0.0, -(metrics.val_loss or 0.0))
    if monitor == "val_loss":
        return (-(metrics.val_loss or 0.0),)
    return (float(metrics.epoch),)


def _norm_types() -> tuple[type, ...]:
    import torch
    from torchvision.ops.misc import FrozenBatchNorm2d

    return (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, FrozenBatchNorm2d)


def _flip(images: list[Any], targets: list[Any], generator: torch.Generator) -> tuple[list[Any], list[Any]]:
    """Each image and its boxes mirrored left-right with probability 1/2."""
    import torch

    out_images, out_targets = [], []
    for image, target in zip(images, targets):
        if bool(torch.rand((), generator=generator) < 0.5):
            width = image.shape[-1]
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
            image, target = image.flip(-1), {**target, "boxes": boxes}
        out_images.append(image)
        out_targets.append(target)
    return out_images, out_targets


def _since(start: float) -> float:
    return max(time.perf_counter() - start, 1e-9)
