"""`Stub`: the inert stand-in the safe reader makes for every class or function it does not trust."""

from __future__ import annotations

from typing import Any

__all__ = ["Stub"]


class Stub:
    """An inert stand-in for an object of a class (or a function) the safe reader does not trust.

    Nothing of the original runs: the stand-in records what the pickle says about the object.
    `isinstance(x, Stub)` tells stand-ins apart; a pickled class reference is a `Stub` subclass.

    Attributes:
        qualname: dotted name of the class or function (`models.yolo.DetectionModel`, `posix.system`).
        args: positional arguments of its construction (pickle REDUCE / NEWOBJ).
        kwargs: keyword arguments of its construction (NEWOBJ_EX), usually empty.
        state: its pickled state (BUILD), e.g. an `nn.Module`'s `__dict__`; None when there is none.
            A `(dict, slots)` pair is merged into one dict.
        items: items appended or added (APPENDS, ADDITEMS), for list- or set-like classes.
        dictitems: items set (SETITEMS), for dict-like classes.
    """

    qualname: str = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: list[Any]
    dictitems: dict[Any, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        self = object.__new__(cls)
        self.qualname = cls.qualname
        self.args = args
        self.kwargs = kwargs
        self.state = None
        self.items = []
        self.dictitems = {}
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # everything was recorded by __new__; nothing else may run

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] if isinstance(state[0], dict) else {}), **state[1]}
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def add(self, item: Any) -> None:
        self.items.append(item)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dictitems[key] = value

    def __repr__(self) -> str:
        return f"<Stub {self.qualname}>"
