"""The public facades: `load`, `fetch`, `list_models`, `info`, `register`, `plugins`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zoo.arguments import refuse_caller_only
from zoo.errors import InputError, UnsupportedError
from zoo.names import is_path
from zoo.plugin import Plugin
from zoo.registry import USER_PLUGIN, PluginInfo, get_registry
from zoo.specs import ImagePreprocess, ModelSpec, Weights

if TYPE_CHECKING:
    import torch

    from zoo.checkpoint.metadata import CheckpointInfo
    from zoo.model import Model
    from zoo.store.http import Progress
    from zoo.tasks.base import TaskCapabilities

__all__ = ["capabilities", "checkpoint_info", "fetch", "info", "list_models", "load", "plugins", "register"]

F = TypeVar("F", bound=Callable[..., Any])


def load(
    name: str | os.PathLike[str],
    *,
    device: str | torch.device | None = "auto",
    verify: bool | None = None,
    **kwargs: Any,
) -> Model:
    """Load a model by name, with its pretrained weights, on the best available device.

    Args:
        name: `resnet18`, `resnet18:IMAGENET1K_V1` (a weights tag, case-insensitive), `resnet18:none`
            (random init), `torchvision/resnet18` (qualified), a scheme name a plugin resolves, or the
            path (`str` or `os.PathLike`) of a checkpoint written by `Model.save` (`lenet5.safetensors`,
            `runs/lenet5/`): an existing file or folder wins over a model name.
        device: "auto" (cuda > mps > cpu, `ZOO_DEVICE` first), "cpu", "cuda:1", ...
        verify: hash the cached weights file again and compare it with the hash recorded when it entered
            the cache, so a bit flip at rest is noticed (the file is then quarantined and fetched again,
            once). None follows `ZOO_VERIFY` (default off). `model.weights_sha256` is then the hash just
            computed; otherwise it is the one zoo computed and checked when the file entered the cache.
        **kwargs: builder arguments, e.g. `num_classes=10` for a random-init model. Arguments that choose
            code, trust or a source (`trust=`, `repo=`, `model_class=`, ...) come only from here, never
            from a checkpoint or a config.json.

    Raises:
        UnknownModelError: unknown model or weights tag (with suggestions).
        OfflineError: the weights are not cached and `ZOO_OFFLINE=1`.
        InputError: a checkpoint whose metadata is damaged or names arguments its model does not take.
        ChecksumError: with `verify`, the weights still differ from their record after a new fetch.
    """
    if is_path(name):
        from zoo.export.runtime import is_exported, load_exported

        if is_exported(name):  # an exported .onnx / .pt2 graph with zoo's metadata
            return load_exported(name, device=device, **kwargs)
        from zoo.restore import load_checkpoint

        return load_checkpoint(name, device=device, **kwargs)
    spec, tag = get_registry().resolve(_text(name))
    return load_spec(spec, tag, device=device, verify=verify, **kwargs)


def load_spec(
    spec: ModelSpec,
    tag: str | None,
    *,
    device: str | torch.device | None = "auto",
    verify: bool | None = None,
    **kwargs: Any,
) -> Model:
    """Build `spec` with the weights `tag` (None: random init) into a `Model` (through `zoo.build.build_model`)."""
    from zoo.build import build_model
    from zoo.checkpoint import weights_entry
    from zoo.device import place_module, resolve_device
    from zoo.model import ModelInfo

    _check_requires(spec)
    resolve_device(device)  # an unavailable device fails before any download
    weights = spec.weights[tag] if tag is not None else None
    labels, kwargs = _label_kwargs(kwargs)
    builder_kwargs, new_classes = _builder_kwargs(spec, tag, weights, kwargs)
    info = ModelInfo.for_spec(spec, tag, builder_kwargs=builder_kwargs)
    info = info.replace(
        labels=labels if labels is not None else _labels(spec, tag, builder_kwargs),
        preprocess=_preprocess(info.preprocess, builder_kwargs),
    )
    if weights is None:
        model = build_model(spec, info=info, device=device)  # the request: a quantized model's auto is the CPU
    else:  # a cached file that fails to load and no longer matches its record is quarantined and refetched once
        from zoo import settings
        from zoo.store import get_store

        check = settings.verify() if verify is None else verify
        model = get_store().recovering(
            lambda: weights_entry(weights.artifact, hook=spec.state_dict_hook, verify=check),
            lambda e: build_model(spec, info=info.replace(weights_sha256=e.sha256), weights_file=e.path, device=device),
        )
    if (
        new_classes is not None
        and new_classes != builder_kwargs.get("num_classes")
        and not get_registry().task_capabilities(spec.task, spec.plugin).head
    ):
        raise UnsupportedError(
            f"{spec.name} is a {spec.task} model: its head is not a classifier's. Load '{spec.name}:none' with "
            f"num_classes={new_classes}, or fine-tune it on data with {new_classes} classes."
        )
    if new_classes is not None:  # pretrained weights, a new label set: keep the trunk, swap the head
        from zoo.train.heads import num_outputs, replace_head

        if num_outputs(model.module, spec.head) != new_classes:
            _check_float_head(spec, model.module, new_classes)
            replace_head(model.module, new_classes, head=spec.head)
            place_module(model.module, model.device)
        builder_kwargs = {**builder_kwargs, "num_classes": new_classes}
        model.replace_info(
            builder_kwargs=builder_kwargs, labels=labels if labels is not None else _labels(spec, tag, builder_kwargs)
        )
    return model


def _check_float_head(spec: ModelSpec, module: torch.nn.Module, new_classes: int) -> None:
    """Refuse a new head on a quantized (int8) model: a float head cannot take its int8 activations."""
    from zoo.checkpoint.quantized import is_quantized_module

    if is_quantized_module(module):
        raise UnsupportedError(
            f"{spec.name} is a quantized (int8) model: its head cannot be replaced for {new_classes} classes. "
            f"Fine-tune the float model and quantize it with torch.ao.quantization, or load '{spec.name}:none' with "
            f"num_classes={new_classes}."
        )


def _check_requires(spec: ModelSpec) -> None:
    """Raise before any download when a package the builder needs is not installed (found without importing it)."""
    import importlib.util

    for module, hint in spec.requires.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
            found = False
        if not found:
            raise UnsupportedError(f"{spec.name} needs the {module} package, which is not installed: {hint}.")


def _preprocess(preprocess: ImagePreprocess | None, kwargs: Mapping[str, Any]) -> ImagePreprocess | None:
    """The spec's preprocessing, its channels following an `in_channels` builder argument (1 or 3)."""
    channels = kwargs.get("in_channels")
    if preprocess is None or channels not in (1, 3) or channels == preprocess.channels:
        return preprocess
    mean, std = preprocess.mean, preprocess.std
    if channels == 1:  # RGB statistics averaged to one gray channel
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    elif len(mean) == 1:
        mean, std = mean * 3, std * 3
    return replace(preprocess, mean=mean, std=std, channels=channels)


def _label_kwargs(kwargs: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, dict[str, Any]]:
    """Split `labels=` off the builder arguments; it sets `num_classes` when that is not given."""
    rest = dict(kwargs)
    labels = rest.pop("labels", None)
    if labels is None:
        return None, rest
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
        raise InputError(f"labels= must be a list of class names, not {type(labels).__name__}: pass labels=[...].")
    labels = tuple(str(label) for label in labels)
    num_classes = rest.setdefault("num_classes", len(labels))
    if not labels or num_classes != len(labels):
        raise InputError(f"labels= names {len(labels)} classes but num_classes={num_classes}: pass matching values.")
    return labels, rest


def _builder_kwargs(
    spec: ModelSpec, tag: str | None, weights: Weights | None, kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], int | None]:
    """The builder's arguments, and the class count of a new head for pretrained weights (None: keep theirs).

    Pretrained weights are always built with their own `num_classes`; a different one asked for
    becomes a new head once they are loaded.
    """
    fixed = dict(weights.builder_kwargs) if weights is not None else {}
    refuse_caller_only(spec, fixed, source=f"the {spec.name}:{tag} weights")  # e.g. read from a Hub config.json
    rest = dict(kwargs)
    new_classes = rest.pop("num_classes", None) if weights is not None else None
    for key, value in rest.items():
        if key in fixed and fixed[key] != value:
            raise UnsupportedError(
                f"{spec.name}:{tag} weights need {key}={fixed[key]!r}, not {value!r}: load '{spec.name}:none' "
                f"for random init with {key}={value!r}."
            )
    return {**fixed, **rest}, new_classes


def _labels(spec: ModelSpec, tag: str | None, kwargs: Mapping[str, Any]) -> tuple[str, ...] | None:
    labels = spec.labels_for(tag)
    num_classes = kwargs.get("num_classes")
    if labels is not None and isinstance(num_classes, int) and num_classes != len(labels):
        return None  # a new label set: results show class indices until labels are given
    return labels


def fetch(name: str | os.PathLike[str], *, progress: Progress | None = None) -> Path:
    """Download (or find) and cache the weights of a model; returns the cached safetensors file.

    For the path of a checkpoint written by `Model.save`, its safetensors file (nothing is downloaded).

    Raises:
        UnsupportedError: the model has no pretrained weights (e.g. `name:none`).
    """
    from zoo.checkpoint import weights_entry

    if is_path(name):
        from zoo.checkpoint import read_info

        return read_info(name)[0]
    spec, tag = get_registry().resolve(_text(name))
    if tag is None:
        raise UnsupportedError(f"{name!r} has no pretrained weights to fetch: see `zoo info {spec.name}` for its tags.")
    return weights_entry(spec.weights[tag].artifact, hook=spec.state_dict_hook, progress=progress).path


def list_models(pattern: str | None = None, *, task: str | None = None, plugin: str | None = None) -> list[str]:
    """Names of the available models, sorted; `pattern` is an fnmatch pattern such as `resnet*`.

    A name that several plugins declare is listed once per plugin, qualified (`plugin/name`).
    Never imports torch.
    """
    registry = get_registry()
    specs = registry.specs(pattern, task=task, plugin=plugin)
    counts: dict[str, int] = {}
    for spec in registry.specs():
        counts[spec.name] = counts.get(spec.name, 0) + 1
    return [spec.qualified_name if counts[spec.name] > 1 else spec.name for spec in specs]


def info(name: str | os.PathLike[str]) -> ModelSpec:
    """The `ModelSpec` of a model name (a weights tag may be given, and must exist). Never imports torch.

    For the path of a checkpoint, the spec of the model it holds (`checkpoint_info` says what the file records).
    """
    if is_path(name):
        from zoo.restore import checkpoint_spec

        path = Path(name).expanduser()
        return checkpoint_spec(checkpoint_info(path), path)
    spec, _ = get_registry().resolve(_text(name))
    return spec


def capabilities(name: str | os.PathLike[str]) -> TaskCapabilities:
    """What the task of model `name` can do (`predict`, `finetune`, `plot`, ...), without building it or
    fetching its weights. Never imports torch for zoo's own tasks.

    Raises:
        UnknownModelError: unknown model name.
        PluginError: no plugin implements the model's task.
    """
    spec = info(name)
    return get_registry().task_capabilities(spec.task, spec.plugin)


def checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """What a checkpoint written by `Model.save` records (model, plugin, labels, preprocessing, builder
    arguments, training summary), its builder arguments checked against the model's builder. Never imports torch.

    Raises:
        InputError: nothing at `path`, damaged metadata, or arguments the model's builder does not take from a file.
        UnsupportedError: not a safetensors checkpoint with zoo metadata.
        UnknownModelError: no loaded plugin declares the model it holds.
    """
    from zoo.arguments import file_kwargs
    from zoo.checkpoint.files import read_info
    from zoo.restore import checkpoint_spec

    source = Path(path).expanduser()
    _, found = read_info(source)
    file_kwargs(checkpoint_spec(found, source), found.builder_kwargs, source=source.name)
    return found


def _text(name: str | os.PathLike[str]) -> str:
    if not isinstance(name, str):
        raise InputError(f"A model name is a string, not a {type(name).__name__}: zoo.load('resnet18').")
    return name


def plugins() -> list[PluginInfo]:
    """Every discovered plugin with its status: loaded, failed (and why), disabled, clashing names."""
    registry = get_registry()
    return [registry.infos[key] for key in sorted(registry.infos)]


def register(
    name: str,
    *,
    task: str,
    labels: Sequence[str] | None = None,
    weights: Mapping[str, Weights] | None = None,
    default_weights: str | None = None,
    preprocess: ImagePreprocess | None = None,
    description: str | None = None,
    state_dict_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    caller_only: Sequence[str] = (),
    head: str | Sequence[str] | None = None,
    **meta: Any,
) -> Callable[[F], F]:
    """Decorator that registers an in-script model builder under `name` (plugin `user`).

    It declares the model exactly as `Plugin.model` does (same arguments, same spec), in the in-script
    plugin; registering a name again replaces the earlier builder. `caller_only` names builder parameters
    that choose code, trust or a source: zoo takes them only from a caller's keyword, never from a
    checkpoint (see `ModelSpec.caller_only`).

    Example:
        ```python
        @zoo.register("mynet", task="image-classification", labels=["cat", "dog"])
        def mynet(num_classes: int = 2):
            import torch.nn as nn
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

        zoo.load("mynet").predict(image)
        ```
    """

    def decorate(builder: F) -> F:
        scratch = Plugin(USER_PLUGIN)
        scratch.model(
            name,
            task=task,
            labels=labels,
            weights=weights,
            default_weights=default_weights,
            preprocess=preprocess,
            description=description,
            state_dict_hook=state_dict_hook,
            caller_only=caller_only,
            head=head,
            **meta,
        )(builder)
        (spec,) = scratch.specs.values()
        get_registry().add_spec(spec)
        return builder

    return decorate
