"""Tasks: each turns inputs into results for one kind of model (`image-classification`, ...)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from zoo.errors import PluginError
from zoo.tasks.base import Task

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["Task", "task_for"]


def task_for(model: Model) -> Task:
    """Instantiate the task that implements `model.spec.task`."""
    from zoo.registry import get_registry

    target = get_registry().task_target(model.spec.task, model.spec.plugin)
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"Task {model.spec.task!r} cannot be imported from {target!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise PluginError(f"Task {model.spec.task!r} at {target!r} is not a zoo Task subclass.")
    return cls(model)
