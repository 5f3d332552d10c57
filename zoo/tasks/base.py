"""`Task`: the base class of everything `Model.predict` delegates to."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["Task"]


class Task:
    """Turns inputs into results for one kind of model.

    A task owns input decoding, preprocessing, the forward pass and postprocessing. Subclasses set
    `name` and implement `predict`; plugins add tasks with `Plugin.task(name, "module:Class")`.

    Attributes:
        options: the keyword options `predict` takes; `zoo predict` refuses a flag whose option is not
            here. None (the default) reads them from `predict`'s signature.
        plots: True when results have `plot()` and `save()` (`zoo predict --save`); None when unknown.
        warns_random_weights: True when `predict` warns (`RandomWeightsWarning`) for a model loaded without
            weights; tasks that only run a module's raw forward leave it False.
    """

    name: ClassVar[str] = ""
    options: ClassVar[frozenset[str] | None] = None
    plots: ClassVar[bool | None] = None
    warns_random_weights: ClassVar[bool] = False

    def __init__(self, model: Model) -> None:
        self.model = model

    def accepts(self, option: str) -> bool:
        """Whether `predict` takes the keyword option `option` (declared in `options`, else named in its signature)."""
        if self.options is not None:
            return option in self.options
        param = inspect.signature(self.predict).parameters.get(option)  # a named one: **kwargs may go to a module
        return param is not None and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)

    def predict(self, inputs: Any, **options: Any) -> Any:
        """Results for `inputs` (one result, or a list for list-like inputs).

        Subclasses spell out their options as keyword arguments of their own.
        """
        raise NotImplementedError
