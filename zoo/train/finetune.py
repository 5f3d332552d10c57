"""`finetune`: train a loaded classifier on new data and return it with its history (the public entry)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError
from zoo.train.config import TrainConfig
from zoo.train.history import EpochMetrics

if TYPE_CHECKING:
    import torch

    from zoo.model import Model
    from zoo.train.data import DataSplit
    from zoo.train.trainer import Trainer

__all__ = ["finetune"]

log = logging.getLogger(__name__)


def finetune(
    model: Model,
    train: Any,
    val: Any = None,
    *,
    epochs: int = 3,
    lr: float | None = None,
    batch_size: int = 32,
    strategy: str = "full",
    labels: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    **options: Any,
) -> Model:
    """Fine-tune `model` in place on `train` and return it, with `model.history` set.

    The head is replaced when the data has another number of classes. `model.info` is replaced once, when
    training ends, by a new `ModelInfo` whose `labels` are the data's class names and whose `training` is
    the run's summary (a `ModelInfo` held from before is left as it was). With validation data, the model
    ends with the weights of its best epoch. Launched by `torchrun --nproc_per_node N`, the same call trains
    data-parallel (DDP).

    Args:
        model: a loaded image classifier (`zoo.load(...)`).
        train: an ImageFolder directory (`root/<class>/<image>`; one holding `train/` and `val/` is
            split by them), a torch Dataset of `(image, label)` (torchvision datasets included), or
            `(x, y)` tensors / numpy arrays (images NCHW tensors or NHWC arrays, uint8 or float in [0, 1]).
        val: validation data of the same kinds, a fraction of `train` to hold out (e.g. 0.2), or None.
        epochs: epochs to run (in total, when resuming).
        lr: learning rate (None: 1e-3 AdamW; SGD 1e-2).
        batch_size: images per step and process.
        strategy: `full`, `linear` (head only) or `freeze_unfreeze`.
        labels: class names, when the data does not name its classes.
        device: move the model there first (None: where it is).
        on_epoch: called with each epoch's `EpochMetrics` (on rank 0).
        **options: any other `TrainConfig` field: `optimizer`, `weight_decay`, `warmup`,
            `label_smoothing`, `freeze_epochs`, `backbone_lr_scale`, `patience`, `monitor`, `amp`,
            `channels_last`, `compile`, `num_workers`, `seed`, `image_size`, `augment`, `val_split`,
            `out`, `resume`, `log_dir`, `progress`.

    Returns:
        The same `Model`, trained; chain `.save(path)` or `.predict(...)`.

    Raises:
        InputError: unusable data or options (empty folder, single class, label mismatch on resume).
        UnsupportedError: a model whose head cannot be found, or a task that is not classification.
    """
    from zoo.device import resolve_device
    from zoo.train import distributed as dist
    from zoo.train.data import load_data
    from zoo.train.trainer import Trainer, summary

    config = _config(epochs=epochs, lr=lr, batch_size=batch_size, strategy=strategy, **options)
    type(model.task).capabilities(model.spec.task).require("head", model.name)  # zoo's loop trains classifier heads
    _refuse_boxes(model, train)
    target = resolve_device(device) if device is not None else model.device
    with dist.session(target) as (info, target):
        split = load_data(train, val, labels=labels, val_split=config.val_split, seed=config.seed or 0)
        changes = _fit_model(model, split, config, target)
        try:
            if config.seed is not None:
                _seed(config.seed + info.rank)
            trainer = Trainer(model, config, info, target, model_info=model.info.replace(**changes))
            with _cudnn_benchmark(target):
                history = trainer.fit(split, on_epoch)
            model.module.eval()
            model.history = history
            changes["training"] = summary(trainer, split, history)
        finally:  # once, trained or not: the info follows the head `_fit_model` gave the module
            model.replace_info(**changes)
        _final_checkpoint(trainer, split)
    return model


def _refuse_boxes(model: Model, train: Any) -> None:
    """A classifier given detection data (a COCO .json file, a YOLO folder): say which models train on boxes."""
    from zoo.train.detection_data import is_detection_path

    if is_detection_path(train):
        raise UnsupportedError(
            f"{train} holds boxes (COCO json or YOLO labels) and {model.name} ({model.spec.task}) does not detect: "
            "fine-tune a detector on it (zoo list --task object-detection)."
        )


def _config(**options: Any) -> TrainConfig:
    unknown = sorted(set(options) - set(TrainConfig.names()))
    if unknown:
        raise InputError(f"finetune() got unknown options {unknown}; known: {', '.join(TrainConfig.names())}.")
    return TrainConfig(**options)


def _fit_model(model: Model, split: DataSplit, config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Give the module a head for the data's labels, and move it; returns the `ModelInfo` changes that go with it.

    Everything is checked before the module changes.
    """
    from zoo.train.augment import adapted_preprocess
    from zoo.train.heads import num_outputs, replace_head

    count = len(split.labels)
    outputs = num_outputs(model.module, model.spec.head)
    if outputs is None:
        raise UnsupportedError(f"Cannot find the head of {model.name} to give it {count} classes.")
    changes: dict[str, Any] = {"labels": split.labels}
    if config.image_size is not None:
        if model.preprocess is None:
            raise InputError(f"image_size= needs an image model; {model.name} has no image preprocessing.")
        changes["preprocess"] = adapted_preprocess(model.preprocess, config.image_size)
    elif model.preprocess is None and any(_is_folder(part) for part in (split.train, split.val) if part):
        raise UnsupportedError(f"{model.name} has no image preprocessing: pass tensors, not image folders.")
    if outputs != count:
        log.info("replacing the %d-class head of %s with a %d-class one", outputs, model.name, count)
        replace_head(model.module, count, seed=config.seed or 0, head=model.spec.head)
        changes["builder_kwargs"] = {**model.builder_kwargs, "num_classes": count}
    model.to(device)
    if device.type == "cuda" and config.channels_last is not False:
        import torch

        model.module.to(memory_format=torch.channels_last)
    return changes


def _is_folder(part: Any) -> bool:
    from zoo.train.data import FolderSource

    return isinstance(part[0], FolderSource)


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest kernels for the fixed training shapes, for the run only."""
    import torch

    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _seed(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _final_checkpoint(trainer: Trainer, split: DataSplit) -> None:
    """Rewrite `best.safetensors` with the final summary, so the file and the returned model agree."""
    from zoo.train import distributed as dist
    from zoo.train.state import BEST_NAME, save_model

    config = trainer.config
    if config.out is None or not trainer.epochs:
        return
    path = config.out / BEST_NAME
    if trainer.info.is_main:
        save_model(trainer.model, path)
    if trainer.model.history is not None:
        trainer.model.history = replace(trainer.model.history, checkpoint=str(path))
    dist.barrier(trainer.info)
