"""`hf:org/repo[@revision]` names: what the repo holds decides the spec zoo builds it from.

- a zoo checkpoint (`model.save(folder)` / `model.push_to_hub`: config.json with a `zoo` entry): the spec
  of the model it holds, from the plugin that declares it, with the repo's weights, builder arguments,
  labels and preprocessing: the loaded model is the saved one, and saves and reloads like it;
- a timm model (config.json with `architecture`): the plugin's `timm` spec;
- any other config.json + weights (huggingface_hub's `PyTorchModelHubMixin`): the plugin's `mixin` spec,
  built from the class the user passes (`model_class=`).

Every file comes through the zoo store's `hf:` source at the pinned commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from zoo import InputError, ModelSpec, UnknownModelError, UnsupportedError, Weights, ZooError
from zoo.ext import file_kwargs, parse_json
from zoo_hf.repo import Snapshot, parse_target, snapshot
from zoo_hf.timm_models import is_timm_config, parse_timm_config, require_timm, timm_labels, timm_preprocess

__all__ = ["WEIGHT_FILES", "resolve"]

#: Weight files looked for, in order: safetensors first; a pickle is converted once, read safely.
WEIGHT_FILES = (("model.safetensors", "safetensors"), ("pytorch_model.bin", "state_dict-pickle"))
#: Largest config.json read (a model's config is a few KB; 21k class labels stay under 1 MiB).
MAX_CONFIG_BYTES = 16 * 2**20


def resolve(text: str) -> tuple[ModelSpec, str | None]:
    """The spec and weights tag for `hf:<text>` (see the module docstring)."""
    from zoo_hf import MIXIN_SPEC, TIMM_SPEC

    snap = snapshot(parse_target(text))
    config = _config(snap)
    tag = f"hf-{snap.commit[:12]}"
    if config is not None and isinstance(config.get("zoo"), dict):
        return _checkpoint_spec(snap, config, tag), tag
    if config is not None and is_timm_config(config):
        return _timm_spec(TIMM_SPEC, snap, config, tag), tag
    if config is not None:  # checked before anything is imported: the class comes only from the caller
        kwargs = file_kwargs(MIXIN_SPEC, config, source=f"config.json of hf:{snap.pinned}")
        weights = _weights(snap, builder_kwargs=kwargs)
        spec = replace(MIXIN_SPEC, weights={tag: weights}, default_weights=tag, meta={"hf": snap.pinned})
        return replace(spec, description=f"PyTorchModelHubMixin model hf:{snap.pinned}"), tag
    raise UnsupportedError(
        f"hf:{snap.target.display} has no config.json: zoo loads repos holding a zoo checkpoint (model.push_to_hub), "
        f"a timm model, or a PyTorchModelHubMixin model."
    )


def _timm_head(pretrained_cfg: Mapping[str, Any]) -> str | tuple[str, ...] | None:
    """Where timm says the model keeps its classifier (`pretrained_cfg["classifier"]`: `head.fc`, or a main and
    a distillation head); None, for zoo's generic rule, when the config names none or not a module path."""
    found = pretrained_cfg.get("classifier")
    paths = (found,) if isinstance(found, str) else tuple(found) if isinstance(found, list) else ()
    if not paths or not all(isinstance(p, str) and _is_module_path(p) for p in paths):
        return None
    return paths[0] if len(paths) == 1 else paths


def _is_module_path(path: str) -> bool:
    return all(part.isidentifier() or part.isdigit() for part in path.split("."))


def _config(snap: Snapshot) -> dict[str, Any] | None:
    if "config.json" not in snap.files:
        return None
    path = snap.fetch("config.json")
    source = f"hf:{snap.pinned}"
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InputError(f"config.json of {source} is over {MAX_CONFIG_BYTES // 2**20} MiB: not a model config.")
        text = path.read_bytes()
    except OSError as exc:
        raise ZooError(f"config.json of {source} cannot be read ({exc.strerror or exc}).") from None
    config = parse_json(text, what="config.json", source=source)
    if not isinstance(config, dict):
        raise InputError(f"config.json of {source} is a JSON {type(config).__name__}, not an object: nothing to load.")
    return config


def _weights(snap: Snapshot, *, meta: dict[str, Any] | None = None, **fields: Any) -> Weights:
    for path, fmt in WEIGHT_FILES:
        if path in snap.files:
            artifact = snap.artifact(path, fmt)
            return Weights(
                url=artifact.urls[0],
                filename=artifact.name,
                sha256=artifact.sha256,
                size=artifact.size,
                format=fmt,
                meta={"hf": snap.pinned, "file": path, **(meta or {})},
                **fields,
            )
    raise UnsupportedError(f"hf:{snap.pinned} has no {' or '.join(p for p, _ in WEIGHT_FILES)}: nothing to load.")


def _checkpoint_spec(snap: Snapshot, config: dict[str, Any], tag: str) -> ModelSpec:
    from zoo.ext import CheckpointInfo

    source = f"hf:{snap.pinned}/config.json"
    info = CheckpointInfo.from_config(config, source=source)
    if info is None:
        raise ZooError(f"config.json of hf:{snap.pinned} has a damaged zoo entry: push the model again.")
    base = _declared(info.plugin, info.model, snap)
    weights = _weights(
        snap,
        builder_kwargs=file_kwargs(base, info.builder_kwargs, source=source),
        labels=info.labels if info.labels is not None else (),
        preprocess=info.preprocess,
        meta={"training": info.training, "base_weights": info.weights, "base_sha256": info.base_sha256},
    )
    return replace(
        base,
        weights={tag: weights},
        default_weights=tag,
        aliases={},
        state_dict_hook=None,
        description=f"{base.description or base.name} (zoo checkpoint hf:{snap.pinned})",
        meta={**base.meta, "hf": snap.pinned},
    )


def _declared(plugin_name: str, model: str, snap: Snapshot) -> ModelSpec:
    """The spec of the model a zoo checkpoint holds, from the plugin that declares it."""
    from zoo.ext import USER_PLUGIN, declared_spec

    spec = declared_spec(plugin_name, model)
    if spec is not None:
        return spec
    if plugin_name == USER_PLUGIN:
        hint = f"run its `@zoo.register({model!r}, ...)` in this process first"
    else:
        hint = f"install or enable plugin {plugin_name!r} (see `zoo plugins`)"
    raise UnknownModelError(
        f"hf:{snap.pinned} holds '{plugin_name}/{model}', which no loaded plugin declares: {hint}.",
        name=f"{plugin_name}/{model}",
    )


def _timm_spec(base: ModelSpec, snap: Snapshot, config: dict[str, Any], tag: str) -> ModelSpec:
    require_timm()
    source = f"config.json of hf:{snap.pinned}"
    try:
        parsed = parse_timm_config(config)
        labels = timm_labels(parsed)
        preprocess = timm_preprocess(parsed.pretrained_cfg, parsed.model_args)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InputError(f"The timm {source} is damaged ({' '.join(str(exc).split())[:160]}).") from None
    kwargs = file_kwargs(
        base,
        {"architecture": parsed.architecture, "num_classes": parsed.num_classes, **parsed.model_args},
        source=source,
    )
    weights = _weights(snap, builder_kwargs=kwargs, labels=labels or (), preprocess=preprocess)
    return replace(
        base,
        head=_timm_head(parsed.pretrained_cfg),
        weights={tag: weights},
        default_weights=tag,
        labels=labels,
        preprocess=preprocess,
        description=f"timm {parsed.architecture} from hf:{snap.pinned}",
        meta={**base.meta, "hf": snap.pinned, "architecture": parsed.architecture},
    )
