"""Self-describing checkpoints: `Model.save(path)` writes them and `zoo.load(path)` rebuilds the model.

Two forms, both safetensors with zoo's metadata in the header (see `zoo.checkpoint.metadata`):

- a file, `lenet5.safetensors`;
- a folder, `lenet5/` holding `model.safetensors` and `config.json`, the layout huggingface_hub's
  `PyTorchModelHubMixin.save_pretrained` writes (builder arguments at the top of `config.json`).

Every file is written to a temporary name beside its target and renamed over it once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._atomic import atomic_path
from zoo.arguments import file_kwargs, parse_json
from zoo.checkpoint.metadata import CheckpointInfo
from zoo.checkpoint.weights import build_module, save_safetensors, untie, version_header
from zoo.errors import InputError, UnknownModelError, UnsupportedError, ZooError

if TYPE_CHECKING:
    import torch

    from zoo.model import Model
    from zoo.specs import ModelSpec

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "atomic_write",
    "check_replaceable",
    "checkpoint_spec",
    "load_checkpoint",
    "read_info",
    "save_model",
]

#: File names of the folder form (huggingface_hub's `SAFETENSORS_SINGLE_FILE` and `CONFIG_NAME`).
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar")
#: Largest `config.json` read (a model's config is a few KB; labels of 21k classes under 1 MiB).
MAX_CONFIG_BYTES = 16 * 2**20


def save_model(model: Model, path: str | os.PathLike[str]) -> Path:
    """Write `model` as a self-describing checkpoint (see `zoo.Model.save`); returns the path written.

    Raises:
        InputError: the path names a pickle, or an existing file of another kind.
        ZooError: a builder argument is not a JSON value.
    """
    target = Path(path).expanduser()
    info = CheckpointInfo.from_model(model)
    state = model.module.state_dict()
    tensors = untie(state)
    metadata = {**info.to_metadata(), **version_header(state)}
    if _file_form(target):
        _write_safetensors(target, tensors, metadata)
    else:
        _write_folder(target, tensors, info, metadata)
    return target


def _file_form(target: Path) -> bool:
    if target.is_dir():
        return False
    suffix = target.suffix.lower()
    if suffix == ".safetensors":
        return True
    if suffix in _PICKLE_SUFFIXES:
        raise InputError(
            f"zoo saves safetensors, not pickles: save to {target.with_suffix('.safetensors')} or a folder."
        )
    if target.exists():
        raise InputError(f"{target} exists and is not a folder: zoo leaves it untouched. Save to a .safetensors path.")
    return False


def _write_safetensors(target: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: save_safetensors(tensors, tmp, metadata))


def _write_folder(
    folder: Path, tensors: dict[str, torch.Tensor], info: CheckpointInfo, metadata: dict[str, str]
) -> None:
    if "zoo" in info.builder_kwargs:
        raise ZooError(
            "A builder argument named 'zoo' cannot be saved in the folder form: save to a .safetensors file."
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / CONFIG_NAME
    check_replaceable(config)
    _write_safetensors(folder / WEIGHTS_NAME, tensors, metadata)
    text = json.dumps(info.to_config(), indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(config, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_replaceable(path: Path) -> None:
    """Refuse to replace anything but a file of the kind about to be written."""
    if not path.exists() and not path.is_symlink():
        return
    if path.suffix == ".json":
        with contextlib.suppress(OSError, ValueError):
            if path.is_file() and isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                return
        kind = "a JSON config"
    else:
        from zoo.safe_pickle import sniff

        if path.is_file() and sniff(path) == "safetensors":
            return
        kind = "a safetensors file"
    raise InputError(
        f"{path} exists and is not {kind}: zoo will not overwrite it. Remove it or save elsewhere.", path=path
    )


def atomic_write(target: Path, write: Callable[[Path], object]) -> None:
    """Run `write(tmp)` on a temporary path beside `target`, fsync it, and rename it over `target`.

    `zoo._atomic.atomic_path` does the work: the file gets the mode the user's umask gives new files; on any
    error the temporary file is removed and `target` is left as it was; a full disk is a `DiskFullError`.
    """
    with atomic_path(target) as tmp:
        write(tmp)


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
    from zoo.device import place_module, resolve_device
    from zoo.model import Model

    source = Path(path).expanduser()
    weights_file, info = read_info(source)
    spec = checkpoint_spec(info, source)
    kwargs = dict(kwargs)
    labels = kwargs.pop("labels", None)
    saved = file_kwargs(spec, info.builder_kwargs, source=source.name)  # before anything is imported or built
    builder_kwargs = _builder_kwargs(info.model, saved, kwargs, source)
    target = resolve_device(device)
    module = place_module(build_module(spec.builder, builder_kwargs, weights_file), target)
    model = Model(
        module,
        spec,
        weights=info.weights,
        device=target,
        labels=tuple(labels) if labels is not None else info.labels,
        preprocess=info.preprocess or spec.preprocess_for(info.weights),
        builder_kwargs=builder_kwargs,
        weights_sha256=info.base_sha256,
    )
    model.training_summary = info.training
    return model


def read_info(path: str | os.PathLike[str]) -> tuple[Path, CheckpointInfo]:
    """The safetensors file of a checkpoint (file or folder form) and its zoo fields.

    Raises:
        InputError: nothing at `path`, a folder without `model.safetensors`, or damaged zoo metadata.
        UnsupportedError: not a safetensors file, or no zoo metadata.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise InputError(
                f"{path} has no {WEIGHTS_NAME}: zoo.load(folder) reads folders written by model.save.", path=path
            )
        info = _config_info(path / CONFIG_NAME) or _header_info(weights)
    elif path.is_file():
        weights = path
        info = _header_info(path)
    else:
        raise InputError(f"No checkpoint at {path}: zoo.load takes a model name or the path of a saved checkpoint.")
    if info is None:
        raise UnsupportedError(
            f"{weights.name} has no zoo metadata (Model.save did not write it), so zoo cannot tell which model it "
            f"holds. Build the model by name and load the tensors: `m = zoo.load('NAME:none', num_classes=...)`, "
            f"`m.module.load_state_dict(safetensors.torch.load_file('{weights}'))`; `m.save(PATH)` then writes a "
            f"checkpoint zoo.load(PATH) reads."
        )
    return weights, info


def _header_info(path: Path) -> CheckpointInfo | None:
    from safetensors import safe_open

    from zoo.safe_pickle import sniff

    kind = sniff(path)
    if kind != "safetensors":
        raise UnsupportedError(
            f"{path.name} is not a safetensors file (it looks like: {kind}): zoo.load(path) reads checkpoints "
            f"written by Model.save and never unpickles. Extract its tensors with `zoo convert {path.name} "
            f"{path.stem}.safetensors`, then load them into `zoo.load('NAME:none')` and save that."
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise UnsupportedError(f"{path.name} is not a valid safetensors file: {one_line(exc)}.") from None
    return CheckpointInfo.from_metadata(meta, source=path.name)


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, cut to `limit` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _config_info(path: Path) -> CheckpointInfo | None:
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InputError(f"{path} is over {MAX_CONFIG_BYTES // 2**20} MiB: not a model's config.json.", path=path)
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}): fix or remove it.", path=path) from None
    config = parse_json(text, what="content", source=str(path))
    return CheckpointInfo.from_config(config, source=str(path)) if isinstance(config, dict) else None


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
