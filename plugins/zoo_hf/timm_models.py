"""timm models from the Hub (`hf:timm/resnet50.a1_in1k`): their config.json read into a builder's arguments,
preprocessing by timm's own data config and eval transform, and class labels."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo import ImagePreprocess, UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["TIMM_HINT", "TimmConfig", "build_timm", "is_timm_config", "parse_timm_config"]

TIMM_HINT = 'pip install "zoo-sdk[timm]"'


@dataclass(frozen=True)
class TimmConfig:
    """What a timm `config.json` says.

    Attributes:
        architecture: the timm model name (`resnet50`).
        num_classes: classes of the head.
        model_args: other arguments timm builds the model with.
        pretrained_cfg: timm's pretrained config (input size, crop, mean, std, labels, ...).
        labels: class labels when the config names them, else None.
    """

    architecture: str
    num_classes: int
    model_args: Mapping[str, Any] = field(default_factory=dict)
    pretrained_cfg: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None


def is_timm_config(config: Mapping[str, Any]) -> bool:
    """True for a config.json that timm wrote (`architecture`, with or without `pretrained_cfg`)."""
    return isinstance(config.get("architecture"), str) and "zoo" not in config


def parse_timm_config(config: Mapping[str, Any]) -> TimmConfig:
    """Read a timm config.json (current layout, or the older single-dict one)."""
    pretrained = dict(config.get("pretrained_cfg") or {k: v for k, v in config.items() if k != "architecture"})
    num_classes = int(config.get("num_classes", pretrained.get("num_classes", 1000)))
    return TimmConfig(
        architecture=str(config["architecture"]),
        num_classes=num_classes,
        model_args=dict(config.get("model_args") or {}),
        pretrained_cfg=pretrained,
        labels=_config_labels(config, pretrained, num_classes),
    )


def _config_labels(config: Mapping[str, Any], pretrained: Mapping[str, Any], count: int) -> tuple[str, ...] | None:
    """`label_names` (a list, or a dict by class index), described by `label_descriptions` where given."""
    names = config.get("label_names") or pretrained.get("label_names") or pretrained.get("labels")
    if isinstance(names, Mapping):
        names = [names[k] for k in sorted(names, key=int)]
    if not names or len(names) != count:
        return None
    described = config.get("label_descriptions") or pretrained.get("label_descriptions") or {}
    return tuple(str(described.get(name, name)) if isinstance(described, Mapping) else str(name) for name in names)


def require_timm() -> None:
    """Raise a clear error when timm is not installed."""
    if importlib.util.find_spec("timm") is None:
        raise UnsupportedError(f"hf: timm models need timm: {TIMM_HINT}.")


def timm_labels(parsed: TimmConfig) -> tuple[str, ...] | None:
    """The config's labels, else the ImageNet class names timm knows for a 1k/21k/11k-class head."""
    if parsed.labels is not None:
        return parsed.labels
    require_timm()
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset({**parsed.pretrained_cfg, "num_classes": parsed.num_classes})
    if subset is None:
        return None
    names = ImageNetInfo(subset).label_descriptions()
    return tuple(name.split(",")[0].strip() for name in names) if len(names) == parsed.num_classes else None


def timm_preprocess(pretrained_cfg: Mapping[str, Any], model_args: Mapping[str, Any] | None = None) -> ImagePreprocess:
    """timm's own data config (`timm.data.resolve_data_config`) as zoo preprocessing run by timm's transform.

    The spec names the `timm` pipeline: at predict time `timm.data.create_transform` builds the eval
    transform from it (`zoo.pipelines`), so every crop mode (center, squash, border), crop_pct and PIL
    interpolation is timm's own. `resize` records the size timm scales to before cropping, for display.
    """
    require_timm()
    from timm.data import resolve_data_config

    args = {"in_chans": model_args["in_chans"]} if model_args and model_args.get("in_chans") else {}
    config = resolve_data_config(args, pretrained_cfg=dict(pretrained_cfg) or {"input_size": (3, 224, 224)})
    channels, height, width = (int(v) for v in config["input_size"])
    crop_pct = float(config["crop_pct"])
    resize = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    return ImagePreprocess(
        resize=resize[0] if height == width and config["crop_mode"] == "center" else resize,
        crop=height if height == width else (height, width),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
        interpolation=str(config["interpolation"]),
        channels=1 if channels == 1 else 3,
        pipeline="timm",
        crop_pct=crop_pct,
        crop_mode=str(config["crop_mode"]),
    )


def build_timm(architecture: str = "", num_classes: int = 1000, **model_args: Any) -> torch.nn.Module:
    """A timm model (random init; zoo loads the weights), as timm's `create_model` builds it.

    Args:
        architecture: the timm model name.
        num_classes: classes of the head.
        **model_args: other arguments the model was saved with.
    """
    require_timm()
    if not architecture:
        raise UnsupportedError(
            "A timm model needs its architecture: load one by name, zoo.load('hf:timm/resnet18.a1_in1k')."
        )
    import timm

    return timm.create_model(architecture, pretrained=False, num_classes=num_classes, **model_args)
