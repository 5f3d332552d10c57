"""Frozen value types that describe models: `ModelSpec`, `Weights`, `Artifact`, `ImagePreprocess`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from zoo.errors import InputError, PluginError, UnknownModelError

__all__ = ["Artifact", "ImagePreprocess", "ModelSpec", "Weights", "validate_filename"]

#: Formats an artifact can have; the cache converts pickles to safetensors once. `file` is any other file
#: (a font, a config): with no published hash, only its length is checked before it is pinned.
FORMATS = ("safetensors", "state_dict-pickle", "full-pickle", "torchscript", "repo", "file")
_HEX = re.compile(r"^[0-9a-f]+$")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")  # fullmatch only: `$` lets "x\n" through
#: Names Windows keeps for devices, in any case, with any extension (`CON`, `aux`, `NUL.pth`, `com1.txt`).
_RESERVED = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(?:\..*)?", re.IGNORECASE)
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_MODULE_PATH = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")  # fullmatch only: `fc`, `classifier.6`
#: Largest side, in pixels, an `ImagePreprocess` may resize or crop to (a bigger one from a file would allocate
#: gigabytes per image).
MAX_PREPROCESS_SIZE = 8192
#: Named preprocessing pipelines (`ImagePreprocess.pipeline`): a closed set, run by `zoo.pipelines`.
PIPELINES = ("torchvision", "face2paint", "timm")
_INTERPOLATIONS = frozenset({"bilinear", "bicubic", "nearest", "nearest-exact"})
_PIL_INTERPOLATIONS = frozenset({"lanczos", "box", "hamming"})


def validate_filename(name: str) -> str:
    """Return `name` if it is a plain file name safe to create in the cache, else raise `InputError`.

    Refuses path separators, drive letters, `..`, leading dots, control characters (a trailing newline
    too) and the device names Windows reserves (`CON`, `aux`, `NUL.pth`), before any filesystem access.
    """
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise InputError(f"unsafe file name {name!r}: use letters, digits, '.', '_', '+' and '-' only.")
    if _RESERVED.fullmatch(name):
        raise InputError(f"unsafe file name {name!r}: Windows reserves it for a device; rename the file.")
    return name


def _hex(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.lower()
    if not _HEX.fullmatch(value) or len(value) > 64:
        raise InputError(f"{what} {value!r} is not a hex sha256 digest (or prefix): give up to 64 hex digits.")
    return value


def _default_filename(url: str) -> str:
    """Cache file name for a URL: its last path part; for `hf:org/repo[@rev]/path`, `org--repo--path`.

    Hub repos share file names (`model.safetensors`), so their names carry the repo.
    """
    parts = url[3:].split("/") if url.startswith("hf:") else []
    if len(parts) >= 3:
        org, repo = parts[0], parts[1].split("@", 1)[0]
        return "--".join([org, repo, *parts[2:]])
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _format_from_name(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".safetensors"):
        return "safetensors"
    if lower.endswith((".torchscript", ".jit")):
        return "torchscript"
    return "state_dict-pickle"


def _check_size(name: str, size: Any) -> None:
    """Refuse a resize or crop size that is not None, a side or (height, width) within `MAX_PREPROCESS_SIZE`."""
    if size is None:
        return
    sides = size if isinstance(size, tuple) and len(size) == 2 else (size,)
    for side in sides:
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_PREPROCESS_SIZE:
            raise InputError(
                f"{name}={size!r} is not a size in pixels from 1 to {MAX_PREPROCESS_SIZE} (or a (height, width) pair)"
            )


@dataclass(frozen=True)
class ImagePreprocess:
    """How an image becomes a model input, as data.

    The default pipeline is torchvision's classification one: resize the shorter side to `resize` (or
    to `(height, width)`), center-crop to `crop`, scale to [0, 1], normalize with `mean` and `std`.
    A model whose original code prepares its input otherwise names that code's pipeline instead
    (one of `PIPELINES`, run by `zoo.pipelines`), so zoo gives it the very tensor the original gives:

    - `"face2paint"`: bryandlee/animegan2-pytorch's `face2paint`: crop the centre square, resize it
      to `crop` with PIL (`interpolation="lanczos"`), scale to [0, 1], normalize;
    - `"timm"`: timm's own eval transform (`timm.data.create_transform`) made from `crop` (the input
      size), `interpolation`, `mean`, `std`, `crop_pct` and `crop_mode`.

    Attributes:
        resize: shorter-side size, or `(height, width)`; None keeps the input size.
        crop: center-crop size, or `(height, width)`; None for no crop.
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel standard deviation divided by.
        interpolation: "bilinear", "bicubic" or "nearest" (also "lanczos", "box", "hamming" for the
            PIL-based pipelines).
        antialias: antialias when downsizing (torchvision's default).
        channels: 3 for RGB input, 1 for grayscale.
        pipeline: "torchvision" (the default), "face2paint" or "timm".
        crop_pct: timm: the fraction of the resized image the crop keeps (None: timm's default).
        crop_mode: timm: "center", "squash" or "border" (None: timm's default, center).
    """

    resize: int | tuple[int, int] | None = 256
    crop: int | tuple[int, int] | None = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    antialias: bool = True
    channels: int = 3
    pipeline: str = "torchvision"
    crop_pct: float | None = None
    crop_mode: str | None = None

    def __post_init__(self) -> None:
        if self.pipeline not in PIPELINES:
            raise InputError(f"preprocessing pipeline {self.pipeline!r} is not one of {', '.join(PIPELINES)}")
        allowed = _INTERPOLATIONS if self.pipeline == "torchvision" else _INTERPOLATIONS | _PIL_INTERPOLATIONS
        if self.interpolation not in allowed:
            raise InputError(f"interpolation {self.interpolation!r} is not one of {', '.join(sorted(allowed))}")
        if self.pipeline == "face2paint" and not isinstance(self.crop, int):
            raise InputError("the face2paint pipeline needs crop: the side of the square model input")
        if self.crop_mode not in (None, "center", "squash", "border"):
            raise InputError(f"crop_mode {self.crop_mode!r} is not center, squash or border")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise InputError(f"crop_pct {self.crop_pct!r} is not in (0, 1]")
        if len(self.mean) != len(self.std):
            raise InputError("mean and std must have the same length")
        if self.channels not in (1, 3):
            raise InputError(f"channels must be 1 or 3, not {self.channels}")
        for name in ("resize", "crop"):
            _check_size(name, getattr(self, name))

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The (height, width) the model receives, when fixed."""
        size = self.crop if self.crop is not None else self.resize
        if size is None:
            return None
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `ImagePreprocess.from_dict` reads it back."""
        return {
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "crop": list(self.crop) if isinstance(self.crop, tuple) else self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "channels": self.channels,
            **({"pipeline": self.pipeline} if self.pipeline != "torchvision" else {}),
            **({"crop_pct": self.crop_pct} if self.crop_pct is not None else {}),
            **({"crop_mode": self.crop_mode} if self.crop_mode is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePreprocess:
        """Build from a dict written by `to_dict` (lists become tuples)."""

        def size(v: Any) -> Any:
            return tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else v

        return cls(
            resize=size(data.get("resize")),
            crop=size(data.get("crop")),
            mean=tuple(float(x) for x in data.get("mean", (0.0, 0.0, 0.0))),
            std=tuple(float(x) for x in data.get("std", (1.0, 1.0, 1.0))),
            interpolation=str(data.get("interpolation", "bilinear")),
            antialias=bool(data.get("antialias", True)),
            channels=int(data.get("channels", 3)),
            pipeline=str(data.get("pipeline", "torchvision")),
            crop_pct=float(data["crop_pct"]) if data.get("crop_pct") is not None else None,
            crop_mode=str(data["crop_mode"]) if data.get("crop_mode") is not None else None,
        )


@dataclass(frozen=True)
class Artifact:
    """One file the store fetches, verifies and caches.

    Attributes:
        name: file name in the cache (validated: no separators, no `..`).
        urls: sources tried in order (mirrors are applied on top of these).
        sha256: full sha256 of the file, when known.
        hash_prefix: the prefix of the sha256 that upstream publishes (torchvision's file names carry one).
        size: byte size, when known.
        format: one of `FORMATS`.
        license: SPDX identifier or short text.
    """

    name: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    hash_prefix: str | None = None
    size: int | None = None
    format: str = "state_dict-pickle"
    license: str | None = None

    def __post_init__(self) -> None:
        validate_filename(self.name)
        object.__setattr__(self, "sha256", _hex(self.sha256, "sha256"))
        object.__setattr__(self, "hash_prefix", _hex(self.hash_prefix, "hash_prefix"))
        if self.sha256 is not None and len(self.sha256) != 64:
            raise InputError(f"sha256 of {self.name} must have 64 hex digits; use hash_prefix= for a prefix.")
        if self.format not in FORMATS:
            raise InputError(f"Format {self.format!r} of {self.name} is not one of {', '.join(FORMATS)}.")

    @property
    def expected_digest(self) -> str | None:
        """The full sha256 when known, else the upstream prefix, else None."""
        return self.sha256 or self.hash_prefix


@dataclass(frozen=True)
class Weights:
    """A named set of pretrained weights for a model (a weights tag).

    Attributes:
        url: where the file is published (None for weights that ship inside a package).
        sha256: full sha256 of the file.
        hash_prefix: upstream hash prefix, used when the full hash is not published.
        filename: cache file name; defaults to the last part of `url`.
        size: byte size of the file.
        format: file format; guessed from the file name when omitted.
        license: license of the weights.
        labels: class labels, when they differ from the model's; `()` for weights without class labels
            (a features-only backbone).
        preprocess: preprocessing, when it differs from the model's.
        builder_kwargs: arguments the builder needs to match these weights (e.g. `num_classes`).
        metrics: published metrics, e.g. `{"acc@1": 69.758}`.
        meta: anything else worth showing (`num_params`, `recipe`, `gflops`, ...).
        urls: extra sources tried after `url`.
    """

    url: str | None = None
    sha256: str | None = None
    hash_prefix: str | None = None
    filename: str | None = None
    size: int | None = None
    format: str | None = None
    license: str | None = None
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        for name in ("builder_kwargs", "metrics", "meta"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if self.url is None and not self.urls and self.filename is None:
            raise InputError("Weights need a url, urls or a filename: give at least one of them.")
        if not all(isinstance(u, str) for u in (self.url, *self.urls) if u is not None):
            raise InputError(f"Weights URLs must be strings, not {self.url!r} / {self.urls!r}: give url='https://...'.")
        self.artifact  # noqa: B018 - validates the file name and hashes now, at declaration time

    @property
    def artifact(self) -> Artifact:
        """The file to fetch for these weights."""
        urls = tuple(u for u in (self.url, *self.urls) if u)
        name = self.filename or _default_filename(urls[0])
        return Artifact(
            name=name,
            urls=urls,
            sha256=self.sha256,
            hash_prefix=self.hash_prefix,
            size=self.size,
            format=self.format or _format_from_name(name),
            license=self.license,
        )


@dataclass(frozen=True)
class ModelSpec:
    """Everything zoo knows about a model before building it.

    Attributes:
        name: the model name, lower case (`resnet18`).
        task: the task name (`image-classification`, ...).
        builder: callable that returns the `torch.nn.Module`; heavy imports go inside it.
        plugin: name of the plugin that declared it.
        labels: class labels, or None.
        preprocess: input preprocessing as data, or None.
        weights: weights tags, by their canonical tag name.
        default_weights: the tag `name` alone loads; None loads random init.
        description: one line for `zoo list`.
        defaults: default builder arguments.
        meta: extra facts for `zoo info` (family, paper, ...).
        state_dict_hook: called on a state_dict read from an upstream file before it is cached as
            safetensors (to rename legacy keys, drop unused heads); None for none.
        aliases: extra tag names pointing at declared tags, e.g. `{"DEFAULT": "IMAGENET1K_V2"}`
            for torchvision's best weights (case-insensitive, like tags).
        caller_only: builder parameters that choose code, trust or a source (`model_class`, `trust`, `repo`,
            `ref`, `backend`): only a caller's keyword sets them. A checkpoint, config.json or any other file
            setting one to anything but the builder's default is refused, and `Model.save` never records them
            (see `zoo.arguments`).
        requires: Python packages the builder imports, each with the command that installs it
            (`{"ultralytics": 'pip install "zoo-sdk[yolo]"'}`): a load checks them before it fetches
            anything, so a missing one costs no download.
        head: where a classifier keeps its head, which zoo swaps for a new label set: a dotted module
            path (`fc`, `heads.head`; a `Sequential` means its last Linear or 1x1 Conv2d child), or a tuple
            whose first path is the head and the others auxiliary heads replaced with it (`("fc",
            "AuxLogits.fc")`; one the built module lacks is skipped). None: the module's last Linear layer.
    """

    name: str
    task: str
    builder: Callable[..., Any]
    plugin: str = "user"
    labels: tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    weights: Mapping[str, Weights] = field(default_factory=dict)
    default_weights: str | None = None
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    state_dict_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    caller_only: frozenset[str] = frozenset()
    requires: Mapping[str, str] = field(default_factory=dict)
    head: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "caller_only", frozenset(self.caller_only))
        if self.head is not None and not isinstance(self.head, str):
            object.__setattr__(self, "head", tuple(self.head))
        for path in (self.head,) if isinstance(self.head, str) else self.head or ():
            if not isinstance(path, str) or not _MODULE_PATH.fullmatch(path):
                raise PluginError(
                    f"Head {path!r} of {self.name!r} is not a dotted module path such as 'fc' or 'heads.head'."
                )
        if not isinstance(self.name, str) or not _TAG.fullmatch(self.name):
            raise PluginError(
                f"Model name {self.name!r} is invalid: use letters, digits, '.', '_', '+' and '-', starting with a "
                f"letter or digit."
            )
        object.__setattr__(self, "name", self.name.lower())
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        for tag in self.weights:
            if not isinstance(tag, str) or not _TAG.fullmatch(tag) or tag.lower() == "none":
                raise PluginError(f"Weights tag {tag!r} of {self.name!r} is invalid (letters, digits, '._+-').")
        for alias, target in self.aliases.items():
            if target not in self.weights:
                raise PluginError(f"Weights alias {alias!r} of {self.name!r} points at undeclared tag {target!r}.")
        for attr in ("weights", "defaults", "meta", "aliases", "requires"):
            object.__setattr__(self, attr, MappingProxyType(dict(getattr(self, attr))))
        if self.default_weights is not None and self.default_weights not in self.weights:
            raise PluginError(f"Default weights {self.default_weights!r} of {self.name!r} are not declared.")

    @property
    def qualified_name(self) -> str:
        """`plugin/name`, unique across plugins."""
        return f"{self.plugin}/{self.name}"

    def weights_tag(self, tag: str | None) -> str | None:
        """Canonical tag for `tag` (case-insensitive); None means the default; "none" means random init.

        Raises:
            UnknownModelError: the tag is not declared.
        """
        if tag is None:
            return self.default_weights
        if tag.lower() == "none":
            return None
        for known in self.weights:
            if known.lower() == tag.lower():
                return known
        for alias, target in self.aliases.items():
            if alias.lower() == tag.lower():
                return target
        if tag.lower() == "default" and self.default_weights:
            return self.default_weights
        tags = ", ".join(self.weights) or "none (this model has no pretrained weights)"
        raise UnknownModelError(
            f"Unknown weights tag {tag!r} for {self.name!r}. Known tags: {tags}; "
            f"use '{self.name}:none' for random init.",
            name=f"{self.name}:{tag}",
            suggestions=[f"{self.name}:{t}" for t in self.weights],
        )

    def labels_for(self, tag: str | None) -> tuple[str, ...] | None:
        """Labels of these weights, falling back to the model's."""
        weights = self.weights.get(tag) if tag else None
        return weights.labels if weights is not None and weights.labels is not None else self.labels

    def preprocess_for(self, tag: str | None) -> ImagePreprocess | None:
        """Preprocessing of these weights, falling back to the model's."""
        weights = self.weights.get(tag) if tag else None
        return weights.preprocess if weights is not None and weights.preprocess is not None else self.preprocess

    def summary(self, tag: str | None = None) -> dict[str, Any]:
        """JSON-ready description, as `zoo info --json` prints it (never imports torch).

        Args:
            tag: the weights tag asked for (`zoo info NAME:TAG`): its preprocessing is shown; None: the default's.
        """
        tag = tag or self.default_weights
        preprocess = self.preprocess_for(tag)
        return {
            "name": self.name,
            "qualified_name": self.qualified_name,
            "plugin": self.plugin,
            "task": self.task,
            "description": self.description,
            "default_weights": self.default_weights,
            "aliases": dict(self.aliases),
            "num_labels": len(self.labels) if self.labels else None,
            "weights_tag": tag,
            "preprocess": preprocess.to_dict() if preprocess else None,
            "defaults": dict(self.defaults),
            "caller_only": sorted(self.caller_only),
            "meta": dict(self.meta),
            "weights": {tag: _weights_summary(w) for tag, w in self.weights.items()},
        }


def _weights_summary(w: Weights) -> dict[str, Any]:
    art = w.artifact
    return {
        "url": w.url,
        "file": art.name,
        "sha256": art.sha256,
        "hash_prefix": art.hash_prefix,
        "size": art.size,
        "format": art.format,
        "license": art.license,
        "num_labels": len(w.labels) if w.labels else None,
        "preprocess": w.preprocess.to_dict() if w.preprocess else None,
        "builder_kwargs": dict(w.builder_kwargs),
        "metrics": dict(w.metrics),
        "meta": dict(w.meta),
    }


def as_tuple(value: Sequence[str] | None) -> tuple[str, ...] | None:
    """Tuple of strings, or None."""
    return None if value is None else tuple(str(v) for v in value)
