"""Fine-tuning strategies: which parameters train, in which optimizer groups, at which learning rate.

- `full`: everything at `lr`.
- `linear`: the head only (a linear probe); the backbone is frozen, its BatchNorm statistics too.
- `freeze_unfreeze`: the head alone for `freeze_epochs` epochs, then everything, the backbone at
  `lr * backbone_lr_scale`.

One optimizer holds every group from the start (a frozen parameter has no gradient, so the optimizer
skips it), so one scheduler and one optimizer state serve the whole run and resume in any phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.train.heads import HeadPaths, head_parameters

if TYPE_CHECKING:
    import torch

    from zoo.train.config import TrainConfig

__all__ = ["backbone_trainable", "param_groups", "set_trainable"]


def backbone_trainable(config: TrainConfig, epoch: int) -> bool:
    """Whether the backbone trains in `epoch` (0-based)."""
    if config.strategy == "linear":
        return False
    if config.strategy == "freeze_unfreeze":
        return epoch >= config.freeze_epochs
    return True


def param_groups(
    module: torch.nn.Module, config: TrainConfig, lr: float, *, head: HeadPaths = None
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: head and backbone, each split into decayed and not decayed.

    Biases and 1-D parameters (norm layers) get no weight decay. Each group carries a `name` and its
    `lr`; the backbone's are absent under `linear`. `head` is where the head sits (`ModelSpec.head`).
    """
    head_ids = {id(p) for _, p in head_parameters(module, head)}
    scale = config.backbone_lr_scale if config.strategy == "freeze_unfreeze" else 1.0
    buckets: dict[str, list[torch.nn.Parameter]] = {
        "head": [],
        "head_no_decay": [],
        "backbone": [],
        "backbone_no_decay": [],
    }
    for _, param in module.named_parameters():
        part = "head" if id(param) in head_ids else "backbone"
        if part == "backbone" and config.strategy == "linear":
            continue
        buckets[part + ("_no_decay" if param.ndim <= 1 else "")].append(param)
    groups = []
    for name, params in buckets.items():
        if params:
            decay = 0.0 if name.endswith("no_decay") else config.weight_decay
            group_lr = lr * (scale if name.startswith("backbone") else 1.0)
            groups.append({"params": params, "name": name, "lr": group_lr, "weight_decay": decay})
    return groups


def set_trainable(module: torch.nn.Module, backbone: bool, *, head: HeadPaths = None) -> None:
    """Put `module` in training mode with the head trainable and the backbone trainable or frozen.

    A frozen backbone also keeps its normalisation layers in eval mode, so their running statistics
    stay those of the pretrained weights. `head` is where the head sits (`ModelSpec.head`).
    """
    head_ids = {id(p) for _, p in head_parameters(module, head)}
    for param in module.parameters():
        param.requires_grad_(backbone or id(param) in head_ids)
    module.train()
    if not backbone:
        for layer in module.modules():
            params = list(layer.parameters(recurse=False))
            if _is_norm(layer) and not any(p.requires_grad for p in params):
                layer.eval()


def _is_norm(layer: torch.nn.Module) -> bool:
    import torch.nn as nn

    return isinstance(layer, nn.modules.batchnorm._BatchNorm)
