"""`Task`: the base class of everything `Model.predict` delegates to, and the capabilities it declares."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from zoo.errors import InputError, PluginError, UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

    from zoo.model import Model

__all__ = ["CAPABILITIES", "Task", "TaskCapabilities"]

#: The capability names a `TaskCapabilities` answers for (`TaskCapabilities.has`).
CAPABILITIES = ("predict", "finetune", "evaluate", "plot", "head")


@dataclass(frozen=True)
class TaskCapabilities:
    """What a task can do, as its class declares it: read without building a model (`zoo.capabilities(name)`).

    Attributes:
        task: the task name (`image-classification`, ...).
        predict: `Model.predict` and `zoo predict` run it.
        finetune: `Model.finetune` and `zoo finetune` train it (zoo's classifier loop, or the task's own trainer).
        evaluate: labelled data scores it (loss and top-1 on a validation split).
        plot: results have `plot()` and `save()` (`zoo predict --save`); None when unknown.
        head: it classifies through a head that zoo swaps for a new label set (`num_classes=` on pretrained
            weights, fine-tuning on data with another class count).
        options: the keyword options `predict` takes; None when read from its signature.
        hub_pipeline: the Hugging Face Hub `pipeline_tag` its models' cards carry, or None.
    """

    task: str
    predict: bool = True
    finetune: bool = False
    evaluate: bool = False
    plot: bool | None = None
    head: bool = False
    options: frozenset[str] | None = None
    hub_pipeline: str | None = None

    def has(self, capability: str) -> bool:
        """Whether the task declares `capability` (one of `CAPABILITIES`; `plot` must be True, not unknown)."""
        if capability not in CAPABILITIES:
            raise InputError(f"unknown capability {capability!r}: one of {', '.join(CAPABILITIES)}")
        return getattr(self, capability) is True

    def require(self, capability: str, model: str) -> None:
        """Raise `UnsupportedError` naming `capability` when the task does not declare it.

        Args:
            capability: one of `CAPABILITIES`.
            model: the model's name, for the message.
        """
        if not self.has(capability):
            raise UnsupportedError(
                f"{model} ({self.task or 'no task'}): its task declares no {capability!r} capability; "
                f"{_HINTS[capability]}"
            )


_HINTS = {
    "predict": "it cannot run on inputs.",
    "finetune": "zoo cannot fine-tune it; choose a model whose task can (zoo list --task image-classification).",
    "evaluate": "zoo cannot score it on labelled data.",
    "plot": "its results are not pictures.",
    "head": "zoo swaps and trains classifier heads only.",
}


class Task:
    """Turns inputs into results for one kind of model.

    A task owns input decoding, preprocessing, the forward pass and postprocessing. Subclasses set
    `name`, declare what they can do in the class attributes below, and implement `predict` (and
    `finetune`, for a task that trains its own way); plugins add tasks with
    `Plugin.task(name, "module:Class")`. Nothing in zoo guesses a capability from a task's name:
    `capabilities()` is what the API, the CLI and the Hub upload read.

    Attributes:
        options: the keyword options `predict` takes; `zoo predict` refuses a flag whose option is not
            here. None (the default) reads them from `predict`'s signature.
        plots: True when results have `plot()` and `save()` (`zoo predict --save`); None when unknown.
        warns_random_weights: True when `predict` warns (`RandomWeightsWarning`) for a model loaded without
            weights; tasks that only run a module's raw forward leave it False.
        predicts: `predict` runs the model (True unless a task only trains or exports).
        finetunes: `Model.finetune` / `zoo finetune` train it: by zoo's classifier loop when `swaps_head`, by
            zoo's detection loop when `swaps_box_predictor`, else by the task's own `finetune` method, which it
            must then override.
        evaluates: labelled data scores it (`Model.evaluate`, `zoo eval`; validation during fine-tuning).
        swaps_head: it classifies through a head (found from `ModelSpec.head`) that zoo replaces for a
            new label set: `num_classes=` on pretrained weights, or training data with another class count.
        swaps_box_predictor: it detects with a torchvision detector whose class predictor zoo's detection loop
            replaces for a dataset's classes (`zoo.train.detection`, COCO-json or YOLO-format boxes).
        hub_pipeline: the Hugging Face Hub `pipeline_tag` of its models' cards (`image-classification`),
            or None for none.
        exports_itself: `Model.export` calls the task's own `export` (the backend's exporter) instead of
            zoo's ONNX / torch.export / TorchScript writers.
    """

    name: ClassVar[str] = ""
    options: ClassVar[frozenset[str] | None] = None
    plots: ClassVar[bool | None] = None
    warns_random_weights: ClassVar[bool] = False
    predicts: ClassVar[bool] = True
    finetunes: ClassVar[bool] = False
    evaluates: ClassVar[bool] = False
    swaps_head: ClassVar[bool] = False
    swaps_box_predictor: ClassVar[bool] = False
    hub_pipeline: ClassVar[str | None] = None
    exports_itself: ClassVar[bool] = False

    def __init__(self, model: Model) -> None:
        self.model = model

    @classmethod
    def capabilities(cls, task: str | None = None) -> TaskCapabilities:
        """What this task class declares, as a frozen value (no model needed).

        A class that serves several task names may override this to answer per name.

        Args:
            task: the task name it serves; default: its `name`.
        """
        return TaskCapabilities(
            task=task or cls.name,
            predict=cls.predicts,
            finetune=cls.finetunes,
            evaluate=cls.evaluates,
            plot=cls.plots,
            head=cls.swaps_head,
            options=cls.options,
            hub_pipeline=cls.hub_pipeline,
        )

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

    def export(self, path: Path, format: str, *, dynamic_batch: bool, opset: int | None) -> Path:
        """Write the model to `path` with the backend's own exporter; what `Model.export` calls when the task
        declares `exports_itself = True` (ultralytics models). Other tasks are exported by zoo (`zoo.export`).

        Raises:
            UnsupportedError: the task has no exporter of its own.
        """
        raise UnsupportedError(f"Task {type(self).__name__} has no exporter of its own: zoo.export exports it.")

    def finetune(self, train: Any = None, val: Any = None, **options: Any) -> Model:
        """Train the model on `train` (validating on `val`) its own way; what `Model.finetune` calls when overridden.

        A task that trains its own way (ultralytics) sets `finetunes = True` and overrides this. A task that
        `swaps_head` and does not override it is trained by zoo's classifier loop (`zoo.train.finetune`), which
        `Model.finetune` runs itself (tasks sit below the training code and never import it).

        Raises:
            UnsupportedError: the task declares no `finetune` capability.
            PluginError: it declares one but neither swaps a head nor overrides this method.
        """
        self.capabilities(self.model.spec.task).require("finetune", self.model.name)
        raise PluginError(
            f"Task {type(self).__name__} declares finetunes = True but has no trainer: set swaps_head = True "
            f"(zoo's classifier loop), swaps_box_predictor = True (its detection loop) or override Task.finetune."
        )
