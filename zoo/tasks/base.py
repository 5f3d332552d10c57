"""`Task`: the base class of everything `Model.predict` delegates to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["Task"]


class Task:
    """Turns inputs into results for one kind of model.

    A task owns input decoding, preprocessing, the forward pass and postprocessing. Subclasses set
    `name` and implement `predict`; plugins add tasks with `Plugin.task(name, "module:Class")`.
    """

    name: ClassVar[str] = ""

    def __init__(self, model: Model) -> None:
        self.model = model

    def predict(self, inputs: Any, **options: Any) -> Any:
        """Results for `inputs` (one result, or a list for list-like inputs).

        Subclasses spell out their options as keyword arguments of their own.
        """
        raise NotImplementedError
