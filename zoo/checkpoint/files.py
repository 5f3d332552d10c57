"""Self-describing checkpoints: the writer behind `Model.save(path)`, and the reader of what one records.

`zoo.load(path)` reads a checkpoint here (`read_info`: its safetensors file and `CheckpointInfo`, as data) and
rebuilds the model above this layer (`zoo.restore`); nothing here imports `zoo.model` or the registry.

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
from zoo.arguments import parse_json
from zoo.checkpoint.metadata import CheckpointInfo
from zoo.checkpoint.weights import flatten, save_safetensors, version_header
from zoo.errors import InputError, UnsupportedError, ZooError

if TYPE_CHECKING:
    import torch

    from zoo.model import ModelInfo
    from zoo.specs import ModelSpec

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "atomic_write",
    "check_replaceable",
    "read_info",
    "save_checkpoint",
]

#: File names of the folder form (huggingface_hub's `SAFETENSORS_SINGLE_FILE` and `CONFIG_NAME`).
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar")
#: Largest `config.json` read (a model's config is a few KB; labels of 21k classes under 1 MiB).
MAX_CONFIG_BYTES = 16 * 2**20


def save_checkpoint(
    path: str | os.PathLike[str], *, spec: ModelSpec, info: ModelInfo, state_dict: Mapping[str, Any]
) -> Path:
    """Write a self-describing checkpoint (see `zoo.Model.save`); returns the path written.

    Args:
        path: a `.safetensors` file, or a folder (`model.safetensors` + `config.json`).
        spec: the spec of the model, named in the header so a load finds its builder.
        info: what the model is (`Model.info`): labels, preprocessing, builder arguments, weights, training.
        state_dict: the module's tensors (`module.state_dict()`, module versions kept).

    Raises:
        InputError: the path names a pickle, or an existing file of another kind.
        ZooError: a builder argument is not a JSON value.
    """
    target = Path(path).expanduser()
    recorded = CheckpointInfo.record(spec, info)
    tensors, layout = flatten(state_dict)
    metadata = {**recorded.to_metadata(), **version_header(state_dict), **layout}
    if _file_form(target):
        _write_safetensors(target, tensors, metadata)
    else:
        _write_folder(target, tensors, recorded, metadata)
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
