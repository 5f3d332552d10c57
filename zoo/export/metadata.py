"""`ExportInfo`: the zoo facts an exported file carries (labels, preprocessing, task, provenance), as plain JSON.

An exported file is data from outside: its metadata is parsed with `json.loads` into plain values and every
field is checked (types, lengths, a task zoo can run from an exported graph) before anything uses it. No
field ever names code, a class, an import path or a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.specs import ImagePreprocess

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["METADATA_KEY", "SCHEMA", "TASKS", "ExportInfo"]

#: The key of zoo's JSON in ONNX `metadata_props`, and the extra file's name in .pt2 / TorchScript archives.
METADATA_KEY = "zoo"
#: Version of the metadata layout; a newer one is refused with a message to upgrade zoo.
SCHEMA = 1
#: Tasks a loaded exported model can run (the graph is the module; zoo's task does the rest).
TASKS = ("image-classification", "object-detection", "image-to-image")
#: Largest metadata text read (21k labels fit in well under 1 MiB).
MAX_METADATA_BYTES = 4 * 2**20
_MAX_LABELS = 100_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/:-]{0,199}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ExportInfo:
    """What zoo knows about an exported model.

    Attributes:
        name: the model's name (`mobilenet_v2`).
        weights: the weights tag it was exported with, or None (random or fine-tuned without a tag).
        task: one of `TASKS`.
        labels: class labels, or None.
        preprocess: the preprocessing the caller runs before the graph. With `include_preprocess` the
            graph normalizes by itself and this has mean 0 and std 1.
        weights_sha256: sha256 of the source weights file, or None.
        include_preprocess: True when the graph takes images scaled to [0, 1] and normalizes them itself.
        dynamic_batch: True when the graph takes any batch size.
        input_name: the graph's input name.
        image_size: the model's own detection size (the letterbox side), or None.
        stride: detection models: the largest stride (letterbox padding multiple), or None.
        zoo_version: the zoo version that exported it.
        torch_version: the torch version that exported it.
    """

    name: str
    task: str
    weights: str | None = None
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    weights_sha256: str | None = None
    include_preprocess: bool = False
    dynamic_batch: bool = True
    input_name: str = "input"
    image_size: int | None = None
    stride: int | None = None
    zoo_version: str = ""
    torch_version: str = ""

    @classmethod
    def from_model(cls, model: Model, *, include_preprocess: bool, dynamic_batch: bool) -> ExportInfo:
        """The facts of `model` (the preprocessing as the caller of the exported graph must run it)."""
        import torch

        from zoo._version import __version__

        preprocess = model.preprocess
        if include_preprocess and preprocess is not None:
            preprocess = _unnormalized(preprocess)
        meta = model.spec.meta
        return cls(
            name=model.spec.name,
            task=model.spec.task,
            weights=model.weights,
            labels=tuple(model.labels) if model.labels is not None else None,
            preprocess=preprocess,
            weights_sha256=model.weights_sha256,
            include_preprocess=include_preprocess,
            dynamic_batch=dynamic_batch,
            image_size=_int_or_none(meta.get("image_size")),
            stride=_int_or_none(getattr(model.module, "stride", None)),
            zoo_version=__version__,
            torch_version=str(torch.__version__),
        )

    def to_json(self) -> str:
        """The metadata as JSON text (what the exported file stores)."""
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "name": self.name,
            "task": self.task,
            "weights": self.weights,
            "labels": list(self.labels) if self.labels is not None else None,
            "preprocess": self.preprocess.to_dict() if self.preprocess is not None else None,
            "weights_sha256": self.weights_sha256,
            "include_preprocess": self.include_preprocess,
            "dynamic_batch": self.dynamic_batch,
            "input_name": self.input_name,
            "image_size": self.image_size,
            "stride": self.stride,
            "zoo_version": self.zoo_version,
            "torch_version": self.torch_version,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str) -> ExportInfo:
        """Parse and validate metadata read from an exported file.

        Raises:
            InputError: the text is not zoo's metadata, is too large, or a field has the wrong type.
        """
        if len(text) > MAX_METADATA_BYTES:
            raise InputError(f"{source}: zoo metadata is larger than {MAX_METADATA_BYTES} bytes; it is not zoo's.")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{source}: zoo metadata is not valid JSON ({exc}); export the model again.") from exc
        if not isinstance(data, dict):
            raise InputError(f"{source}: zoo metadata is not a JSON object; export the model again.")
        return _parse(data, source)


def _parse(data: Mapping[str, Any], source: str) -> ExportInfo:
    def bad(field: str, what: str) -> InputError:
        return InputError(f"{source}: zoo metadata field {field!r} {what}; export the model again with `zoo export`.")

    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise bad("schema", "is missing")
    if schema > SCHEMA:
        raise InputError(f"{source} was exported by a newer zoo (metadata schema {schema}): upgrade zoo-sdk.")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad("name", "is not a model name")
    task = data.get("task")
    if task not in TASKS:
        raise InputError(
            f"{source}: an exported {task!r} model cannot run in zoo (it runs {', '.join(TASKS)}); "
            f"run the graph yourself with onnxruntime."
        )
    labels = data.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not labels or len(labels) > _MAX_LABELS:
            raise bad("labels", f"is not a list of 1 to {_MAX_LABELS} strings")
        if not all(isinstance(label, str) and len(label) <= 1000 for label in labels):
            raise bad("labels", "holds something other than short strings")
    preprocess = None
    if data.get("preprocess") is not None:
        raw = data["preprocess"]
        if not isinstance(raw, dict):
            raise bad("preprocess", "is not an object")
        try:
            preprocess = ImagePreprocess.from_dict(raw)
        except (TypeError, ValueError) as exc:  # InputError is a ValueError
            raise bad("preprocess", f"is invalid ({exc})") from exc
    sha = data.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise bad("weights_sha256", "is not a sha256 hex digest")
    weights = data.get("weights")
    if weights is not None and not (isinstance(weights, str) and _NAME.fullmatch(weights)):
        raise bad("weights", "is not a weights tag")
    input_name = data.get("input_name", "input")
    if not isinstance(input_name, str) or not input_name or len(input_name) > 200:
        raise bad("input_name", "is not a name")
    flags = {key: data.get(key, default) for key, default in (("include_preprocess", False), ("dynamic_batch", True))}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise bad(key, "is not true or false")
    sizes: dict[str, int | None] = {}
    for key in ("image_size", "stride"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8192):
            raise bad(key, "is not a size from 1 to 8192")
        sizes[key] = value
    if task != "object-detection" and preprocess is None:
        raise bad("preprocess", "is missing (an exported image model records its preprocessing)")
    versions = {key: str(data.get(key, ""))[:100] for key in ("zoo_version", "torch_version")}
    return ExportInfo(
        name=name,
        task=task,
        weights=weights,
        labels=tuple(labels) if labels is not None else None,
        preprocess=preprocess,
        weights_sha256=sha,
        input_name=input_name,
        include_preprocess=bool(flags["include_preprocess"]),
        dynamic_batch=bool(flags["dynamic_batch"]),
        image_size=sizes["image_size"],
        stride=sizes["stride"],
        zoo_version=versions["zoo_version"],
        torch_version=versions["torch_version"],
    )


def _unnormalized(preprocess: ImagePreprocess) -> ImagePreprocess:
    """The same preprocessing without normalization (mean 0, std 1): the graph normalizes."""
    from dataclasses import replace

    channels = len(preprocess.mean)
    return replace(preprocess, mean=(0.0,) * channels, std=(1.0,) * channels)


def _int_or_none(value: Any) -> int | None:
    """An int from a plain int or a one-element tensor-like (a module's `stride`), else None."""
    try:
        if hasattr(value, "max"):
            value = value.max()
        number = int(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if 1 <= number <= 8192 else None
