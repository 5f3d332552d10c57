"""Training augmentation and evaluation transforms derived from a model's `ImagePreprocess`, on tensors.

Per-sample transforms (run in DataLoader workers) only crop, resize and flip uint8 CHW tensors; the batch
is converted to float and normalised on the training device (`BatchNormalizer`), so a GPU receives
4x fewer bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from zoo.specs import ImagePreprocess

if TYPE_CHECKING:
    import torch

__all__ = ["BatchNormalizer", "adapted_preprocess", "eval_transform", "train_transform"]

#: Area range of RandomResizedCrop: milder than ImageNet training's (0.08, 1), as fits fine-tuning.
CROP_SCALE = (0.35, 1.0)


def adapted_preprocess(pre: ImagePreprocess, image_size: int | None) -> ImagePreprocess:
    """`pre` with its crop set to `image_size` and its resize scaled alike (256/224 stays 256/224)."""
    if image_size is None:
        return pre
    resize: Any = image_size
    if isinstance(pre.resize, int) and isinstance(pre.crop, int) and pre.crop:
        resize = round(image_size * pre.resize / pre.crop)
    elif pre.resize is None:
        resize = None
    return replace(pre, resize=resize, crop=image_size)


def train_transform(pre: ImagePreprocess, *, augment: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random resized crop to the model's input size and a horizontal flip (the eval transform without `augment`)."""
    from torchvision.transforms import v2

    size = pre.input_size
    if not augment:
        return eval_transform(pre)
    steps: list[Any] = []
    if size is not None:
        steps.append(v2.RandomResizedCrop(list(size), scale=CROP_SCALE, interpolation=_mode(pre), antialias=True))
    steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


def eval_transform(pre: ImagePreprocess) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize and center-crop exactly as `Model.predict` does (`zoo.images.resize_crop`), so a validation
    score is the score the saved model gets through `predict` on the same images."""
    from functools import partial

    from zoo.images import resize_crop

    return partial(resize_crop, spec=pre)


def _mode(pre: ImagePreprocess) -> Any:
    from torchvision.transforms.v2 import InterpolationMode

    return InterpolationMode(pre.interpolation)


class BatchNormalizer:
    """Moves a batch to the device, scales uint8 to [0, 1], normalises, and sets the memory format.

    Args:
        pre: the model's preprocessing, or None for non-image inputs (only moved and cast to float).
        device: the training device.
        channels_last: NHWC memory format for 4-D batches.
    """

    def __init__(self, pre: ImagePreprocess | None, device: torch.device, *, channels_last: bool) -> None:
        import torch

        self.device = device
        self.channels_last = channels_last
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.pre = pre
        if pre is not None:
            self.mean = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
            self.std = torch.tensor(pre.std, device=device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        from zoo.images import normalize_batch

        x = x.to(self.device, non_blocking=True)
        if self.pre is not None and x.ndim == 4 and x.shape[1] == len(self.pre.mean):
            x = normalize_batch(x, self.pre)  # the very arithmetic of predict's preprocessing
        else:
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
            if self.mean is not None and self.std is not None:
                x = (x - self.mean) / self.std
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
