"""`Model`: an `nn.Module` with its spec, labels, preprocessing and device, and a task that predicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from zoo.specs import ImagePreprocess, ModelSpec

if TYPE_CHECKING:
    import torch

    from zoo.tasks.base import Task

__all__ = ["Model"]


class Model:
    """A loaded model. `model(x)` is the raw forward; `model.predict(inputs)` runs the whole task.

    Attributes:
        module: the `torch.nn.Module`.
        spec: the `ModelSpec` it was built from.
        weights: the weights tag loaded, or None for random init.
        labels: class labels, or None.
        preprocess: input preprocessing as data, or None.
        builder_kwargs: the arguments the builder was called with.
        weights_sha256: sha256 of the weights file loaded, or None.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        *,
        weights: str | None,
        device: torch.device,
        labels: tuple[str, ...] | None = None,
        preprocess: ImagePreprocess | None = None,
        builder_kwargs: Mapping[str, Any] | None = None,
        weights_sha256: str | None = None,
    ) -> None:
        self.module = module
        self.spec = spec
        self.weights = weights
        self.labels = labels
        self.preprocess = preprocess
        self.builder_kwargs = dict(builder_kwargs or {})
        self.weights_sha256 = weights_sha256
        self._device = device
        self._task: Task | None = None

    @property
    def name(self) -> str:
        """The model's name with its weights tag (`resnet18:IMAGENET1K_V1`)."""
        return f"{self.spec.name}:{self.weights or 'none'}"

    @property
    def task(self) -> Task:
        """The task object that implements `predict` for this model."""
        if self._task is None:
            from zoo.tasks import task_for

            self._task = task_for(self)
        return self._task

    @property
    def device(self) -> torch.device:
        """The device the module is on."""
        return self._device

    def to(self, device: str | torch.device) -> Model:
        """Move the module to another device ("auto", "cpu", "cuda:1", ...); returns self."""
        from zoo.device import resolve_device

        self._device = resolve_device(device)
        self.module.to(self._device)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The module's raw forward."""
        return self.module(*args, **kwargs)

    def predict(self, inputs: Any, **options: Any) -> Any:
        """Run the task on `inputs` and return its results; a list in gives a list out.

        For image classification: `inputs` is a path, folder, glob, bytes, PIL image, numpy HWC uint8
        array, tensor (CHW or NCHW; uint8, or float in [0, 1]), or a list of those; options are
        `top_k=5`, `batch_size=32`, `preprocess=True` (False: the tensor is already model input) and
        `amp` (bf16 autocast, default on CUDA). See the task's documentation for others.
        """
        return self.task.predict(inputs, **options)

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the module."""
        return sum(p.numel() for p in self.module.parameters())

    def __repr__(self) -> str:
        return f"Model({self.name!r}, task={self.spec.task!r}, plugin={self.spec.plugin!r}, device='{self._device}')"
