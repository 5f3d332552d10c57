"""`zoo.load(path)`: find the spec a saved checkpoint names among the loaded plugins and rebuild its model.

The checkpoint layer only reads the file (`zoo.checkpoint.read_info`: the safetensors file and a
`CheckpointInfo`); the spec is resolved here, in the registry, and the model built by `zoo.build.build_model`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.arguments import file_kwargs
from zoo.errors import UnknownModelError, UnsupportedError

if TYPE_CHECKING:
    from zoo.checkpoint.metadata import CheckpointInfo
    from zoo.model import Model
    from zoo.specs import ModelSpec

__all__ = ["checkpoint_spec", "load_checkpoint"]


def load_checkpoint(path: str | os.PathLike[str], *, device: Any = "auto", **kwargs: Any) -> Model:
    """Rebuild the model a checkpoint written by `Model.save` holds (what `zoo.load(path)` does).

    The module is built on the meta device with the saved builder arguments, the tensors are loaded
    strictly, and labels, preprocessing, the base weights tag and hash and the training summary are
    restored. `labels=` replaces the saved labels; other keyword arguments must agree with the saved
    builder arguments.

    Raises:
        UnknownModelError: no loaded plugin declares the model (an in-script model must be registered again).
        UnsupportedError: not a safetensors checkpoint, or one without zoo metadata.
        InputError: damaged metadata, or builder arguments the model's builder does not take from a file
            (see `zoo.arguments.file_kwargs`).
        ZooError: the tensors do not fit the model (missing and unexpected keys are named).
    """
    from zoo.build import build_model
    from zoo.checkpoint import read_info
    from zoo.model import ModelInfo

    source = Path(path).expanduser()
    weights_file, found = read_info(source)
    spec = checkpoint_spec(found, source)
    kwargs = dict(kwargs)
    labels = kwargs.pop("labels", None)
    saved = file_kwargs(spec, found.builder_kwargs, source=source.name)  # before anything is imported or built
    info = ModelInfo(
        weights=found.weights,
        labels=tuple(labels) if labels is not None else found.labels,
        preprocess=found.preprocess or spec.preprocess_for(found.weights),
        builder_kwargs=_builder_kwargs(found.model, saved, kwargs, source),
        weights_sha256=found.base_sha256,
        training=found.training,
        random_init=found.random_init,
    )
    return build_model(spec, info=info, weights_file=weights_file, device=device)


def checkpoint_spec(info: CheckpointInfo, source: Path) -> ModelSpec:
    """The spec of the model a checkpoint holds, from the loaded plugin that declares it.

    Raises:
        UnknownModelError: no loaded plugin declares it.
    """
    from zoo.registry import USER_PLUGIN, get_registry

    registry = get_registry()
    plugin = registry.plugins.get(info.plugin)
    spec = plugin.specs.get(info.model) if plugin is not None else None
    if spec is not None:
        return spec
    if info.plugin == USER_PLUGIN:
        raise UnknownModelError(
            f"{source.name} holds {info.model!r}, a model registered in-script: run its "
            f"`@zoo.register({info.model!r}, ...)` in this process before zoo.load({str(source)!r}).",
            name=info.model,
        )
    if plugin is not None:
        raise UnknownModelError(
            f"{source.name} holds '{info.plugin}/{info.model}', but plugin {info.plugin!r} declares no model "
            f"{info.model!r}: a model built from a file or a `scheme:` name cannot be rebuilt from a checkpoint; "
            f"load it the way it was first loaded.",
            name=f"{info.plugin}/{info.model}",
        )
    state = registry.infos.get(info.plugin)
    why = f" (plugin {info.plugin!r} is {state.status}: {state.reason})" if state and state.status != "ok" else ""
    raise UnknownModelError(
        f"{source.name} holds '{info.plugin}/{info.model}', which no loaded plugin declares{why}: install or enable "
        f"plugin {info.plugin!r} (see `zoo plugins`).",
        name=f"{info.plugin}/{info.model}",
    )


def _builder_kwargs(model: str, saved: dict[str, Any], kwargs: Mapping[str, Any], source: Path) -> dict[str, Any]:
    for key, value in kwargs.items():
        if key in saved and json.loads(json.dumps(value, default=str)) != saved[key]:
            raise UnsupportedError(
                f"{source.name} was saved with {key}={saved[key]!r}, not {value!r}: a checkpoint rebuilds its model "
                f"with the saved arguments. Load '{model}:none' by name to build it differently."
            )
    return {**saved, **kwargs}
