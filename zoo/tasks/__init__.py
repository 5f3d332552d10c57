"""Tasks: each turns inputs into results for one kind of model (`image-classification`, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.tasks.base import Task, TaskCapabilities

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["Task", "TaskCapabilities", "task_for"]


def task_for(model: Model) -> Task:
    """Instantiate the task that implements `model.spec.task`."""
    from zoo.registry import get_registry

    return get_registry().task_class(model.spec.task, model.spec.plugin)(model)
