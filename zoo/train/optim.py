"""Optimizer (AdamW, or SGD with Nesterov momentum) and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from zoo.train.config import TrainConfig

__all__ = ["MIN_LR_RATIO", "make_optimizer", "make_scheduler", "warmup_cosine"]

#: The schedule ends at this fraction of the peak learning rate.
MIN_LR_RATIO = 0.01


def make_optimizer(groups: Sequence[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD over the parameter groups (each group carries its own lr and weight decay)."""
    import torch

    if config.optimizer == "sgd":
        return torch.optim.SGD(list(groups), lr=groups[0]["lr"], momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.AdamW(list(groups), lr=groups[0]["lr"])


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Multiplier of the peak lr at `step`: linear warmup over `warmup` steps, then cosine to `MIN_LR_RATIO`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float) -> Any:
    """A `LambdaLR` stepped once per optimizer step over `total_steps`, `warmup` of them warming up."""
    from functools import partial

    import torch

    warmup_steps = int(round(warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, total=total_steps, warmup=warmup_steps))
