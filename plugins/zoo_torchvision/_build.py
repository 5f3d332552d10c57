"""Building torchvision classifiers for zoo, and the state_dict hooks for upstream files whose keys differ.

Nothing here imports torch or torchvision at module import: the functions import them when called.
This module also imports nothing from its own package, so `scripts/gen_torchvision_catalog.py` can load it
by path while `catalog.json` is being (re)generated.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["KEY_HOOKS", "build", "chain_hooks", "densenet_legacy_keys", "drop_prefixes", "parameters_on_meta"]

StateDict = dict[str, Any]
#: The quantized engines torchvision's `quantize_model` configures.
QUANTIZED_ENGINES = ("fbgemm", "qnnpack")
StateDictHook = Callable[[StateDict], StateDict]
#: The module of torchvision's detection builders (the ones whose class predictor zoo can swap).
_DETECTION = "torchvision.models.detection"

#: torchvision's own pattern (`torchvision.models.densenet._load_state_dict`): the published DenseNet files
#: name `norm.1`, `relu.1`, `conv.1`, ... what the modules now call `norm1`, `relu1`, `conv1`, ...
_DENSENET_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def build(
    name: str, *, layout: str | None = None, quantize: bool = False, backend: str | None = None, **kwargs: Any
) -> torch.nn.Module:
    """Build torchvision model `name` without weights; zoo loads them afterwards.

    Under a meta default device (zoo builds there before assigning the weights), parameters are created
    on the meta device while plain tensors stay on the CPU: RegNet's builders compute their stage widths
    with tensor ops and `.tolist()`, which fail on the meta device.

    Backbone weights are never fetched (`weights_backbone=None`): zoo loads whole-model files only.

    Args:
        name: the torchvision builder name, e.g. `resnet18`.
        layout: a weights tag of the model (`COCO_V1`): build the module exactly as torchvision's builder does
            for those weights (a detector then has frozen batch norm, with the eps those weights need) but
            load nothing. None builds the randomly initialised layout (`weights=None`).
        quantize: build the quantized model (`torchvision.models.quantization`), on the CPU (also under a meta
            default device): it sets `torch.backends.quantized.engine` to `backend` for the process (the engine
            the packed weights and the quantized kernels must agree on), as torchvision's `quantize_model` does.
        backend: the quantized engine, `fbgemm` (x86) or `qnnpack` (ARM), the two torchvision's quantization
            configures; default `fbgemm` where this PyTorch has it, else `qnnpack`.
        **kwargs: builder arguments (a weights tag's `builder_kwargs` plus the user's).
    """
    import torch
    from torchvision.models import get_model, get_model_builder, get_model_weights

    engine = None
    if quantize:
        engine = _quantized_engine(backend)
        kwargs.update(quantize=True, backend=engine)
    if "weights_backbone" in inspect.signature(get_model_builder(name)).parameters:
        kwargs.setdefault("weights_backbone", None)
    weights = None
    if layout is not None:
        weights = _weights_member(get_model_weights(name), layout, name)
    classes = _other_class_count(name, weights, kwargs)
    with contextlib.ExitStack() as stack:
        if engine is not None:  # int8 modules live on the CPU only, and their builder calibrates with a forward
            stack.enter_context(torch.device("cpu"))
        elif torch.get_default_device().type == "meta":
            stack.enter_context(parameters_on_meta())
        if weights is not None:
            stack.enter_context(_loading_nothing())
        module = get_model(name, weights=weights, **kwargs)
        if classes is not None:  # a fine-tuned detector: the pretrained layout with its own class predictor
            from zoo.ext import replace_box_predictor

            replace_box_predictor(module, classes)
        return module


def _other_class_count(name: str, weights: Any, kwargs: dict[str, Any]) -> int | None:
    """The `num_classes` of a detector built in a weights layout with another class count (popped from `kwargs`:
    torchvision's builders refuse it with weights), or None."""
    from torchvision.models import get_model_builder

    classes = kwargs.get("num_classes")
    if weights is None or classes is None or not get_model_builder(name).__module__.startswith(_DETECTION):
        return None
    if classes == len(weights.meta.get("categories") or ()):
        return None
    return int(kwargs.pop("num_classes"))


def _weights_member(enum: Any, tag: str, name: str) -> Any:
    """The member `tag` of a weights enum; an `InputError` for a tag it lacks (a file's `layout` is data)."""
    from zoo import InputError

    try:
        return enum[tag]
    except KeyError:
        raise InputError(
            f"{name} has no weights layout {tag!r}: use one of {', '.join(m.name for m in enum)}."
        ) from None


def _quantized_engine(backend: str | None) -> str:
    """Set `torch.backends.quantized.engine` to `backend` (default fbgemm, else qnnpack) and return it.

    Raises:
        UnsupportedError: not an engine torchvision configures, or this PyTorch build lacks it.
    """
    import torch

    from zoo import UnsupportedError

    engines = torch.backends.quantized.supported_engines
    engine = backend or ("fbgemm" if "fbgemm" in engines else "qnnpack")
    if engine not in QUANTIZED_ENGINES:
        raise UnsupportedError(f"torchvision quantizes for {' or '.join(QUANTIZED_ENGINES)}, not {engine!r}.")
    if engine not in engines:
        raise UnsupportedError(f"This PyTorch has no quantized engine {engine!r} (it has {', '.join(engines)}).")
    torch.backends.quantized.engine = engine
    return engine


@contextlib.contextmanager
def _loading_nothing() -> Iterator[None]:
    """torchvision builders called with weights, fetching and loading nothing (zoo loads the file afterwards)."""
    from torch import nn
    from torchvision.models import _api

    fetch, load = _api.WeightsEnum.get_state_dict, nn.Module.load_state_dict
    marker: dict[str, Any] = {}

    def skip_load(self: nn.Module, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        return None if state_dict is marker else load(self, state_dict, *args, **kwargs)

    _api.WeightsEnum.get_state_dict = lambda self, *args, **kwargs: marker  # type: ignore[method-assign]
    nn.Module.load_state_dict = skip_load  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        _api.WeightsEnum.get_state_dict = fetch  # type: ignore[method-assign]
        nn.Module.load_state_dict = load  # type: ignore[method-assign]


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create module parameters on the meta device, skipping their random init; other tensors go to the CPU.

    Parameters are what make a large model expensive to initialise; buffers are small, and keeping them
    real means non-persistent ones (absent from any state_dict) keep correct values. This patches
    `torch.nn.Module.register_parameter` and the `torch.nn.init` initialisers (which become no-ops on meta
    tensors) for the duration, so do not build other modules in other threads meanwhile.
    """
    import torch
    from torch import nn

    original = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    from torchvision.models.detection import _utils as detection_utils

    initialisers = {name: fn for name, fn in vars(nn.init).items() if name.endswith("_") and callable(fn)}
    out_channels = detection_utils.retrieve_out_channels
    nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign]
    for name, fn in initialisers.items():
        setattr(nn.init, name, _skip_on_meta(fn))
    detection_utils.retrieve_out_channels = partial(_out_channels_on_meta, out_channels)
    try:
        with torch.device("cpu"):
            yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
        for name, fn in initialisers.items():
            setattr(nn.init, name, fn)
        detection_utils.retrieve_out_channels = out_channels


def _out_channels_on_meta(original: Callable[..., Any], model: Any, size: tuple[int, int]) -> list[int]:
    """SSD's `retrieve_out_channels` (a forward pass measuring the backbone), run on a copy wholly on meta.

    Its parameters are on the meta device but its buffers on the CPU, which a forward cannot mix.
    """
    import copy

    return original(copy.deepcopy(model).to("meta"), size)


def _skip_on_meta(init: Callable[..., Any]) -> Callable[..., Any]:
    """`init`, made a no-op on meta tensors (their values are never read: the weights replace them)."""

    def skip(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor if getattr(tensor, "is_meta", False) else init(tensor, *args, **kwargs)

    return skip


def densenet_legacy_keys(state: Mapping[str, Any]) -> StateDict:
    """Rename the legacy DenseNet keys of torchvision's published files (`...norm.1.weight` -> `...norm1.weight`).

    The same renaming torchvision's `densenet._load_state_dict` applies before loading; other keys pass.
    """
    out: StateDict = {}
    for key, value in state.items():
        match = _DENSENET_LEGACY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def drop_prefixes(state: Mapping[str, Any], *, prefixes: Sequence[str]) -> StateDict:
    """Drop the keys under `prefixes`: heads the file holds but the built module does not (GoogLeNet's aux1/aux2).

    Args:
        state: the upstream state_dict.
        prefixes: key prefixes, each ending with ".".
    """
    starts = tuple(prefixes)
    return {key: value for key, value in state.items() if not key.startswith(starts)}


def chain_hooks(state: Mapping[str, Any], *, hooks: Sequence[StateDictHook]) -> StateDict:
    """Apply `hooks` in order."""
    out = dict(state)
    for hook in hooks:
        out = hook(out)
    return out


#: Hooks for families whose builders rewrite the upstream keys in code before loading (the catalog marks
#: such weights with `"renames_keys": true`; a test checks that each has a hook here).
KEY_HOOKS: dict[str, StateDictHook] = {"densenet": densenet_legacy_keys}
