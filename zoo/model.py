"""`Model`: an `nn.Module` with its spec, device and `ModelInfo`, and a task that predicts."""

from __future__ import annotations

import dataclasses
import errno
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._frozen import freeze
from zoo.errors import InputError, RandomWeightsWarning, UnsupportedError, ZooError
from zoo.specs import ImagePreprocess, ModelSpec

if TYPE_CHECKING:
    import torch

    from zoo.evaluate.classification import ClassificationEvaluation
    from zoo.evaluate.detection import DetectionEvaluation
    from zoo.evaluate.segmentation import SegmentationEvaluation
    from zoo.hub_upload import HubUpload
    from zoo.tasks.base import Task
    from zoo.train.history import History

__all__ = ["Model", "ModelInfo"]


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is, beside its module: one frozen value, replaced whole (`Model.replace_info`).

    `Model.save` writes it into the checkpoint and `zoo.load(path)` reads it back. Dicts and lists inside
    `builder_kwargs` and `training` are read-only copies (they still compare, and `json.dumps`, as plain ones).

    Attributes:
        weights: the weights tag loaded, or None for random init.
        labels: class labels, or None.
        preprocess: input preprocessing as data, or None.
        builder_kwargs: the arguments the builder was called with.
        weights_sha256: sha256 of the weights file loaded, or None (see `Model.weights_sha256`).
        training: what training produced these weights (set by `finetune`, kept by `save`), or None.
        random_init: True when the module was built without weights; `predict` then warns once
            (`RandomWeightsWarning`) until the model is trained.
    """

    weights: str | None = None
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    training: Mapping[str, Any] | None = None
    random_init: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "builder_kwargs", freeze(dict(self.builder_kwargs or {})))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        if self.training is not None:
            object.__setattr__(self, "training", freeze(self.training))
        object.__setattr__(self, "random_init", bool(self.random_init))

    def replace(self, **changes: Any) -> ModelInfo:
        """A copy with `changes` applied (`dataclasses.replace`); this value is left as it is."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_spec(
        cls, spec: ModelSpec, weights: str | None = None, *, builder_kwargs: Mapping[str, Any] | None = None
    ) -> ModelInfo:
        """What `spec` built with the weights tag `weights` (None: random init) and `builder_kwargs` is.

        Labels and preprocessing are the weights' (else the spec's); `random_init` is set when no weights
        are loaded and the builder loads none itself (`spec.meta["weights_in_builder"]`); a weights entry
        that records its training (a fine-tuned checkpoint on the Hub) gives `training`.
        """
        declared = spec.weights.get(weights) if weights is not None else None
        training = declared.meta.get("training") if declared is not None else None
        return cls(
            weights=weights,
            labels=spec.labels_for(weights),
            preprocess=spec.preprocess_for(weights),
            builder_kwargs=builder_kwargs or {},
            training=dict(training) if training else None,
            random_init=weights is None and not spec.meta.get("weights_in_builder"),
        )


#: errno values of a save to a path that cannot be written (a full disk is a `DiskFullError` already).
_UNWRITABLE = frozenset(
    {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT}
)


class Model:
    """A loaded model. `model(x)` is the raw forward; `model.predict(inputs)` runs the whole task.

    Built by `zoo.build.build_model` (what `zoo.load` and plugin formats call), not by hand.

    Attributes:
        module: the `torch.nn.Module`.
        spec: the `ModelSpec` it was built from.
        info: what the model is (`ModelInfo`: weights tag and hash, labels, preprocessing, builder
            arguments, training summary), one frozen value; `replace_info` swaps it for a new one.
        history: per-epoch metrics of the last `finetune` (a `zoo.train.History`), or None.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        spec: ModelSpec,
        *,
        info: ModelInfo | None = None,
        device: torch.device,
    ) -> None:
        self.module = module
        self.spec = spec
        self._info = info if info is not None else ModelInfo.for_spec(spec)
        self.history: History | None = None
        self._warned_random = False
        self._device = device
        self._task: Task | None = None

    @property
    def info(self) -> ModelInfo:
        """What the model is, as one frozen `ModelInfo` (read-only: see `replace_info`)."""
        return self._info

    def replace_info(self, **changes: Any) -> ModelInfo:
        """Give the model a new `ModelInfo`, `self.info.replace(**changes)`, and return it.

        The one way a model's description changes (training sets `training`, `labels`, `builder_kwargs`
        and `preprocess` this way); the previous value is left as it was, so a caller holding it keeps it.
        """
        self._info = self._info.replace(**changes)
        return self._info

    @property
    def weights(self) -> str | None:
        """The weights tag loaded, or None for random init (`info.weights`)."""
        return self._info.weights

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class labels, or None (`info.labels`)."""
        return self._info.labels

    @property
    def preprocess(self) -> ImagePreprocess | None:
        """Input preprocessing as data, or None (`info.preprocess`)."""
        return self._info.preprocess

    @property
    def builder_kwargs(self) -> Mapping[str, Any]:
        """The arguments the builder was called with, read-only (`info.builder_kwargs`)."""
        return self._info.builder_kwargs

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the weights file loaded, or None (`info.weights_sha256`).

        It is always a hash zoo computed and checked itself: for a catalog model, when the file entered the
        cache (the download, import or conversion hashed the bytes it wrote and held them to the published
        hash or pin) or, with `zoo.load(..., verify=True)` / `ZOO_VERIFY=1`, again at this load; for a file
        in `ZOO_WEIGHTS_PATH`, at this load. A checkpoint loaded by path keeps the hash of the weights it
        was trained from, as its metadata records it (provenance, not a hash of the checkpoint file).
        """
        return self._info.weights_sha256

    @property
    def training_summary(self) -> Mapping[str, Any] | None:
        """What training produced these weights (set by `finetune`, kept by `save`), or None (`info.training`)."""
        return self._info.training

    @property
    def random_init(self) -> bool:
        """True when the module was built without weights (no weights tag, or `name:none`) (`info.random_init`).

        `predict` then warns once (`RandomWeightsWarning`) until the model is fine-tuned.
        """
        return self._info.random_init

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
        """Move the module to another device ("auto", "cpu", "cuda:1", ...); returns self.

        Raises:
            UnsupportedError: the device is not available, or a quantized (int8) model, which runs on the CPU
                only ("auto" gives it the CPU), is asked onto another device.
        """
        from zoo.checkpoint.quantized import device_for, is_quantized_module
        from zoo.device import resolve_device

        target = resolve_device(device)
        if target.type != "cpu":  # a quantized module runs on the CPU only
            target = device_for(self.name, is_quantized_module(self.module), device, target)
        self._device = target
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
        from zoo.arguments import check_options

        check_options(task.predict, options, what=f"{self.spec.task} predict")
        return task.predict(inputs, **options)

    def _random_message(self) -> str:
        tags = ", ".join(f"{self.spec.name}:{t}" for t in self.spec.weights)
        hint = (
            f"load pretrained weights ({tags}) or fine-tune it"
            if tags
            else "fine-tune it (it has no pretrained weights)"
        )
        return f"{self.spec.name} has random weights (loaded without weights): its predictions mean nothing; {hint}."

    def _require_weights(self, action: str) -> None:
        """Refuse `action` on a model loaded from an exported graph (`.onnx`, `.pt2`): it has no weights to use."""
        exported = self.spec.meta.get("exported")
        if exported:
            raise UnsupportedError(
                f"{self.name} was loaded from an exported {exported} graph ({self.spec.meta.get('path')}), which "
                f"can only predict: {action} the original model instead (zoo.load({self.spec.name!r}) or its "
                "safetensors checkpoint)."
            )

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
        from zoo.checkpoint import save_checkpoint

        self._require_weights("save")
        try:
            return save_checkpoint(path, spec=self.spec, info=self.info, state_dict=self.module.state_dict())
        except OSError as exc:
            if isinstance(exc, ZooError) or exc.errno not in _UNWRITABLE:
                raise
            raise InputError(
                f"Cannot write {os.fspath(path)}: {exc.strerror} ({exc.filename}). Save to a folder you can write.",
                path=path,
            ) from None

    def export(
        self,
        path: str | os.PathLike[str],
        format: str = "onnx",
        *,
        dynamic_batch: bool = True,
        opset: int | None = None,
        include_preprocess: bool = False,
        exporter: str = "auto",
    ) -> Path:
        """Export the model's graph with zoo's metadata (labels, preprocessing, task, weights sha256) inside.

        `zoo.load(path)` runs an `.onnx` (through onnxruntime, `zoo-sdk[onnx]`) or `.pt2` file with the same
        `predict` and results; `zoo.export.check_export(model, path, images)` measures the parity.

        Args:
            path: the file to write (`model.onnx`, `model.pt2`, `model.torchscript`).
            format: "onnx", "torch.export" (.pt2) or "torchscript".
            dynamic_batch: any batch size (else the graph takes batches of 1, the example's).
            opset: ONNX opset; default the exporter's.
            include_preprocess: the graph normalizes by itself: it takes RGB in [0, 1], resized and cropped.
            exporter: ONNX only: "dynamo" (`torch.export`-based), "torchscript" (tracing) or "auto"
                (dynamo, then tracing when dynamo cannot capture the model).

        Returns:
            The path written.

        Raises:
            UnsupportedError: the model cannot be exported (its task, or code the exporter cannot capture).
            InputError: an unknown format or exporter, a bad opset, or a folder as `path`.
        """
        from zoo.export.exporters import export_model

        self._require_weights("export")
        return export_model(
            self, path, format, dynamic_batch=dynamic_batch, opset=opset, include_preprocess=include_preprocess,
            exporter=exporter,
        )  # fmt: skip

    def finetune(self, train: Any = None, val: Any = None, **options: Any) -> Model:
        """Fine-tune on `train` (validating on `val`) and return this model, trained, with `history` set.

        Chainable: `zoo.load("resnet18").finetune("data/", epochs=3).save("out.safetensors")`. The head is
        replaced when the data has another number of classes. See `zoo.train.finetune` for the data
        kinds and every option (`epochs`, `lr`, `batch_size`, `strategy`, `out`, `resume`, `seed`, ...).
        The task's declared hook (`Task.finetune`) does the training: a task with a trainer of its own
        (ultralytics models, `finetune(data="data.yaml", epochs=3, imgsz=640)`) trains its way instead; a
        torchvision detector trains on a COCO-json file or a YOLO folder (`zoo.train.detection`).

        Raises:
            UnsupportedError: the model's task declares no `finetune` capability.
        """
        from zoo.tasks.base import Task

        self._require_weights("finetune")
        task = self.task
        type(task).capabilities(self.spec.task).require("finetune", self.name)  # declared, never guessed
        if type(task).finetune is Task.finetune and task.swaps_head:  # no trainer of its own: zoo's classifier loop
            from zoo.train import finetune

            return finetune(self, train, val, **options)
        if type(task).finetune is Task.finetune and task.swaps_box_predictor:  # zoo's detection loop
            from zoo.train.detection import finetune_detection

            return finetune_detection(self, train, val, **options)
        return task.finetune(train, val, **options)

    def evaluate(
        self, data: Any, **options: Any
    ) -> ClassificationEvaluation | DetectionEvaluation | SegmentationEvaluation:
        """Measure this model on labelled `data` through `predict` (same preprocessing) and return the result.

        An image classifier on an ImageFolder gives a `ClassificationEvaluation` (top-1, top-5, per-class
        precision / recall / F1, confusion matrix; `.save(folder)` writes `confusion_matrix.png`). Options:
        `batch_size`, `amp`. A detector on a COCO-json file or a YOLO folder gives a `DetectionEvaluation`
        (COCO mAP@[.5:.95], mAP@.5, per-class AP). A semantic-segmentation model on a folder of images and
        class masks gives a `SegmentationEvaluation` (mIoU, per-class IoU, pixel accuracy, confusion matrix).
        See `zoo.evaluate.evaluate`.
        """
        from zoo.evaluate import evaluate

        type(self.task).capabilities(self.spec.task).require("evaluate", self.name)  # declared, never guessed
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
