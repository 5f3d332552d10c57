"""Catalog weights: pickles converted once to safetensors in the cache, and fast loads from safetensors.

Loads build the module on the meta device and assign the tensors read from the safetensors file, so no
random initialisation is paid. Pickles are read by `zoo.checkpoint.reader` (`weights_only=True`, else the
safe reader); nothing is ever retried with `weights_only=False`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.checkpoint.reader import read_state_dict
from zoo.errors import ChecksumError, InputError, UnsupportedError, ZooError
from zoo.specs import Artifact
from zoo.store import CacheEntry, Store, get_store, pins
from zoo.store.cache import hash_file
from zoo.store.formats import FormatError, canonicalize_safetensors, check_format

if TYPE_CHECKING:
    import torch

__all__ = [
    "build_module",
    "convert_into_cache",
    "convert_pickle",
    "flatten",
    "load_state_dict_into",
    "save_safetensors",
    "untie",
    "version_header",
    "weights_entry",
]

log = logging.getLogger(__name__)
StateDictHook = Callable[[dict[str, Any]], dict[str, Any]]
#: Artifact formats converted to safetensors on first use.
PICKLES = ("state_dict-pickle", "full-pickle")
#: safetensors header key holding the state_dict's `_metadata` (module versions) as JSON.
VERSIONS_KEY = "zoo.state_versions"


def safetensors_name(artifact: Artifact) -> str:
    """Cache file name of the safetensors conversion of an artifact."""
    stem = artifact.name.rsplit(".", 1)[0] if "." in artifact.name else artifact.name
    return f"{stem}.safetensors"


def weights_entry(
    artifact: Artifact,
    *,
    hook: StateDictHook | None = None,
    store: Store | None = None,
    progress: Any = None,
    verify: bool = False,
) -> CacheEntry:
    """A cached safetensors file holding the artifact's weights, fetching and converting as needed.

    A `state_dict-pickle` or `full-pickle` artifact is converted once (its state_dict, or the state_dict
    of the pickled module, read without running pickled code); `hook` edits the state_dict first. The
    pickle stays in the cache beside its conversion, so the conversion can be re-made and compared
    (`zoo cache verify`, `zoo cache import`, `zoo fetch --locked`).

    With `verify`, the file used is hashed again and compared with its record: one that changed at rest
    is quarantined and fetched (or converted) again, once.

    Raises:
        ChecksumError: with `verify`, the file still differs from its record after one new fetch.
    """
    store = store or get_store()
    entry = _weights_entry(artifact, hook, store, progress)
    if not verify:
        return entry
    checked = _rehashed(store, entry)
    if checked is not None:
        return checked
    store.quarantine(entry.path.name, "its sha256 differs from its record (found by a verified load)")
    entry = _weights_entry(artifact, hook, store, progress)
    checked = _rehashed(store, entry)
    if checked is None:
        raise ChecksumError(
            f"{entry.path} still differs from its record after a new fetch: check the disk, then "
            f"`zoo cache rm {entry.path.name}`.",
            path=str(entry.path),
            expected=entry.sha256,
            got="(changed again)",
        )
    return checked


def _rehashed(store: Store, entry: CacheEntry) -> CacheEntry | None:
    """The entry with a sha256 computed now (None when it no longer matches its record)."""
    sha, size = hash_file(entry.path)
    if (sha, size) != (entry.sha256, entry.size):
        log.warning("%s: sha256 %s… differs from its record %s…", entry.path.name, sha[:12], entry.sha256[:12])
        return None
    return entry


def _weights_entry(artifact: Artifact, hook: StateDictHook | None, store: Store, progress: Any) -> CacheEntry:
    if artifact.format == "safetensors":
        return store.fetch_entry(artifact, progress=progress)
    if artifact.format not in PICKLES:
        raise UnsupportedError(
            f"{artifact.name!r} is a {artifact.format} file; zoo loads safetensors, state_dicts and full-model pickles."
        )
    name = safetensors_name(artifact)
    held, _ = pins.enforce(store.root, artifact)
    entry = store.derived(name, held.sha256, held.hash_prefix)
    if entry is not None:
        return entry
    origin = store.fetch_entry(artifact, progress=progress)
    try:
        return convert_into_cache(store, name, origin, hook)
    except FormatError as exc:
        if not store.heal(origin, artifact.format, f"failed to convert: {exc}"):
            raise
    return convert_into_cache(store, name, store.fetch_entry(artifact, progress=progress), hook)


def convert_into_cache(store: Store, name: str, origin: CacheEntry, hook: StateDictHook | None) -> CacheEntry:
    """The safetensors conversion `name` of `origin`, made once (see `zoo.store.Store.derive`).

    Raises:
        FormatError: `origin` is not a complete pickle (cut short, damaged): worth a new fetch.
    """

    def make(tmp: Path) -> None:
        try:
            convert_pickle(origin.path, tmp, hook=hook)
        except ZooError:
            check_format(origin.path, "full-pickle")  # a damaged file says so; a readable one keeps its error
            raise

    return store.derive(name, "safetensors", origin, make)


def convert_pickle(
    src: Path, dst: Path, *, hook: StateDictHook | None = None, metadata: dict[str, str] | None = None
) -> None:
    """Convert a pickled checkpoint (state_dict or full-model pickle) to safetensors.

    Shared tensors are copied apart; see `zoo.checkpoint.reader.read_state_dict` for what is read.
    """
    state = read_state_dict(src)
    versions = version_header(state)
    if hook is not None:
        state = hook(state)  # the versions stay those of the file, as when torchvision edits keys in place
    tensors, layout = flatten(state)
    save_safetensors(tensors, dst, {"format": "pt", **versions, **layout, **(metadata or {})})


def flatten(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """`untie`d tensors for `state` and the header entries they need: a quantized state_dict is laid out as
    `zoo.checkpoint.quantized` describes (its header entry returned), any other is only untied."""
    from zoo.checkpoint.quantized import encode

    tensors, layout = encode(state)
    return untie(tensors), layout


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> None:
    """`safetensors.torch.save_file`, in a byte-stable form: equal tensors and metadata give equal bytes.

    The safetensors library writes the metadata keys in hash order, which differs between processes;
    the header is rewritten with sorted keys (`zoo.store.formats.canonicalize_safetensors`).
    """
    import re

    from safetensors.torch import save_file

    try:
        save_file(dict(tensors), str(path), metadata=dict(metadata))
    except Exception as exc:  # safetensors' own error type, also for I/O errors ("... (os error 28)")
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from exc
    canonicalize_safetensors(Path(path))


def version_header(state: Mapping[str, Any]) -> dict[str, str]:
    """The safetensors header entry that keeps a state_dict's module versions (`_metadata`), if it has any.

    Some modules refuse a state_dict without them (torchvision's MNASNet), others upgrade old layouts
    from them (BatchNorm), so they travel with the tensors.
    """
    import json

    versions = getattr(state, "_metadata", None)
    if not versions:
        return {}
    return {VERSIONS_KEY: json.dumps({str(k): dict(v) for k, v in versions.items()}, sort_keys=True)}


def _load_layout(path: Path) -> dict[str, Any]:
    """The state_dict of a safetensors file, quantized entries rebuilt (see `zoo.checkpoint.quantized`)."""
    from safetensors import safe_open

    from zoo.checkpoint.quantized import HEADER_KEY, decode
    from zoo.checkpoint.reader import load_safetensors

    tensors = load_safetensors(path)
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    return decode(tensors, header, source=path.name) if HEADER_KEY in header else tensors


def _with_versions(state: dict[str, Any], path: Path) -> dict[str, Any]:
    from collections import OrderedDict

    from safetensors import safe_open

    from zoo.arguments import check_json, parse_json
    from zoo.errors import InputError

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if VERSIONS_KEY not in header:
        return state
    versions = parse_json(header[VERSIONS_KEY], what=f"{VERSIONS_KEY} metadata", source=path.name)
    check_json(versions, what=f"{VERSIONS_KEY} metadata", source=path.name)
    if not isinstance(versions, dict) or not all(isinstance(v, dict) for v in versions.values()):
        raise InputError(f"The {VERSIONS_KEY} metadata of {path.name} is not a JSON object of objects: it is damaged.")
    out: dict[str, Any] = OrderedDict(state)
    out._metadata = OrderedDict(versions)  # type: ignore[attr-defined]
    return out


def untie(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, none sharing memory, as safetensors requires.

    Raises:
        UnsupportedError: an entry is not a tensor.
    """
    import torch

    seen: set[tuple[str, int, int]] = set()
    out = {}
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise UnsupportedError(f"State entry {key!r} is a {type(tensor).__name__}: safetensors holds tensors only.")
        storage = tensor.untyped_storage()
        ident = (str(tensor.device), storage.data_ptr(), storage.nbytes())
        tensor = tensor.detach().to("cpu").contiguous()
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
    state = _with_versions(_load_layout(state_path), state_path)
    try:
        with torch.device("meta"):
            module = _call(builder, kwargs)
    except (RuntimeError, NotImplementedError) as exc:  # a builder that computes with tensors while building
        log.debug("building on the meta device failed (%s): building on the CPU", exc)
        module = _call(builder, kwargs)
        load_state_dict_into(module, state, assign=False, source=state_path.name)
        return module
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
    except ZooError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"The model builder refused its arguments: {exc}. See `zoo info NAME` for its arguments."
        ) from exc
    except RuntimeError as exc:
        if torch.get_default_device().type == "meta":
            raise  # a builder that computes with tensors: `build_module` builds it again on the CPU
        raise InputError(
            f"The model builder failed with these arguments ({exc}). See `zoo info NAME` for its arguments."
        ) from exc
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
