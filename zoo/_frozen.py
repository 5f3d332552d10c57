"""Read-only dicts and lists for the JSON-like values held by frozen dataclasses (`zoo.model.ModelInfo`).

They subclass `dict` and `list`, so `json.dumps`, `==`, `dict(...)`, `isinstance(x, dict)` and pickling work
as on plain ones; every method that would change them raises `TypeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]


def _refuse(self: object, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only: build a new value (ModelInfo.replace) instead.")


class FrozenDict(dict):  # type: ignore[type-arg]
    """A `dict` that refuses changes."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return dict.__repr__(self)


class FrozenList(list):  # type: ignore[type-arg]
    """A `list` that refuses changes."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __repr__(self) -> str:
        return list.__repr__(self)


def freeze(value: Any) -> Any:
    """`value` with every dict (any `Mapping`) and list inside it made read-only; other values kept as they are."""
    if isinstance(value, Mapping):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):  # a namedtuple keeps its type
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable copy of a value `freeze` made (dicts and lists copied, other values shared)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(thaw(item) for item in value)
    return value
