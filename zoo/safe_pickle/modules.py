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
#: Modules visited at most: a pickle can share one submodule between many parents, and a walk that follows every
#: path through such a graph grows exponentially with its depth.
_MAX_VISITS = 100_000


def module_state_dict(stub: Stub) -> dict[str, torch.Tensor]:
    """The state_dict of a pickled `nn.Module` read as a stand-in, with dotted keys like `state_dict()`.

    Parameters and persistent buffers of the module and of every submodule are collected from the
    `_parameters`, `_buffers` and `_modules` entries of their pickled state; non-persistent buffers
    and None entries are left out, as `nn.Module.state_dict()` does.

    A submodule shared by several parents appears under each of their names, as with `state_dict()`; the
    tensors so repeated may take at most `max(MATERIALISED_MIN, MATERIALISED_FACTOR x their distinct bytes)`.

    Raises:
        UnsupportedError: `stub` is not a pickled module, holds something other than tensors, or repeats its
            submodules beyond those bounds.
    """
    from zoo.safe_pickle.reader import MATERIALISED_FACTOR, MATERIALISED_MIN

    out: dict[str, torch.Tensor] = {}
    _collect(stub, "", out, set(), [0])
    distinct = {id(t): t.numel() * t.element_size() for t in out.values()}
    total = sum(t.numel() * t.element_size() for t in out.values())
    if total > max(MATERIALISED_MIN, MATERIALISED_FACTOR * sum(distinct.values())):
        raise UnsupportedError(
            f"{stub.qualname} repeats shared submodules into {total} bytes of tensors, more than "
            f"{MATERIALISED_FACTOR}x the {sum(distinct.values())} bytes it holds: zoo does not read it."
        )
    return out


def _collect(stub: Any, prefix: str, out: dict[str, torch.Tensor], active: set[int], visits: list[int]) -> None:
    import torch

    visits[0] += 1
    if visits[0] > _MAX_VISITS:
        raise UnsupportedError(f"The module tree has more than {_MAX_VISITS} modules (shared submodules repeat).")

    state = stub.state if isinstance(stub, Stub) else None
    if not isinstance(state, dict) or not ({"_parameters", "_modules"} & set(state)):
        what = stub.qualname if isinstance(stub, Stub) else type(stub).__name__
        where = f" at {prefix[:-1]!r}" if prefix else ""
        raise UnsupportedError(f"{what}{where} is not a pickled torch.nn.Module (its state has no _parameters).")
    if id(stub) in active or len(active) > _MAX_DEPTH:
        raise UnsupportedError(f"The module tree loops back on itself at {prefix[:-1]!r}.")
    active.add(id(stub))
    non_persistent = state.get("_non_persistent_buffers_set")
    skip = set(non_persistent) if isinstance(non_persistent, (set, frozenset, list, tuple)) else set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in _entries(state.get(group)):
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise UnsupportedError(f"{prefix}{name} of {stub.qualname} is a {type(tensor).__name__}, not a tensor.")
            out[f"{prefix}{name}"] = tensor.detach()
    for name, child in _entries(state.get("_modules")):
        if child is not None:
            _collect(child, f"{prefix}{name}.", out, active, visits)
    active.discard(id(stub))


def _entries(container: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(container, Stub):
        container = container.dictitems
    if isinstance(container, Mapping):
        for key, value in container.items():
            if not isinstance(key, str):
                raise UnsupportedError(f"A pickled module names an entry with a {type(key).__name__}, not a string.")
            yield key, value
