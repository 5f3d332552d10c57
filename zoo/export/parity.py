"""`check_export`: run an exported file and the model it came from on the same images; compare the outputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, ZooError

if TYPE_CHECKING:
    import torch

    from zoo.model import Model

__all__ = ["DEFAULT_TOLERANCE", "Parity", "ParityError", "check_export"]

#: Largest max abs difference of the outputs accepted, by task (detection outputs are pixel coordinates).
DEFAULT_TOLERANCE = {"image-classification": 1e-4, "image-to-image": 1e-4, "object-detection": 1e-2}


class ParityError(ZooError):
    """An exported model's outputs differ from the original's by more than the tolerance."""


@dataclass(frozen=True)
class Parity:
    """How closely an exported model follows its original.

    Attributes:
        max_abs_diff: the largest absolute difference over every output value.
        tolerance: the largest difference accepted.
        inputs: the images compared (paths, or `<synthetic N>`).
        same_top1: classifiers: whether every image got the same top class (None for other tasks).
    """

    max_abs_diff: float
    tolerance: float
    inputs: tuple[str, ...]
    same_top1: bool | None = None

    @property
    def ok(self) -> bool:
        """True when the difference is within the tolerance (and classifiers agree on every top class)."""
        return self.max_abs_diff <= self.tolerance and self.same_top1 is not False


def check_export(
    model: Model,
    path: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]] = (),
    *,
    tolerance: float | None = None,
    raise_on_failure: bool = True,
) -> Parity:
    """Run `path` (written by `Model.export`) and `model` on the same inputs and compare their outputs.

    Args:
        model: the model that was exported.
        path: the exported file (.onnx, .pt2 or .torchscript).
        images: image files to compare on; none: three synthetic images (gradients and noise, seeded).
        tolerance: largest max abs difference accepted; default by task (`DEFAULT_TOLERANCE`).
        raise_on_failure: raise `ParityError` when the difference is above the tolerance.

    Raises:
        ParityError: the outputs differ by more than `tolerance` (with `raise_on_failure`).
    """
    import torch

    from zoo.export.exporters import graph_module
    from zoo.export.metadata import ExportInfo

    target = Path(path).expanduser()
    format = _format_of(target)
    limit = DEFAULT_TOLERANCE.get(model.spec.task, 1e-4) if tolerance is None else float(tolerance)
    from zoo.export.exporters import read_metadata_text

    if model.module.__class__.__module__.startswith("ultralytics"):
        return _check_ultralytics(model, target, images, limit, raise_on_failure)
    info = ExportInfo.from_json(read_metadata_text(target, format), source=str(target))
    batches, names = _inputs(model, info, images)
    reference_module = graph_module(model, info.include_preprocess)
    exported = _run_exported(target, format)
    diff, top1 = 0.0, None
    for batch in batches:
        with torch.inference_mode():
            reference = reference_module(batch).float()
            try:
                got = (
                    torch.cat([exported(batch[i : i + 1]) for i in range(batch.shape[0])])
                    if not info.dynamic_batch
                    else (exported(batch))
                )
            except Exception as exc:  # onnxruntime / torch.export raise their own kinds for a shape the graph fixed
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ParityError(
                    f"{target} cannot run an input of shape {tuple(batch.shape)} that {model.spec.name} takes: {first}"
                ) from exc
        got = got.float().cpu()
        if got.shape != reference.shape:
            raise ParityError(
                f"{target}: the exported output has shape {tuple(got.shape)}, the model's {tuple(reference.shape)}."
            )
        diff = max(diff, float((got - reference).abs().max()))
        if model.spec.task == "image-classification":
            top1 = bool(torch.equal(got.argmax(-1), reference.argmax(-1))) and top1 is not False
    parity = Parity(diff, limit, tuple(names), top1)
    if raise_on_failure and not parity.ok:
        raise ParityError(
            f"{target} differs from {model.spec.name}: max abs diff {diff:.3g} > tolerance {limit:.3g}"
            + ("" if top1 is not False else " and a different top class")
            + "; try another exporter or opset."
        )
    return parity


def _check_ultralytics(
    model: Model, target: Path, images: Sequence[str | os.PathLike[str]], limit: float, raise_on_failure: bool
) -> Parity:
    """An ultralytics ONNX file (no zoo metadata) against the module: the raw head output, letterboxed inputs."""
    import copy
    import types

    import numpy as np
    import onnxruntime as ort
    import torch

    size = int(model.spec.meta.get("image_size") or 640)
    info = types.SimpleNamespace(task="object-detection", preprocess=None, image_size=size, stride=32)
    batches, names = _inputs(model, info, images)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    module = model.module
    if next(module.parameters(), torch.empty(0)).device.type != "cpu":
        module = copy.deepcopy(module).to("cpu")
    module.eval()
    diff = 0.0
    for batch in batches:
        with torch.inference_mode():
            out = module(batch)
        reference = (out[0] if isinstance(out, (tuple, list)) else out).float().numpy()
        try:
            got = session.run(None, {name: np.ascontiguousarray(batch.numpy())})[0]
        except Exception as exc:  # onnxruntime's own kinds
            raise ParityError(f"{target} cannot run an input of shape {tuple(batch.shape)}: {exc}") from exc
        if got.shape != reference.shape:
            raise ParityError(f"{target}: output shape {got.shape}, the model's {reference.shape}.")
        diff = max(diff, float(np.abs(got - reference).max()))
    parity = Parity(diff, limit, tuple(names))
    if raise_on_failure and not parity.ok:
        raise ParityError(f"{target} differs from {model.spec.name}: max abs diff {diff:.3g} > tolerance {limit:.3g}.")
    return parity


def _format_of(path: Path) -> str:
    formats = {".onnx": "onnx", ".pt2": "torch.export", ".torchscript": "torchscript", ".pt": "torchscript"}
    try:
        return formats[path.suffix.lower()]
    except KeyError:
        raise InputError(
            f"{path}: cannot tell the export format from its suffix (.onnx, .pt2, .torchscript)."
        ) from None


def _run_exported(path: Path, format: str) -> Any:
    if format == "torchscript":  # only a file this process just wrote: TorchScript is never loaded by zoo.load
        import torch

        module = torch.jit.load(str(path), map_location="cpu")
        return module.eval()
    from zoo.export.runtime import load_exported

    return load_exported(path, device="cpu").module


def _inputs(model: Model, info: Any, images: Sequence[str | os.PathLike[str]]) -> tuple[list[torch.Tensor], list[str]]:
    """The batches both run on: the images preprocessed as the exported graph's caller does.

    Detection: each image letterboxed as `predict` does it (its own padded shape, one batch per image), so the
    graph's dynamic height and width are exercised on the shapes it will meet.
    """
    import torch

    from zoo.images import collect_images, decode, preprocess_batch

    if images:
        items, _ = collect_images(list(images))
        decoded = [decode(item, 3 if info.preprocess is None else info.preprocess.channels) for item in items]
        names = [item.source for item in items]
    else:
        channels = 3 if info.preprocess is None else info.preprocess.channels
        decoded = [_synthetic(i, channels) for i in range(3)]
        names = [f"<synthetic {i}>" for i in range(3)]
    if info.task == "object-detection":
        from zoo.tasks.detection import letterbox, letterbox_shape

        side, stride = info.image_size or 640, info.stride or 32
        shapes = [letterbox_shape(image.shape[1], image.shape[2], side, stride) for image in decoded]
        boxed = [letterbox(image, shape)[0] for image, shape in zip(decoded, shapes)]
        return [image.unsqueeze(0).float().div(255) for image in boxed], names
    return [preprocess_batch(decoded, info.preprocess, torch.device("cpu"))], names


def _synthetic(seed: int, channels: int = 3) -> torch.Tensor:
    """A (300+40·seed)x400 uint8 image: smooth gradients plus seeded noise (structure and texture)."""
    import torch

    height, width = 300 + 40 * seed, 400
    ys = torch.linspace(0, 1, height).view(-1, 1).expand(height, width)
    xs = torch.linspace(0, 1, width).view(1, -1).expand(height, width)
    noise = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
    image = torch.stack([ys, xs, (ys + xs) / 2]) * 0.7 + noise * 0.3
    if channels == 1:
        image = image.mean(dim=0, keepdim=True)
    return (image * 255).round().clamp(0, 255).to(torch.uint8)
