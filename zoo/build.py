"""`build_model`: a `Model` from a spec, what the model is (`ModelInfo`) and a file of tensors.

PROVISIONAL (branch `ext`): the signature fixed in issue 11's split, implemented over today's code so that
`zoo.ext` and the plugins that use it work now. The `build` branch owns the real module (and puts `ModelInfo`
in `zoo.model`); at merge its version replaces this file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zoo.specs import ImagePreprocess, ModelSpec

if TYPE_CHECKING:
    import torch

    from zoo.model import Model

__all__ = ["ModelInfo", "build_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, apart from its module: one value.

    Attributes:
        weights: the weights tag loaded, or None for random init.
        labels: class labels, or None.
        preprocess: input preprocessing as data, or None.
        builder_kwargs: the arguments the builder is called with (read-only).
        weights_sha256: sha256 of the weights file loaded, or None.
        training: what training produced these weights, or None.
        random_init: True when the module was built without weights.
    """

    weights: str | None = None
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    training: Mapping[str, Any] | None = None
    random_init: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "builder_kwargs", MappingProxyType(dict(self.builder_kwargs)))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))

    @classmethod
    def for_spec(cls, spec: ModelSpec, weights: str | None = None) -> ModelInfo:
        """The info of `spec` loaded with the weights tag `weights` (None: random init), from the spec's data."""
        labels = spec.labels_for(weights)
        return cls(
            weights=weights,
            labels=labels or None,
            preprocess=spec.preprocess_for(weights),
            builder_kwargs=dict(spec.weights[weights].builder_kwargs) if weights is not None else {},
            random_init=weights is None and not spec.meta.get("weights_in_builder"),
        )

    def replace(self, **changes: Any) -> ModelInfo:
        """A copy with `changes` applied."""
        return replace(self, **changes)


def build_model(
    spec: ModelSpec,
    *,
    info: ModelInfo | None = None,
    weights_file: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = "auto",
) -> Model:
    """Build `spec`'s module, load `weights_file` into it strictly, place it on `device`, and wrap it in a `Model`.

    With a weights file the module is built on the meta device and the tensors are assigned, so no random
    init is paid; the keys must match the module's exactly.

    Args:
        spec: the model to build; its builder is called with `info.builder_kwargs`.
        info: what the model is (labels, preprocessing, weights tag and hash, ...); None for
            `ModelInfo.for_spec(spec)` (random init).
        weights_file: a safetensors file of the module's tensors, or None for random init.
        device: where to put the module ("auto", "cpu", "cuda:1", a `torch.device`).

    Returns:
        The `Model`, in eval mode on `device`.

    Raises:
        ZooError: the builder refuses its arguments, or the file's tensors do not fit the module.
    """
    from zoo.checkpoint import build_module
    from zoo.device import place_module, resolve_device
    from zoo.model import Model

    info = info if info is not None else ModelInfo.for_spec(spec)
    target = resolve_device(device)
    path = Path(weights_file) if weights_file is not None else None
    module = place_module(build_module(spec.builder, dict(info.builder_kwargs), path), target)
    model = Model(
        module,
        spec,
        weights=info.weights,
        device=target,
        labels=info.labels,
        preprocess=info.preprocess,
        builder_kwargs=dict(info.builder_kwargs),
        weights_sha256=info.weights_sha256,
    )
    model.random_init = info.random_init
    model.training_summary = dict(info.training) if info.training is not None else None
    return model
