"""The named preprocessing pipelines of `ImagePreprocess.pipeline`: a model's original input code, reproduced exactly.

torchvision's pipeline (the default) runs in `zoo.images.preprocess_batch` on tensors. The others prepare
their input with PIL, as the original code does, so zoo's model input is the original's bit for bit:

- `face2paint` (bryandlee/animegan2-pytorch): crop the centre square of the image, resize it to the
  model's size with PIL (LANCZOS upstream), `to_tensor`, normalize (`x * 2 - 1` upstream, mean and
  std 0.5 here);
- `timm`: timm's own eval transform, `timm.data.create_transform` with the model's data config
  (`resolve_data_config` of its pretrained config: input size, interpolation, mean, std, crop_pct,
  crop_mode), so every crop mode timm has (center, squash, border) is timm's.

The set of pipelines is closed (`zoo.specs.PIPELINES`): a name read from a checkpoint selects one of
these functions, never other code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import UnsupportedError
from zoo.specs import ImagePreprocess

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["TIMM_HINT", "face2paint_transform", "pipeline_batch", "timm_data_config", "timm_transform"]

TIMM_HINT = 'pip install "zoo-sdk[timm]"'


def pipeline_batch(images: Sequence[torch.Tensor], spec: ImagePreprocess, device: torch.device) -> torch.Tensor:
    """Preprocess decoded CHW images with the spec's named pipeline into one float NCHW batch on `device`."""
    import torch

    transform = _TRANSFORMS[spec.pipeline](spec)
    return torch.stack([transform(to_pil(image)) for image in images]).to(device)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A decoded CHW image (uint8, or float in [0, 1]) as a PIL image (RGB, or L for one channel)."""
    from PIL import Image

    if image.is_floating_point():
        image = image.mul(255).round().clamp(0, 255).byte()
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0], "L") if array.shape[2] == 1 else Image.fromarray(array, "RGB")


def face2paint_transform(spec: ImagePreprocess) -> Callable[[Image.Image], torch.Tensor]:
    """face2paint's input: the centre square, resized to `spec.crop` with PIL, scaled to [0, 1], normalized."""
    from PIL import Image
    from torchvision.transforms.functional import normalize, to_tensor

    size = spec.crop if isinstance(spec.crop, int) else 0
    resample = getattr(Image.Resampling, spec.interpolation.upper().replace("-", "_"))

    def transform(image: Image.Image) -> torch.Tensor:
        w, h = image.size
        s = min(w, h)
        square = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
        return normalize(to_tensor(square.resize((size, size), resample)), list(spec.mean), list(spec.std))

    return transform


def timm_data_config(spec: ImagePreprocess) -> dict[str, Any]:
    """The timm data config (`input_size`, `interpolation`, `mean`, `std`, `crop_pct`, `crop_mode`) of `spec`."""
    height, width = spec.input_size or (224, 224)
    config: dict[str, Any] = {
        "input_size": (spec.channels, height, width),
        "interpolation": spec.interpolation,
        "mean": tuple(spec.mean),
        "std": tuple(spec.std),
        "crop_pct": spec.crop_pct,
        "crop_mode": spec.crop_mode or "center",
    }
    return config


def timm_transform(spec: ImagePreprocess) -> Callable[[Image.Image], torch.Tensor]:
    """timm's eval transform for `spec`, made by `timm.data.create_transform`.

    Raises:
        UnsupportedError: timm is not installed.
    """
    try:
        from timm.data import create_transform
    except ImportError:
        raise UnsupportedError(f"This model's preprocessing is timm's: {TIMM_HINT}.") from None
    config = timm_data_config(spec)
    return create_transform(
        input_size=config["input_size"],
        interpolation=config["interpolation"],
        mean=config["mean"],
        std=config["std"],
        crop_pct=config["crop_pct"],
        crop_mode=config["crop_mode"],
        is_training=False,
    )


_TRANSFORMS: dict[str, Callable[[ImagePreprocess], Callable[[Image.Image], torch.Tensor]]] = {
    "face2paint": face2paint_transform,
    "timm": timm_transform,
}
