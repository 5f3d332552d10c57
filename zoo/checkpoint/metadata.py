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
    zoo.random_init   true                   (only when the weights are the builder's random init)
    zoo.version / torch.version

The folder form's `config.json` follows huggingface_hub's `PyTorchModelHubMixin`: the builder arguments
at the top level (what `from_pretrained` passes to `__init__`), zoo's own fields under `"zoo"`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zoo._frozen import thaw
from zoo.arguments import check_json, parse_json, recordable_kwargs
from zoo.errors import InputError, ZooError
from zoo.specs import ImagePreprocess
from zoo.task_names import canonical_task

if TYPE_CHECKING:
    from zoo.model import ModelInfo
    from zoo.specs import ModelSpec

__all__ = ["FORMAT_VERSION", "CheckpointInfo"]

log = logging.getLogger(__name__)

#: Version of the metadata layout; a reader refuses a newer one.
FORMAT_VERSION = 1
_PLAIN = {"model": "zoo.model", "plugin": "zoo.plugin", "task": "zoo.task", "weights": "zoo.weights",
          "base_sha256": "zoo.base_sha256", "zoo_version": "zoo.version", "torch_version": "torch.version"}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_JSON = {"builder_kwargs": "zoo.builder_kwargs", "labels": "zoo.labels", "preprocess": "zoo.preprocess",
         "training": "zoo.training", "random_init": "zoo.random_init"}  # fmt: skip


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
        training: summary of the training that produced the weights (`ModelInfo.training`), or None.
        zoo_version: zoo version that wrote it.
        torch_version: torch version that wrote it.
        random_init: the weights started as the builder's random initialisation (`ModelInfo.random_init`;
            with `training`, they were trained from there; without, a model loaded from it warns when it
            predicts). Written only when true; older files read as false.
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
    random_init: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "builder_kwargs", MappingProxyType(dict(self.builder_kwargs)))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    @classmethod
    def record(cls, spec: ModelSpec, info: ModelInfo) -> CheckpointInfo:
        """The fields a checkpoint of `spec`, described by `info`, records; builder arguments checked as JSON.

        The spec's `caller_only` arguments (`trust`, `repo`, `model_class`, ...) are never recorded: a file
        never sets them, so the caller passes them again to `zoo.load(path, ...)`.

        Raises:
            ZooError: a builder argument is not a plain JSON value (a callable, a module, ...).
        """
        import torch

        from zoo._version import __version__

        builder_kwargs, dropped = recordable_kwargs(spec, thaw(info.builder_kwargs))
        if dropped:
            log.info(
                "%s: not recorded in the checkpoint (only a caller sets them): %s; pass them again to zoo.load",
                spec.name,
                ", ".join(f"{k}={info.builder_kwargs[k]!r}" for k in dropped),
            )
        for key, value in builder_kwargs.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise ZooError(
                    f"Builder argument {key}={value!r} of {spec.name!r} is not a JSON value, so a checkpoint "
                    f"could not rebuild the model: load it with plain arguments (numbers, strings, lists)."
                ) from None
        preprocess = info.preprocess if isinstance(info.preprocess, ImagePreprocess) else None
        return cls(
            model=spec.name,
            plugin=spec.plugin,
            task=spec.task,
            builder_kwargs=builder_kwargs,
            labels=info.labels,
            preprocess=preprocess,
            weights=info.weights,
            base_sha256=info.weights_sha256,
            training=thaw(info.training),
            zoo_version=__version__,
            torch_version=str(torch.__version__),
            random_init=info.random_init,
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
            "random_init": True if self.random_init else None,
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
            ZooError: the zoo fields are damaged (not JSON, wrong types, too deep or too large) or from a newer zoo.
        """
        if not isinstance(meta, Mapping) or "zoo.model" not in meta:
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise InputError(f"The metadata of {source} holds values that are not strings: the file is damaged.")
        _check_version(meta.get("zoo.checkpoint", "1"), source)
        values: dict[str, Any] = {name: meta.get(key) for name, key in _PLAIN.items()}
        for name, key in _JSON.items():
            if key in meta:
                values[name] = parse_json(meta[key], what=f"{key} metadata", source=source)
        return cls._build(values, source)

    def to_config(self) -> dict[str, Any]:
        """The folder form's `config.json`: builder arguments at the top level, zoo's fields under `zoo`."""
        fields = {k: v for k, v in self._fields().items() if k != "builder_kwargs" and v is not None}
        return {**self.builder_kwargs, "zoo": {"checkpoint": FORMAT_VERSION, **fields}}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, source: str = "config.json") -> CheckpointInfo | None:
        """Read a `config.json` written by `to_config`; None when it has no `zoo` entry.

        Raises:
            ZooError: the zoo entry is damaged or from a newer zoo.
        """
        if not isinstance(config, Mapping):
            return None
        zoo_fields = config.get("zoo")
        if not isinstance(zoo_fields, Mapping) or "model" not in zoo_fields:
            return None
        _check_version(zoo_fields.get("checkpoint", 1), source)
        values = {name: zoo_fields.get(name) for name in (*_PLAIN, *_JSON) if name != "builder_kwargs"}
        values["builder_kwargs"] = {k: v for k, v in config.items() if k != "zoo"}
        return cls._build(values, source)

    @classmethod
    def _build(cls, values: dict[str, Any], source: str) -> CheckpointInfo:
        """Check every field's type and size (nothing is imported or built from them here)."""
        for name in ("model", "plugin"):
            value = values.get(name)
            if (name == "model" or value is not None) and (not isinstance(value, str) or not _NAME.match(value)):
                raise InputError(
                    f"The zoo metadata of {source} names {name} {_short(values.get(name))}, not a model or plugin "
                    f"name: the file is damaged."
                )
        for name in ("task", "weights", "base_sha256", "zoo_version", "torch_version"):
            value = values.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise InputError(f"The zoo metadata of {source} has a damaged {name} field ({_short(value)}).")
        builder_kwargs = values.get("builder_kwargs")
        if builder_kwargs is None:
            builder_kwargs = {}
        if not isinstance(builder_kwargs, Mapping):
            raise InputError(f"The builder arguments in {source} are not a JSON object: the file is damaged.")
        check_json(builder_kwargs, what="builder arguments", source=source)
        check_json(values.get("training"), what="training summary", source=source)
        labels = values.get("labels")
        if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
            raise InputError(f"The labels in {source} are not a list of strings: the file is damaged.")
        check_json(labels, what="labels", source=source)
        random_init = values.get("random_init")
        if random_init is not None and not isinstance(random_init, bool):
            raise InputError(f"The zoo metadata of {source} has a damaged random_init field ({_short(random_init)}).")
        return cls(
            model=values["model"],
            plugin=values.get("plugin") or "user",
            task=canonical_task(values.get("task") or ""),  # files from before the one vocabulary
            builder_kwargs=builder_kwargs,
            labels=tuple(labels) if labels is not None else None,
            preprocess=_preprocess(values.get("preprocess"), source),
            weights=values.get("weights"),
            base_sha256=values.get("base_sha256"),
            training=values.get("training"),
            zoo_version=values.get("zoo_version"),
            torch_version=values.get("torch_version"),
            random_init=bool(random_init),
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready description, as `zoo info PATH --json` prints it."""
        return {
            "model": self.model,
            "plugin": self.plugin,
            "qualified_name": f"{self.plugin}/{self.model}",
            "task": self.task,
            "weights": self.weights,
            "base_sha256": self.base_sha256,
            "num_labels": len(self.labels) if self.labels is not None else None,
            "preprocess": self.preprocess.to_dict() if self.preprocess is not None else None,
            "builder_kwargs": dict(self.builder_kwargs),
            "training": self.training,
            "zoo_version": self.zoo_version,
            "torch_version": self.torch_version,
        }


def _preprocess(value: Any, source: str) -> ImagePreprocess | None:
    """The preprocessing a file records, its sizes bounded (`MAX_PREPROCESS_SIZE`), or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"The preprocessing in {source} is not a JSON object: the file is damaged.")
    check_json(value, what="preprocessing", source=source)
    for name in ("mean", "std"):
        stats = value.get(name, [0.0])
        if not isinstance(stats, list) or not 1 <= len(stats) <= 4:
            raise InputError(f"The preprocessing {name} in {source} is not a list of 1 to 4 numbers.")
    try:
        return ImagePreprocess.from_dict(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"The preprocessing in {source} is damaged ({_short(str(exc), 160)}).") from None


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split()) if not isinstance(value, str) or limit < 100 else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_version(raw: Any, source: str) -> None:
    version = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and raw.isdigit() and len(raw) < 10:
        version = int(raw)
    if version is None or version < 1:
        raise InputError(f"{source} has a damaged checkpoint format version ({_short(raw)}): the file is damaged.")
    if version > FORMAT_VERSION:
        raise ZooError(f"{source} was written by a newer zoo (checkpoint format {raw}): upgrade zoo to load it.")
