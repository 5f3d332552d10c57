"""`module_state_dict`: the state_dict of a pickled `nn.Module` read as a `Stub`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from zoo.errors import UnsupportedError
from zoo.safe_pickle.stub import Stub

if TYPE_CHECKING:
    import torch

__all__ = ["module_state_dict"]

_MAX_DEPTH = 200


def module_state_dict(stub: Stub) -> dict[str, torch.Tensor]:
    """The state_dict of a pickled `nn.Module` read as a stand-in, with dotted keys like `state_dict()`.

    Parameters and persistent buffers of the module and of every submodule are collected from the
    `_parameters`, `_buffers` and `_modules` entries of their pickled state; non-persistent buffers
    and None entries are left out, as `nn.Module.state_dict()` does.

    Raises:
        UnsupportedError: `stub` is not a pickled module, or holds something other than tensors.
    """
    out: dict[str, torch.Tensor] = {}
    _collect(stub, "", out, set())
    return out


def _collect(stub: Any, prefix: str, out: dict[str, torch.Tensor], active: set[int]) -> None:
    import torch

    state = stub.state if isinstance(stub, Stub) else None
    if not isinstance(state, dict) or not ({"_parameters", "_modules"} & set(state)):
        what = stub.qualname if isinstance(stub, Stub) else type(stub).__name__
        where = f" at {prefix[:-1]!r}" if prefix else ""
        raise UnsupportedError(f"{what}{where} is not a pickled torch.nn.Module (its state has no _parameters).")
    if id(stub) in active or len(active) > _MAX_DEPTH:
        raise UnsupportedError(f"The module tree loops back on itself at {prefix[:-1]!r}.")
    active.add(id(stub))
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in _entries(state.get(group)):
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise UnsupportedError(f"{prefix}{name} of {stub.qualname} is a {type(tensor).__name__}, not a tensor.")
            out[f"{prefix}{name}"] = tensor.detach()
    for name, child in _entries(state.get("_modules")):
        if child is not None:
            _collect(child, f"{prefix}{name}.", out, active)
    active.discard(id(stub))


def _entries(container: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(container, Stub):
        container = container.dictitems
    if isinstance(container, Mapping):
        for key, value in container.items():
            yield str(key), value
