"""Reading a state_dict out of any checkpoint file, without ever running pickled code.

Pickles are read with `torch.load(weights_only=True)`; what that refuses (full-model pickles, checkpoints
holding other objects) is read by `zoo.safe_pickle`, whose stand-ins never run anything. Nothing is ever
retried with `weights_only=False`. TorchScript and tar archives are refused by name.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError

if TYPE_CHECKING:
    import torch

__all__ = ["StateDict", "find_state_dict", "load_safetensors", "read_state_dict", "read_tensors"]

log = logging.getLogger(__name__)
#: Entries searched, in order, for the state_dict of a checkpoint dict (YOLOv5 prefers `ema` to `model`).
NESTED = ("state_dict", "model_state_dict", "ema", "model", "params_ema", "params", "net", "module")
_MAX_NESTING = 3


@dataclass(frozen=True)
class StateDict:
    """Tensors read from a checkpoint.

    Attributes:
        tensors: the state_dict.
        format: the file's format (`torch-zip`, `pickle`, `safetensors`).
        key: the dotted entry the state_dict was found under (`ema`, `model.state_dict`), "" for the top.
        reader: `weights_only` (torch.load) or `safe_pickle`.
    """

    tensors: dict[str, torch.Tensor]
    format: str
    key: str = ""
    reader: str = "weights_only"


def read_state_dict(path: str | os.PathLike[str], *, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of a checkpoint file (see `read_tensors`)."""
    return read_tensors(path, key=key).tensors


def read_tensors(path: str | os.PathLike[str], *, key: str | None = None) -> StateDict:
    """Read the state_dict held by a checkpoint: safetensors, a state_dict pickle, or a full-model pickle.

    Args:
        path: the file.
        key: dotted entry to take (`model`, `ema`, `checkpoint.state_dict`); by default the top object
            if it is a state_dict or a module, else the first of `NESTED` that is.

    Raises:
        UnsupportedError: a TorchScript or tar archive, not a checkpoint, or no state_dict in it.
        InputError: the file is missing, or `key` names no entry.
    """
    from zoo.safe_pickle import sniff

    path = Path(path)
    if not path.is_file():
        raise InputError(f"No checkpoint file at {path}.")
    kind = sniff(path)
    if kind == "safetensors":
        if key:
            raise InputError(f"{path.name} is a safetensors file: it has no nested entries, so drop --key.")
        return StateDict(load_safetensors(path), kind, "", "safetensors")
    obj, reader = _load_object(path, kind)
    found, tensors = find_state_dict(obj, key, source=path.name)
    return StateDict(tensors, kind, found, reader)


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU; every header the safetensors library refuses (truncated,
    lengths past the end, not JSON, unknown dtypes, offsets out of range or overlapping) is one `InputError`.

    Raises:
        InputError: the file is damaged or unreadable.
    """
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path), device="cpu")
    except OSError as exc:
        raise InputError(f"Cannot read {path.name}: {exc.strerror or exc}.") from None
    except Exception as exc:  # SafetensorError, or what torch raises for a shape/dtype it cannot build
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{path.name} is not a valid safetensors file ({text}): the file is damaged.") from None


def _load_object(path: Path, kind: str) -> tuple[Any, str]:
    import torch

    from zoo import safe_pickle

    if kind in ("torch-zip", "pickle"):
        try:
            return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
        except Exception as exc:  # any refusal falls through to the safe reader, never to an unsafe load
            log.debug("weights_only load of %s refused (%s): using the safe reader", path.name, exc)
    return safe_pickle.load(path), "safe_pickle"


def find_state_dict(obj: Any, key: str | None = None, *, source: str = "the checkpoint") -> tuple[str, dict[str, Any]]:
    """Find the state_dict in an object read from a checkpoint.

    A mapping of names to tensors is a state_dict; a pickled module (a `zoo.safe_pickle.Stub`) gives its
    `module_state_dict`.

    Returns:
        `(dotted key, state_dict)`.

    Raises:
        InputError: `key` names no entry.
        UnsupportedError: there is no state_dict where looked.
    """
    if key:
        node = obj
        for depth, part in enumerate(key.split(".")):
            entries = _mapping(node)
            if entries is None or part not in entries:
                where = ".".join(key.split(".")[:depth]) or "the top level"
                raise InputError(f"{source} has no entry {key!r}: the entries at {where} are {_describe(node)}.")
            node = entries[part]
        state = _as_state_dict(node)
        if state is None:
            raise UnsupportedError(f"Entry {key!r} of {source} is {_kind(node)}, not a state_dict or a pickled module.")
        return key, state
    found = _search(obj, "", 0)
    if found is None:
        raise UnsupportedError(
            f"{source} holds no state_dict zoo can find: it is {_kind(obj)} with entries {_describe(obj)}. "
            f"Pick one with --key (`zoo convert IN OUT --key NAME`)."
        )
    return found


def _search(obj: Any, prefix: str, depth: int) -> tuple[str, dict[str, Any]] | None:
    state = _as_state_dict(obj)
    if state is not None:
        return prefix, state
    entries = _mapping(obj)
    if entries is None or depth >= _MAX_NESTING:
        return None
    for name in NESTED:
        if entries.get(name) is not None:
            found = _search(entries[name], f"{prefix}.{name}" if prefix else name, depth + 1)
            if found is not None:
                return found
    return None


def _as_state_dict(obj: Any) -> dict[str, Any] | None:
    import torch

    from zoo.safe_pickle import Stub, module_state_dict

    if isinstance(obj, Stub) and isinstance(obj.state, dict) and "_modules" in obj.state:
        return module_state_dict(obj)
    from zoo.checkpoint.quantized import is_quantized_state

    if (
        isinstance(obj, Mapping)
        and obj
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ) or is_quantized_state(obj):  # a quantized module's: also (weight, bias) tuples and dtypes
        return keep_versions(obj, OrderedDict(obj))
    return None


def keep_versions(source: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Carry a state_dict's `_metadata` (per-module versions that `_load_from_state_dict` reads) over to `state`."""
    versions = getattr(source, "_metadata", None)
    if versions is not None:
        state._metadata = versions  # type: ignore[attr-defined]
    return state


def _mapping(obj: Any) -> Mapping[str, Any] | None:
    from zoo.safe_pickle import Stub

    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, Stub) and isinstance(obj.state, dict):
        return obj.state  # attributes of a pickled object
    return None


def _type(obj: Any) -> str:
    from zoo.safe_pickle import Stub

    return obj.qualname if isinstance(obj, Stub) else type(obj).__name__


def _kind(obj: Any) -> str:
    from zoo.safe_pickle import Stub

    return f"a pickled {obj.qualname}" if isinstance(obj, Stub) else f"a {type(obj).__name__}"


def _describe(obj: Any, n: int = 8) -> str:
    entries = _mapping(obj)
    if not entries:
        return "none"
    shown = ", ".join(f"{k!s} ({_type(v)})" for k, v in list(entries.items())[:n])
    return shown + (f" (+{len(entries) - n} more)" if len(entries) > n else "")
