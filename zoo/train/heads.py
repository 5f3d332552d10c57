"""Find and replace the classification head of a classifier: where the model's spec declares it, else generically.

A plugin declares where its models keep their head (`ModelSpec.head`: a dotted module path, plus the paths
of auxiliary heads); a model that declares none gets the generic rule, its last `Linear` layer (or, with no
`Linear`, its last 1x1 `Conv2d`). zoo loads pretrained weights with their own head and then swaps the head
(and any auxiliary heads) for a freshly initialised one for a new label set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.errors import UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["Head", "HeadPaths", "find_head", "head_parameters", "num_outputs", "replace_head"]

#: Where a head sits, as `ModelSpec.head` declares it: a dotted path, several (the main head first, then
#: auxiliary heads replaced with it; an auxiliary one the built module lacks is skipped), or None (generic).
HeadPaths = str | Sequence[str] | None


@dataclass(frozen=True)
class Head:
    """Where a classifier's head sits and what it maps.

    Attributes:
        path: dotted module path, e.g. `fc`, `classifier.6`.
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


def find_head(module: torch.nn.Module, head: HeadPaths = None) -> Head:
    """The classification head of `module`.

    Args:
        module: the classifier.
        head: where it sits (`ModelSpec.head`). A path naming a `Sequential` means its last `Linear` (or
            1x1 `Conv2d`) child. None: the module's last `Linear` layer, else its last 1x1 `Conv2d`.

    Raises:
        UnsupportedError: the declared head is missing or is no `Linear` / 1x1 `Conv2d`, or, undeclared,
            the module has no such layer.
    """
    paths = (head,) if isinstance(head, str) else tuple(head or ())
    main, aux = (paths[0], paths[1:]) if paths else (None, ())
    if main is None:
        path = _last_layer(module)
        if path is None:
            raise UnsupportedError(
                f"Cannot find the classification head of {type(module).__name__}: it declares none (ModelSpec.head) "
                f"and has no Linear layer. Replace the head yourself, then fine-tune."
            )
    else:
        path = _declared_path(module, main)
    layer = module.get_submodule(path)
    found = tuple(p for p in aux if _is_head_layer(_get(module, p)))
    return Head(path, _in_features(layer), _out_features(layer), found)


def num_outputs(module: torch.nn.Module, head: HeadPaths = None) -> int | None:
    """Number of classes the module's head produces, or None when no head is found."""
    try:
        return find_head(module, head).out_features
    except UnsupportedError:
        return None


def replace_head(module: torch.nn.Module, num_classes: int, *, seed: int = 0, head: HeadPaths = None) -> Head:
    """Replace the head (and auxiliary heads) of `module` with new layers producing `num_classes`.

    The new layers are initialised from `seed`, so a replacement is repeatable; they take the old
    head's device and dtype. A root attribute `num_classes` (SqueezeNet keeps one) is updated.

    Args:
        module: the classifier.
        num_classes: classes the new head produces.
        seed: seeds the new layers.
        head: where the head sits (`ModelSpec.head`; see `find_head`).

    Returns:
        The new `Head`.
    """
    import torch

    if not isinstance(num_classes, int) or num_classes < 1:
        raise UnsupportedError(f"num_classes must be a positive integer, not {num_classes!r}.")
    found = find_head(module, head)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for path in found.paths:
            _set(module, path, _new_layer(module.get_submodule(path), num_classes))
    if isinstance(getattr(module, "num_classes", None), int):
        setattr(module, "num_classes", num_classes)  # noqa: B010 - a plain int attribute, not a submodule
    return Head(found.path, found.in_features, num_classes, found.aux_paths)


def head_parameters(module: torch.nn.Module, head: HeadPaths = None) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """`(name, parameter)` of the head and auxiliary heads of `module` (`head`: see `find_head`)."""
    found = find_head(module, head)
    for path in found.paths:
        for name, param in module.get_submodule(path).named_parameters():
            yield f"{path}.{name}", param


def _declared_path(module: torch.nn.Module, path: str) -> str:
    layer = _get(module, path)
    if _is_head_layer(layer):
        return path
    if layer is not None and _is_sequential(layer):
        for name, child in reversed(list(layer.named_children())):
            if _is_head_layer(child):
                return f"{path}.{name}"
    what = "has no such module" if layer is None else f"is a {type(layer).__name__}, not a Linear or 1x1 Conv2d"
    raise UnsupportedError(
        f"The declared classification head {path!r} of {type(module).__name__} {what}: fix ModelSpec.head."
    )


def _last_layer(module: torch.nn.Module) -> str | None:
    """The last `Linear` layer's path, else the last 1x1 `Conv2d`'s (a fully convolutional classifier)."""
    return _last_linear(module) or _last_conv_head(module)


def _last_conv_head(module: torch.nn.Module) -> str | None:
    import torch.nn as nn

    found = None
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d) and name and _is_head_layer(layer):
            found = name
    return found


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
