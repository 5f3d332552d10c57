"""The ultralytics tasks: zoo decodes the inputs, ultralytics' own predictor letterboxes, runs and post-processes.

One class serves the five ultralytics tasks (detect, segment, classify, pose, obb), so boxes, masks and
keypoints match what `ultralytics.YOLO(...).predict` gives for the same weights. The predictor runs a
fused copy of the module (ultralytics fuses Conv+BN on its own copy), rebuilt when the weights change;
nothing is written anywhere (`save=False`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import InputError, ResultStream, Task, TaskCapabilities, UnsupportedError
from zoo.ext import atomic_path, collect_images, decode
from zoo_yolo.build import Arch

if TYPE_CHECKING:
    import numpy as np

    from zoo import Classification, Model
    from zoo_yolo.results import YoloDetections

__all__ = ["HUB_PIPELINES", "UltralyticsTask"]

#: The Hugging Face Hub pipeline tag of each zoo task this class serves (pose and obb have none).
HUB_PIPELINES = {
    "object-detection": "object-detection",
    "instance-segmentation": "image-segmentation",
    "image-classification": "image-classification",
}


class UltralyticsTask(Task):
    """Predict (and fine-tune) with an ultralytics model, through ultralytics' predictor and trainer."""

    name = "ultralytics"
    finetunes = True  # with ultralytics' own trainer (`finetune` below)
    exports_itself = True  # with ultralytics' own exporter (`export` below)
    evaluates = True  # ultralytics' validator scores each epoch

    @classmethod
    def capabilities(cls, task: str | None = None) -> TaskCapabilities:
        """The declared capabilities, with the Hub pipeline tag of the ultralytics task served as `task`."""
        return replace(super().capabilities(task), hub_pipeline=HUB_PIPELINES.get(task or ""))

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        meta = model.spec.meta
        self.arch = Arch(cfg=meta["yaml"], scale=meta["scale"], task=meta["ultralytics_task"], family=meta["family"])
        self._predictor: Any = None
        self._key: tuple[Any, ...] | None = None

    def predict(
        self,
        inputs: Any,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        size: int | None = None,
        classes: Sequence[int] | None = None,
        max_det: int = 300,
        agnostic: bool = False,
        batch_size: int = 16,
        top_k: int = 5,
        stream: bool = False,
    ) -> YoloDetections | Classification | list[Any] | ResultStream:
        """Detect (segment, estimate poses, classify) objects in images.

        Args:
            inputs: a path, folder, glob, bytes, PIL image, numpy HWC uint8 RGB array, tensor, or a list.
            conf: minimum score of a box.
            iou: IoU above which NMS drops the lower-scored of two boxes.
            size: inference size (longer side; default 640, 224 for classifiers).
            classes: keep only these class ids.
            max_det: at most this many boxes per image.
            agnostic: NMS across classes.
            batch_size: images per forward pass.
            top_k: classes kept per image by a classifier.
            stream: return a `zoo.ResultStream` (an iterator in input order) that decodes and runs one
                batch at a time, so memory does not grow with the number of inputs.

        Returns:
            `YoloDetections` (a zoo `Detections` with masks / keypoints / oriented boxes) or, for a
            classifier, `Classification`; a list for list-like inputs; a `ResultStream` with `stream=True`.
        """
        if not 0 <= conf <= 1 or not 0 <= iou <= 1 or max_det < 1 or batch_size < 1 or top_k < 1:
            raise InputError("conf and iou must be in [0, 1]; max_det, batch_size and top_k at least 1.")
        from zoo_yolo.results import to_zoo
        from zoo_yolo.runtime import quiet

        items, is_batch = collect_images(inputs)
        predictor = self.predictor()
        args = predictor.args
        args.conf, args.iou, args.max_det, args.agnostic_nms = conf, iou, max_det, agnostic
        args.classes = list(classes) if classes is not None else None
        args.imgsz = int(size or self.model.spec.meta.get("image_size", 640))
        args.batch = batch_size
        labels = self.model.labels

        def events() -> Iterator[Any]:
            iterator = iter(items)
            while chunk := list(islice(iterator, batch_size)):  # decoded a batch at a time
                images = [_rgb(decode(item, 3)) for item in chunk]
                results: list[Any] = [None] * len(images)
                for group in _same_shape_chunks(images, batch_size):  # each photo letterboxed as if alone: rect
                    with quiet():  # ultralytics wants BGR arrays
                        found = predictor(source=[images[i][:, :, ::-1] for i in group], stream=False)
                    for i, result in zip(group, found):
                        results[i] = to_zoo(result, labels=labels, source=chunk[i].source, image=images[i], top_k=top_k)
                yield results

        if stream:
            return ResultStream(events(), len(items))
        results = [result for batch in events() for result in batch]
        return results if is_batch else results[0]

    def predictor(self) -> Any:
        """ultralytics' predictor for this model, set up on a fused copy of the current weights."""
        module = self.model.module
        key = (id(module), str(self.model.device), tuple((id(t), t._version) for t in _tensors(module)))
        if self._predictor is None or key != self._key:
            from zoo_yolo.build import task_classes
            from zoo_yolo.runtime import quiet

            cls = task_classes(self.arch)["predictor"]
            # rect: letterbox to the smallest stride-multiple rectangle, as `YOLO.predict` does, not to a square
            overrides = {"task": self.arch.task, "mode": "predict", "save": False, "verbose": False, "rect": True,
                         "device": str(self.model.device), "retina_masks": True}  # fmt: skip
            predictor = cls(overrides=overrides)
            labels = self.model.labels or ()
            module.names = {i: labels[i] if i < len(labels) else str(i) for i in range(_num_classes(module))}
            with quiet():
                predictor.setup_model(module, verbose=False)
            self._predictor, self._key = predictor, key
        return self._predictor

    def export(self, path: Path, format: str, *, dynamic_batch: bool, opset: int | None) -> Path:
        """ONNX through ultralytics' own exporter (`YOLO(...).export`), from a private copy of the module.

        The file is ultralytics' (its metadata, its raw head output): run it with `YOLO("m.onnx")` or
        onnxruntime; `zoo.load` does not run it (it holds no zoo metadata). `onnxslim` simplification is off,
        so nothing is installed.

        Raises:
            UnsupportedError: a format other than onnx, or ultralytics' exporter failed (its first line).
        """
        import contextlib
        import copy
        import io
        import shutil
        import tempfile

        import torch

        from zoo_yolo.runtime import ultralytics_module

        if format != "onnx":
            raise UnsupportedError(f"{self.model.spec.name} is an ultralytics model: zoo exports it to onnx only.")
        yolo = ultralytics_module().YOLO
        options: dict[str, Any] = {"format": "onnx", "simplify": False, "dynamic": dynamic_batch, "device": "cpu"}
        options["imgsz"] = int(self.model.spec.meta.get("image_size") or 640)
        if opset is not None:
            options["opset"] = opset
        with tempfile.TemporaryDirectory(prefix="zoo-export-") as folder:
            weights = Path(folder) / f"{self.model.spec.name}.pt"
            torch.save({"model": copy.deepcopy(self.model.module).to("cpu").float(), "train_args": {}}, weights)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    written = yolo(str(weights)).export(**options)
            except Exception as exc:  # ultralytics raises many kinds
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UnsupportedError(f"ultralytics cannot export {self.model.spec.name}: {first}") from exc
            with atomic_path(path) as tmp:
                shutil.copyfile(str(written), tmp)
        return path

    def finetune(self, train: Any = None, val: Any = None, *, data: Any = None, **options: Any) -> Model:
        """Train with ultralytics' trainer (see `zoo_yolo.train.finetune`); returns the model, trained.

        `model.finetune(data="data.yaml", epochs=3, imgsz=640)`; the data can also come first, positionally.
        """
        from zoo_yolo.train import finetune

        if val is not None:
            raise InputError("ultralytics reads the validation split from data.yaml (its `val:` entry): drop val=.")
        if train is not None and data is not None:
            raise InputError("Pass the dataset once: finetune(data='data.yaml', ...).")
        return finetune(self.model, data if data is not None else train, **options)


def _same_shape_chunks(images: Sequence[np.ndarray], size: int) -> list[list[int]]:
    """Indices of `images` in chunks of at most `size` images of one shape, in input order within a shape.

    ultralytics letterboxes a batch of one shape to the smallest stride-multiple rectangle (`rect`), but a
    batch of mixed shapes to a square: grouping by shape gives every photo the boxes `YOLO.predict` gives
    it alone, whatever it is batched with.
    """
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(tuple(image.shape), []).append(i)
    return [group[j : j + size] for group in by_shape.values() for j in range(0, len(group), size)]


def _tensors(module: Any) -> Any:
    return chain(module.parameters(), module.buffers())


def _num_classes(module: Any) -> int:
    yaml = getattr(module, "yaml", None) or {}
    return int(yaml.get("nc", len(getattr(module, "names", {}) or {})))


def _rgb(image: Any) -> np.ndarray:
    """A decoded CHW tensor (uint8, or float in [0, 1]) as a contiguous uint8 HWC RGB array."""
    if image.is_floating_point():
        image = image.mul(255).round().clamp(0, 255).byte()
    return image.permute(1, 2, 0).contiguous().cpu().numpy()
