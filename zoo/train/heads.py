"""Find and replace the classification head of a classifier, by a per-family rule with a generic fallback.

torchvision cannot combine pretrained weights with a new `num_classes`; zoo loads the weights with
their own head and then swaps the head (and any auxiliary heads) for a freshly initialised one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.errors import UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["AUX_HEAD_PATHS", "HEAD_PATHS", "Head", "find_head", "head_parameters", "num_outputs", "replace_head"]

#: Where classifiers keep their head, tried in order. A path that names a `Sequential` means its last
#: `Linear` (or 1x1 `Conv2d`) child: `classifier` covers `classifier[-1]` (VGG, AlexNet, MobileNet,
#: EfficientNet, ConvNeXt, MaxViT, MNASNet), SqueezeNet's `classifier[1]` conv and DenseNet's plain
#: `classifier`; `fc` covers ResNet, RegNet, ShuffleNet, GoogLeNet and Inception; `heads.head` ViT;
#: `head` Swin and timm-style models.
HEAD_PATHS = ("fc", "classifier", "heads.head", "heads", "head", "last_linear", "output")
#: Auxiliary classifiers trained beside the main head (Inception v3, GoogLeNet); replaced with it.
AUX_HEAD_PATHS = ("AuxLogits.fc", "aux1.fc2", "aux2.fc2")


@dataclass(frozen=True)
class Head:
    """Where a classifier's head sits and what it maps.

    Attributes:
        path: dotted module path, e.g. `fc`, `classifier.6`, `heads.head`.
        in_features: features (or channels) the head receives.
        out_features: classes it produces.
        aux_paths: auxiliary heads replaced together with it.
    """

    path: str
    in_features: int
    out_features: int
    aux_paths: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """The main head's path followed by the auxiliary ones."""
        return (self.path, *self.aux_paths)


def find_head(module: torch.nn.Module) -> Head:
    """The classification head of `module`.

    Tries `HEAD_PATHS` in order, then falls back to the last `Linear` layer of the module.

    Raises:
        UnsupportedError: the module has no `Linear` (or 1x1 `Conv2d`) layer to act as a head.
    """
    path = _known_path(module) or _last_linear(module)
    if path is None:
        raise UnsupportedError(
            f"Cannot find the classification head of {type(module).__name__}: zoo looks for "
            f"{', '.join(HEAD_PATHS)} or a last Linear layer. Replace the head yourself, then fine-tune."
        )
    layer = module.get_submodule(path)
    aux = tuple(p for p in AUX_HEAD_PATHS if _is_head_layer(_get(module, p)))
    return Head(path, _in_features(layer), _out_features(layer), aux)


def num_outputs(module: torch.nn.Module) -> int | None:
    """Number of classes the module's head produces, or None when no head is found."""
    try:
        return find_head(module).out_features
    except UnsupportedError:
        return None


def replace_head(module: torch.nn.Module, num_classes: int, *, seed: int = 0) -> Head:
    """Replace the head (and auxiliary heads) of `module` with new layers producing `num_classes`.

    The new layers are initialised from `seed`, so a replacement is repeatable; they take the old
    head's device and dtype. A root attribute `num_classes` (SqueezeNet keeps one) is updated.

    Returns:
        The new `Head`.
    """
    import torch

    if not isinstance(num_classes, int) or num_classes < 1:
        raise UnsupportedError(f"num_classes must be a positive integer, not {num_classes!r}.")
    head = find_head(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for path in head.paths:
            _set(module, path, _new_layer(module.get_submodule(path), num_classes))
    if isinstance(getattr(module, "num_classes", None), int):
        setattr(module, "num_classes", num_classes)  # noqa: B010 - a plain int attribute, not a submodule
    return Head(head.path, head.in_features, num_classes, head.aux_paths)


def head_parameters(module: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """`(name, parameter)` of the head and auxiliary heads of `module`."""
    head = find_head(module)
    for path in head.paths:
        for name, param in module.get_submodule(path).named_parameters():
            yield f"{path}.{name}", param


def _known_path(module: torch.nn.Module) -> str | None:
    for path in HEAD_PATHS:
        layer = _get(module, path)
        if _is_head_layer(layer):
            return path
        if layer is not None and _is_sequential(layer):
            for name, child in reversed(list(layer.named_children())):
                if _is_head_layer(child):
                    return f"{path}.{name}"
    return None


def _last_linear(module: torch.nn.Module) -> str | None:
    import torch.nn as nn

    found = None
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear) and name:
            found = name
    return found


def _get(module: torch.nn.Module, path: str) -> torch.nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


def _set(module: torch.nn.Module, path: str, layer: torch.nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = module.get_submodule(parent_path) if parent_path else module
    setattr(parent, name, layer)


def _is_sequential(layer: object) -> bool:
    import torch.nn as nn

    return isinstance(layer, nn.Sequential)


def _is_head_layer(layer: object) -> bool:
    import torch.nn as nn

    if isinstance(layer, nn.Linear):
        return True
    return isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (1, 1) and layer.groups == 1


def _in_features(layer: torch.nn.Module) -> int:
    import torch.nn as nn

    return layer.in_features if isinstance(layer, nn.Linear) else int(layer.in_channels)  # type: ignore[arg-type]


def _out_features(layer: torch.nn.Module) -> int:
    import torch.nn as nn

    return layer.out_features if isinstance(layer, nn.Linear) else int(layer.out_channels)  # type: ignore[arg-type]


def _new_layer(old: torch.nn.Module, num_classes: int) -> torch.nn.Module:
    import torch.nn as nn

    weight = old.weight  # type: ignore[union-attr]
    factory = {"device": weight.device, "dtype": weight.dtype}
    bias = getattr(old, "bias", None) is not None
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=bias, **factory)
    conv = nn.Conv2d(old.in_channels, num_classes, kernel_size=1, bias=bias, **factory)  # type: ignore[arg-type]
    nn.init.normal_(conv.weight, mean=0.0, std=0.01)  # SqueezeNet's init of its final conv
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv
