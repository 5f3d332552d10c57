"""The public facades: `load`, `fetch`, `list_models`, `info`, `register`, `plugins`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zoo.errors import InputError, UnsupportedError
from zoo.names import is_path
from zoo.plugin import _defaults, _first_line
from zoo.registry import USER_PLUGIN, PluginInfo, get_registry
from zoo.specs import ImagePreprocess, ModelSpec, Weights

if TYPE_CHECKING:
    import torch

    from zoo.model import Model
    from zoo.store.http import Progress

__all__ = ["fetch", "info", "list_models", "load", "plugins", "register"]

F = TypeVar("F", bound=Callable[..., Any])


def load(name: str, *, device: str | torch.device | None = "auto", **kwargs: Any) -> Model:
    """Load a model by name, with its pretrained weights, on the best available device.

    Args:
        name: `resnet18`, `resnet18:IMAGENET1K_V1` (a weights tag, case-insensitive), `resnet18:none`
            (random init), `torchvision/resnet18` (qualified), a scheme name a plugin resolves, or the
            path of a checkpoint written by `Model.save` (`./lenet5.safetensors`, `./runs/lenet5/`).
        device: "auto" (cuda > mps > cpu, `ZOO_DEVICE` first), "cpu", "cuda:1", ...
        **kwargs: builder arguments, e.g. `num_classes=10` for a random-init model.

    Raises:
        UnknownModelError: unknown model or weights tag (with suggestions).
        OfflineError: the weights are not cached and `ZOO_OFFLINE=1`.
    """
    if is_path(name):
        from zoo.checkpoint import load_checkpoint

        return load_checkpoint(name, device=device, **kwargs)
    spec, tag = get_registry().resolve(name)
    return load_spec(spec, tag, device=device, **kwargs)


def load_spec(spec: ModelSpec, tag: str | None, *, device: str | torch.device | None = "auto", **kwargs: Any) -> Model:
    """Build `spec` with the weights `tag` (None: random init) and wrap it in a `Model`."""
    from zoo.checkpoint import build_module, weights_entry
    from zoo.device import place_module, resolve_device
    from zoo.model import Model

    target = resolve_device(device)
    weights = spec.weights[tag] if tag is not None else None
    labels, kwargs = _label_kwargs(kwargs)
    builder_kwargs, new_classes = _builder_kwargs(spec, tag, weights, kwargs)
    if weights is None:
        entry, module = None, build_module(spec.builder, builder_kwargs, None)
    else:  # a cached file that fails to load and no longer matches its record is quarantined and refetched once
        from zoo.store import get_store

        entry, module = get_store().recovering(
            lambda: weights_entry(weights.artifact, hook=spec.state_dict_hook),
            lambda e: (e, build_module(spec.builder, builder_kwargs, e.path)),
        )
    if (
        new_classes is not None
        and new_classes != builder_kwargs.get("num_classes")
        and not spec.task.endswith("classification")
    ):
        raise UnsupportedError(
            f"{spec.name} is a {spec.task} model: its head is not a classifier's. Load '{spec.name}:none' with "
            f"num_classes={new_classes}, or fine-tune it on data with {new_classes} classes."
        )
    if new_classes is not None:  # pretrained weights, a new label set: keep the trunk, swap the head
        from zoo.train.heads import num_outputs, replace_head

        if num_outputs(module) != new_classes:
            replace_head(module, new_classes)
        builder_kwargs["num_classes"] = new_classes
    place_module(module, target)
    model = Model(
        module,
        spec,
        weights=tag,
        device=target,
        labels=labels if labels is not None else _labels(spec, tag, builder_kwargs),
        preprocess=_preprocess(spec.preprocess_for(tag), builder_kwargs),
        builder_kwargs=builder_kwargs,
        weights_sha256=entry.sha256 if entry else None,
    )
    # random unless weights were loaded, or the builder loads its own (spec.meta["weights_in_builder"])
    model.random_init = weights is None and not spec.meta.get("weights_in_builder")
    if weights is not None and weights.meta.get("training"):  # e.g. a fine-tuned checkpoint from the Hub
        model.training_summary = dict(weights.meta["training"])
    return model


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


def fetch(name: str, *, progress: Progress | None = None) -> Path:
    """Download (or find) and cache the weights of a model; returns the cached safetensors file.

    Raises:
        UnsupportedError: the model has no pretrained weights (e.g. `name:none`).
    """
    from zoo.checkpoint import weights_entry

    spec, tag = get_registry().resolve(name)
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


def info(name: str) -> ModelSpec:
    """The `ModelSpec` of a model name (a weights tag may be given, and must exist). Never imports torch."""
    spec, _ = get_registry().resolve(name)
    return spec


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
    **meta: Any,
) -> Callable[[F], F]:
    """Decorator that registers an in-script model builder under `name` (plugin `user`).

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
        tags = dict(weights or {})
        get_registry().add_spec(
            ModelSpec(
                name=name,
                task=task,
                builder=builder,
                plugin=USER_PLUGIN,
                labels=tuple(labels) if labels is not None else None,
                preprocess=preprocess,
                weights=tags,
                default_weights=default_weights or next(iter(tags), None),
                description=description if description is not None else _first_line(builder.__doc__),
                defaults=_defaults(builder),
                meta=meta,
            )
        )
        return builder

    return decorate
