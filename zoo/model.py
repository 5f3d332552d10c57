"""`Model`: an `nn.Module` with its spec, labels, preprocessing and device, and a task that predicts."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import RandomWeightsWarning
from zoo.specs import ImagePreprocess, ModelSpec

if TYPE_CHECKING:
    import torch

    from zoo.evaluate.classification import ClassificationEvaluation
    from zoo.evaluate.detection import DetectionEvaluation
    from zoo.hub_upload import HubUpload
    from zoo.tasks.base import Task
    from zoo.train.history import History

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
        weights_sha256: sha256 of the weights file loaded, or None. It is always a hash zoo computed and
            checked itself: for a catalog model, when the file entered the cache (the download, import or
            conversion hashed the bytes it wrote and held them to the published hash or pin) or, with
            `zoo.load(..., verify=True)` / `ZOO_VERIFY=1`, again at this load; for a file in
            `ZOO_WEIGHTS_PATH`, at this load. A checkpoint loaded by path keeps the hash of the weights it
            was trained from, as its metadata records it (provenance, not a hash of the checkpoint file).
        training_summary: what training produced these weights (set by `finetune`, kept by `save`), or None.
        history: per-epoch metrics of the last `finetune` (a `zoo.train.History`), or None.
        random_init: True when the module was built without weights (no weights tag, or `name:none`);
            `predict` then warns once (`RandomWeightsWarning`) until the model is fine-tuned.
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
        self.training_summary: dict[str, Any] | None = None
        self.history: History | None = None
        self.random_init = False
        self._warned_random = False
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
        `top_k=5`, `batch_size=32`, `preprocess=True` (False: the tensor is already model input),
        `amp` (bf16 autocast, default on CUDA) and `on_error` (None, "raise" or "skip": unreadable files of a
        folder or glob are skipped by default and listed in the returned `ResultList.skipped`). See the
        task's documentation for others.

        A model loaded without weights warns once (`zoo.RandomWeightsWarning`): its answers mean nothing.
        """
        task = self.task
        if self.random_init and self.training_summary is None and task.warns_random_weights and not self._warned_random:
            self._warned_random = True
            warnings.warn(RandomWeightsWarning(self._random_message()), stacklevel=2)
        return task.predict(inputs, **options)

    def _random_message(self) -> str:
        tags = ", ".join(f"{self.spec.name}:{t}" for t in self.spec.weights)
        hint = (
            f"load pretrained weights ({tags}) or fine-tune it"
            if tags
            else "fine-tune it (it has no pretrained weights)"
        )
        return f"{self.spec.name} has random weights (loaded without weights): its predictions mean nothing; {hint}."

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as a self-describing safetensors checkpoint that `zoo.load(path)` restores.

        The header records the model name, plugin, builder arguments, labels, preprocessing, task, the
        base weights tag and sha256, the training summary and the zoo / torch versions. The write is
        atomic; an existing file is replaced only if it is a safetensors file.

        Args:
            path: a `.safetensors` file, or a folder (no suffix, or an existing folder) that receives
                `model.safetensors` + `config.json` in huggingface_hub's `PyTorchModelHubMixin` layout.

        Returns:
            The path written.

        Raises:
            InputError: `path` names a pickle or an existing file of another kind.
            ZooError: a builder argument is not a JSON value.
        """
        from zoo.checkpoint import save_model

        return save_model(self, path)

    def finetune(self, train: Any = None, val: Any = None, **options: Any) -> Model:
        """Fine-tune on `train` (validating on `val`) and return this model, trained, with `history` set.

        Chainable: `zoo.load("resnet18").finetune("data/", epochs=3).save("out.safetensors")`. The head is
        replaced when the data has another number of classes. See `zoo.train.finetune` for the data
        kinds and every option (`epochs`, `lr`, `batch_size`, `strategy`, `out`, `resume`, `seed`, ...).
        A task with a trainer of its own (a `finetune` method: ultralytics models,
        `finetune(data="data.yaml", epochs=3, imgsz=640)`) trains its way instead.
        """
        custom = getattr(self.task, "finetune", None)
        if custom is not None:
            return custom(train, val, **options)
        from zoo.train import finetune

        return finetune(self, train, val, **options)

    def evaluate(self, data: Any, **options: Any) -> ClassificationEvaluation | DetectionEvaluation:
        """Measure this model on labelled `data` through `predict` (same preprocessing) and return the result.

        An image classifier on an ImageFolder gives a `ClassificationEvaluation` (top-1, top-5, per-class
        precision / recall / F1, confusion matrix; `.save(folder)` writes `confusion_matrix.png`). Options:
        `batch_size`, `amp`. A detector on a COCO-json file or a YOLO folder gives a `DetectionEvaluation`
        (COCO mAP@[.5:.95], mAP@.5, per-class AP). See `zoo.evaluate.evaluate`.
        """
        from zoo.evaluate import evaluate

        return evaluate(self, data, **options)

    def push_to_hub(self, repo_id: str, **options: Any) -> HubUpload:
        """Upload this model to Hugging Face Hub repo `repo_id` as a zoo checkpoint folder with a model card.

        `zoo.load("hf:" + repo_id)` loads it back. Options: `token`, `private`, `revision`,
        `commit_message`, `create_pr`; see `zoo.hub_upload.push_to_hub`. Needs `zoo-sdk[hf]`.
        """
        from zoo.hub_upload import push_to_hub

        return push_to_hub(self, repo_id, **options)

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the module."""
        return sum(p.numel() for p in self.module.parameters())

    def __repr__(self) -> str:
        return f"Model({self.name!r}, task={self.spec.task!r}, plugin={self.spec.plugin!r}, device='{self._device}')"
