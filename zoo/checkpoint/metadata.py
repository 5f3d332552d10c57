"""What a zoo checkpoint says about its model, as safetensors header metadata and as a `config.json`.

The safetensors header holds string values only: plain strings for names and hashes, JSON text for
structured values (builder arguments, labels, preprocessing, training summary)::

    format            pt
    zoo.checkpoint    1
    zoo.model         resnet18
    zoo.plugin        torchvision
    zoo.task          image-classification
    zoo.builder_kwargs {"num_classes": 10}
    zoo.labels        ["airplane", ...]
    zoo.preprocess    {"resize": 256, "crop": 224, ...}
    zoo.weights       IMAGENET1K_V1          (the tag the model started from)
    zoo.base_sha256   <sha256 of that weights file>
    zoo.training      {"epochs": 3, ...}
    zoo.version / torch.version

The folder form's `config.json` follows huggingface_hub's `PyTorchModelHubMixin`: the builder arguments
at the top level (what `from_pretrained` passes to `__init__`), zoo's own fields under `"zoo"`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.specs import ImagePreprocess

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["FORMAT_VERSION", "CheckpointInfo"]

#: Version of the metadata layout; a reader refuses a newer one.
FORMAT_VERSION = 1
_PLAIN = {"model": "zoo.model", "plugin": "zoo.plugin", "task": "zoo.task", "weights": "zoo.weights",
          "base_sha256": "zoo.base_sha256", "zoo_version": "zoo.version", "torch_version": "torch.version"}  # fmt: skip
_JSON = {"builder_kwargs": "zoo.builder_kwargs", "labels": "zoo.labels", "preprocess": "zoo.preprocess",
         "training": "zoo.training"}  # fmt: skip


@dataclass(frozen=True)
class CheckpointInfo:
    """The zoo fields of a checkpoint: enough to rebuild the model and restore how it predicts.

    Attributes:
        model: the model's name in its plugin.
        plugin: the plugin that declares it (`user` for `zoo.register`).
        task: the task name.
        builder_kwargs: the arguments the builder was called with (JSON values).
        labels: class labels, or None.
        preprocess: input preprocessing, or None (the spec's is used then).
        weights: the weights tag the model started from, or None.
        base_sha256: sha256 of that weights file, or None.
        training: summary of the training that produced the weights (`Model.training_summary`), or None.
        zoo_version: zoo version that wrote it.
        torch_version: torch version that wrote it.
    """

    model: str
    plugin: str
    task: str
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    weights: str | None = None
    base_sha256: str | None = None
    training: Any = None
    zoo_version: str | None = None
    torch_version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "builder_kwargs", MappingProxyType(dict(self.builder_kwargs)))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    @classmethod
    def from_model(cls, model: Model) -> CheckpointInfo:
        """The fields of a loaded model, checking that its builder arguments can be written as JSON.

        Raises:
            ZooError: a builder argument is not a plain JSON value (a callable, a module, ...).
        """
        import torch

        from zoo._version import __version__

        for key, value in model.builder_kwargs.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise ZooError(
                    f"Builder argument {key}={value!r} of {model.spec.name!r} is not a JSON value, so a checkpoint "
                    f"could not rebuild the model: load it with plain arguments (numbers, strings, lists)."
                ) from None
        preprocess = model.preprocess if isinstance(model.preprocess, ImagePreprocess) else None
        return cls(
            model=model.spec.name,
            plugin=model.spec.plugin,
            task=model.spec.task,
            builder_kwargs=model.builder_kwargs,
            labels=model.labels,
            preprocess=preprocess,
            weights=model.weights,
            base_sha256=model.weights_sha256,
            training=getattr(model, "training_summary", None),
            zoo_version=__version__,
            torch_version=str(torch.__version__),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "plugin": self.plugin,
            "task": self.task,
            "weights": self.weights,
            "base_sha256": self.base_sha256,
            "zoo_version": self.zoo_version,
            "torch_version": self.torch_version,
            "builder_kwargs": dict(self.builder_kwargs),
            "labels": list(self.labels) if self.labels is not None else None,
            "preprocess": self.preprocess.to_dict() if self.preprocess is not None else None,
            "training": self.training,
        }

    def to_metadata(self) -> dict[str, str]:
        """The safetensors header metadata (string values; None fields are left out)."""
        meta = {"format": "pt", "zoo.checkpoint": str(FORMAT_VERSION)}
        for name, value in self._fields().items():
            if value is None:
                continue
            if name in _PLAIN:
                meta[_PLAIN[name]] = str(value)
            else:
                meta[_JSON[name]] = json.dumps(value, sort_keys=True, default=str)
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str] | None, *, source: str = "the checkpoint") -> CheckpointInfo | None:
        """Read the header metadata back; None when it holds no zoo fields.

        Raises:
            ZooError: the zoo fields are damaged or from a newer zoo.
        """
        if not meta or "zoo.model" not in meta:
            return None
        _check_version(meta.get("zoo.checkpoint", "1"), source)
        values: dict[str, Any] = {name: meta.get(key) for name, key in _PLAIN.items()}
        for name, key in _JSON.items():
            if key in meta:
                try:
                    values[name] = json.loads(meta[key])
                except ValueError:
                    raise ZooError(f"The {key} metadata of {source} is not valid JSON: the file is damaged.") from None
        return cls._build(values, source)

    def to_config(self) -> dict[str, Any]:
        """The folder form's `config.json`: builder arguments at the top level, zoo's fields under `zoo`."""
        fields = {k: v for k, v in self._fields().items() if k != "builder_kwargs" and v is not None}
        return {**self.builder_kwargs, "zoo": {"checkpoint": FORMAT_VERSION, **fields}}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, source: str = "config.json") -> CheckpointInfo | None:
        """Read a `config.json` written by `to_config`; None when it has no `zoo` entry."""
        zoo_fields = config.get("zoo")
        if not isinstance(zoo_fields, Mapping) or "model" not in zoo_fields:
            return None
        _check_version(str(zoo_fields.get("checkpoint", 1)), source)
        values = {name: zoo_fields.get(name) for name in (*_PLAIN, *_JSON) if name != "builder_kwargs"}
        values["builder_kwargs"] = {k: v for k, v in config.items() if k != "zoo"}
        return cls._build(values, source)

    @classmethod
    def _build(cls, values: dict[str, Any], source: str) -> CheckpointInfo:
        try:
            preprocess = values.get("preprocess")
            return cls(
                model=str(values["model"]),
                plugin=str(values.get("plugin") or "user"),
                task=str(values.get("task") or ""),
                builder_kwargs=dict(values.get("builder_kwargs") or {}),
                labels=values.get("labels"),
                preprocess=ImagePreprocess.from_dict(preprocess) if isinstance(preprocess, Mapping) else None,
                weights=values.get("weights"),
                base_sha256=values.get("base_sha256"),
                training=values.get("training"),
                zoo_version=values.get("zoo_version"),
                torch_version=values.get("torch_version"),
            )
        except (TypeError, ValueError) as exc:
            raise ZooError(f"The zoo metadata of {source} is damaged ({exc}): save the model again.") from None


def _check_version(raw: str, source: str) -> None:
    try:
        version = int(raw)
    except ValueError:
        version = FORMAT_VERSION + 1
    if version > FORMAT_VERSION:
        raise ZooError(f"{source} was written by a newer zoo (checkpoint format {raw}): upgrade zoo to load it.")
