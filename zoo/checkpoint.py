"""Weights in and out: pickled state_dicts converted once to safetensors, and fast loads from safetensors.

Loads build the module on the meta device and assign the tensors read from the safetensors file, so no
random initialisation is paid. Pickles are read with `weights_only=True` only; nothing is ever retried
with `weights_only=False`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UnsupportedError, ZooError
from zoo.specs import Artifact
from zoo.store import CacheEntry, Store, get_store

if TYPE_CHECKING:
    import torch

__all__ = ["build_module", "convert_pickle", "load_state_dict_into", "weights_entry"]

log = logging.getLogger(__name__)
StateDictHook = Callable[[dict[str, Any]], dict[str, Any]]
#: Keys under which training scripts commonly nest the state_dict.
_NESTED = ("state_dict", "model_state_dict", "model", "params_ema", "params", "net")


def safetensors_name(artifact: Artifact) -> str:
    """Cache file name of the safetensors conversion of an artifact."""
    stem = artifact.name.rsplit(".", 1)[0] if "." in artifact.name else artifact.name
    return f"{stem}.safetensors"


def weights_entry(
    artifact: Artifact, *, hook: StateDictHook | None = None, store: Store | None = None, progress: Any = None
) -> CacheEntry:
    """A cached safetensors file holding the artifact's weights, fetching and converting as needed."""
    store = store or get_store()
    if artifact.format == "safetensors":
        return store.fetch_entry(artifact, progress=progress)
    if artifact.format != "state_dict-pickle":
        raise UnsupportedError(f"{artifact.name!r} is a {artifact.format} file; zoo loads state_dicts and safetensors.")
    name = safetensors_name(artifact)
    entry = store.derived(name, artifact.sha256, artifact.hash_prefix)
    if entry is not None:
        return entry
    origin = store.fetch_entry(artifact, progress=progress)
    entry = store.derive(name, "safetensors", origin, lambda tmp: convert_pickle(origin.path, tmp, hook=hook))
    if origin.in_cache and origin.path.parent == entry.path.parent:
        origin.path.unlink(missing_ok=True)  # the safetensors copy replaces it; its record stays for provenance
    return entry


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a pickled state_dict with `weights_only=True` (no pickled code runs), unwrapping common nesting.

    Raises:
        UnsupportedError: the file holds more than tensors (a full-model pickle) or is not a checkpoint.
    """
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(
            f"{path.name} is not a plain state_dict that can be read safely ({first}). zoo never unpickles code; "
            f"convert a full-model pickle with `zoo convert`."
        ) from exc
    for _ in range(2):
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            nested = next((obj[k] for k in _NESTED if isinstance(obj.get(k), Mapping)), None)
            if nested is not None:
                obj = nested
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise UnsupportedError(f"{path.name} does not hold a state_dict (a mapping of names to tensors).")
    return dict(obj)


def _is_state_dict(obj: Mapping[Any, Any]) -> bool:
    import torch

    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def convert_pickle(src: Path, dst: Path, *, hook: StateDictHook | None = None, metadata: dict[str, str] | None = None) -> None:
    """Convert a pickled state_dict file to safetensors (shared tensors are copied apart)."""
    from safetensors.torch import save_file

    state = read_state_dict(src)
    if hook is not None:
        state = hook(state)
    save_file(_untie(state), str(dst), metadata={"format": "pt", **(metadata or {})})


def _untie(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        tensor = tensor.contiguous()
        if ident in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(ident)
        out[key] = tensor
    return out


def build_module(builder: Callable[..., Any], kwargs: Mapping[str, Any], state_path: Path | None) -> torch.nn.Module:
    """Build a module and load safetensors weights into it without paying a random init.

    With `state_path`, the module is built on the meta device and the tensors are assigned; a module
    that still holds meta tensors afterwards (non-persistent buffers) is rebuilt on the CPU and loaded.
    Without it, the module is built on the CPU with its random init.
    """
    import torch

    if state_path is None:
        return _call(builder, kwargs)
    from safetensors.torch import load_file

    state = load_file(str(state_path), device="cpu")
    with torch.device("meta"):
        module = _call(builder, kwargs)
    load_state_dict_into(module, state, assign=True, source=state_path.name)
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
        log.debug("%s keeps non-persistent buffers: rebuilding on the CPU", state_path.name)
        module = _call(builder, kwargs)
        load_state_dict_into(module, state, assign=False, source=state_path.name)
    return module


def _call(builder: Callable[..., Any], kwargs: Mapping[str, Any]) -> torch.nn.Module:
    import torch

    try:
        module = builder(**kwargs)
    except TypeError as exc:
        raise ZooError(f"The model builder refused its arguments: {exc}. See `zoo info NAME` for its arguments.") from exc
    if not isinstance(module, torch.nn.Module):
        raise ZooError(f"The model builder returned {type(module).__name__}, not a torch.nn.Module.")
    return module


def load_state_dict_into(module: torch.nn.Module, state: Mapping[str, Any], *, assign: bool, source: str) -> None:
    """`load_state_dict(strict=True)` with an error that names the missing and unexpected keys."""
    try:
        result = module.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as exc:  # shape mismatches
        detail = " ".join(str(exc).split())[:300]
        raise ZooError(f"The weights in {source} do not fit the model: {detail}") from exc
    problems = []
    if result.missing_keys:
        problems.append(f"missing {_few(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected {_few(result.unexpected_keys)}")
    if problems:
        raise ZooError(
            f"The weights in {source} do not fit the model ({'; '.join(problems)}): the builder arguments "
            f"differ from the ones the weights were trained with."
        )


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return f"{shown} (+{len(keys) - n} more)" if len(keys) > n else shown
