"""Generate the zoo torchvision plugin's catalog from the installed torchvision.

Writes `plugins/zoo_torchvision/catalog.json` (every builder of `torchvision.models.list_models()`: image
classification, detection, instance segmentation, keypoints, semantic segmentation, video, optical flow and the
quantized classifiers, each with its zoo task name and each weights tag with its file, metrics, preprocessing
and the builder arguments the weights need) and the label files (ImageNet, COCO, COCO persons, VOC,
Kinetics-400: each stored once and referenced by key). Rerun it after upgrading torchvision;
`tests/test_torchvision_catalog.py` fails until then.

    .venv/bin/python scripts/gen_torchvision_catalog.py          # write the files
    .venv/bin/python scripts/gen_torchvision_catalog.py --check  # exit 1 when they are stale

The builder arguments are captured, not hand-written: each builder is called with `weights=<tag>` on the
meta device while torchvision's `_ovewrite_named_param` records what it forces, `WeightsEnum.get_state_dict`
returns an empty probe and `Module.load_state_dict` records the module's keys instead of loading.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import json
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from zoo_torchvision import ORIGINAL_TAG

FORMAT = 2
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "zoo_torchvision"
CATALOG_FILE = "catalog.json"
#: Label sets stored once, by key: key -> file name in the plugin package.
LABEL_FILES = {
    "imagenet1k": "imagenet_labels.json",
    "coco": "coco_labels.json",
    "coco_person": "coco_person_labels.json",
    "voc": "voc_labels.json",
    "kinetics400": "kinetics400_labels.json",
}
#: Meta keys of torchvision's weights this script knows how to record; a new one fails loudly.
KNOWN_META = {
    "categories", "min_size", "num_params", "recipe", "license", "_metrics", "_ops", "_file_size", "_docs",
    "keypoint_names", "min_temporal_size", "backend", "unquantized",
}  # fmt: skip
#: zoo task of each `torchvision.models` sub-module (the detection module's builders are refined by `task_of`).
MODULE_TASKS = {
    "torchvision.models": "image-classification",
    "torchvision.models.quantization": "image-classification",
    "torchvision.models.detection": "object-detection",
    "torchvision.models.segmentation": "semantic-segmentation",
    "torchvision.models.video": "video-classification",
    "torchvision.models.optical_flow": "optical-flow",
}
#: Sub-modules whose builders zoo builds with `layout=TAG` (torchvision's own structure for those weights:
#: frozen batch norm, its eps) instead of forcing arguments: detection builders change layers when trained.
LAYOUT_MODULES = {"torchvision.models.detection"}
#: Arguments torchvision's private helpers force but its public builders already pass (MViT's sizes):
#: passing them again fails, and the builder gives the module the same values.
INTERNAL_PARAMS = {"spatial_size", "temporal_size"}
_MISSING = object()


@functools.cache
def load_build_module() -> ModuleType:
    """The plugin's `_build` module, loaded by path so a missing or stale catalog cannot stop this script."""
    path = PLUGIN_DIR / "_build.py"
    spec = importlib.util.spec_from_file_location("_zoo_torchvision_build", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- capturing what a builder does with its weights ---------------------------------------------------


class _StateDictProbe(dict):  # type: ignore[type-arg]
    """The empty state_dict handed to builders; notes whether the builder read or changed it before loading."""

    touched = False

    def keys(self) -> Any:
        self.touched = True
        return super().keys()

    def items(self) -> Any:
        self.touched = True
        return super().items()

    def pop(self, *args: Any) -> Any:
        self.touched = True
        return super().pop(*args)

    def __iter__(self) -> Iterator[str]:
        self.touched = True
        return super().__iter__()

    def __setitem__(self, key: str, value: Any) -> None:
        self.touched = True
        super().__setitem__(key, value)


@dataclass
class BuildRecord:
    """What one builder call did.

    Attributes:
        forced: (param, value) pairs the builder forced through `_ovewrite_named_param`, in call order.
        load_keys: state_dict keys of the module when the weights were loaded into it (the file's keys).
        renames_keys: the builder read or rewrote the state_dict before loading it (legacy key names).
    """

    forced: dict[str, Any] = field(default_factory=dict)
    load_keys: set[str] | None = None
    renames_keys: bool = False


def recording_patches(record: BuildRecord) -> list[tuple[object, str, object]]:
    """(target, attribute, replacement) triples that make torchvision builders record into `record`.

    Apply them with `setattr` (or pytest's `monkeypatch.setattr`) and restore them afterwards.
    """
    import torch
    import torchvision.models  # noqa: F401 - loads every torchvision.models.* module
    from torchvision.models import _api, _utils

    original = _utils._ovewrite_named_param
    original_value = _utils._ovewrite_value_param
    probe = _StateDictProbe()

    def ovewrite_named_param(kwargs: dict[str, Any], param: str, new_value: Any) -> None:
        original(kwargs, param, new_value)
        record.forced[param] = kwargs[param]

    def ovewrite_value_param(param: str, actual: Any, expected: Any) -> Any:
        value = original_value(param, actual, expected)
        record.forced[param] = value
        return value

    def get_state_dict(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return probe

    def load_state_dict(self: torch.nn.Module, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if not strict:
            raise RuntimeError(f"{type(self).__name__}: the builder loads its weights non-strictly; handle it here")
        record.load_keys = set(self.state_dict())
        record.renames_keys = state_dict is not probe or probe.touched

    patches: list[tuple[object, str, object]] = [
        (_api.WeightsEnum, "get_state_dict", get_state_dict),
        (torch.nn.Module, "load_state_dict", load_state_dict),
    ]
    for name, module in sorted(sys.modules.items()):
        if name.startswith("torchvision.models") and getattr(module, "_ovewrite_named_param", None) is original:
            patches.append((module, "_ovewrite_named_param", ovewrite_named_param))
        if name.startswith("torchvision.models") and getattr(module, "_ovewrite_value_param", None) is original_value:
            patches.append((module, "_ovewrite_value_param", ovewrite_value_param))
    return patches


@contextmanager
def _patched(patches: list[tuple[object, str, object]]) -> Iterator[None]:
    saved = [(target, attr, getattr(target, attr)) for target, attr, _ in patches]
    try:
        for target, attr, value in patches:
            setattr(target, attr, value)
        yield
    finally:
        for target, attr, value in reversed(saved):
            setattr(target, attr, value)


def record_build(builder: Callable[..., Any], weights: Any) -> tuple[Any, BuildRecord]:
    """Call a torchvision builder with `weights` on the meta device, loading nothing; return module and record."""
    import torch

    record = BuildRecord()
    build = load_build_module()
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", FutureWarning)  # GoogLeNet's and Inception's note on init_weights
        stack.enter_context(_patched(recording_patches(record)))
        stack.enter_context(torch.device("meta"))
        stack.enter_context(build.parameters_on_meta())
        module = builder(weights=weights)
    return module, record


def builder_kwargs(with_weights: BuildRecord, without_weights: BuildRecord, module: Any) -> dict[str, Any]:
    """The arguments the weights force, beyond what the builder forces anyway, as the returned module has them.

    A builder may reset a forced argument after loading (GoogLeNet loads with `aux_logits=True`, then drops
    the aux heads unless asked for them): the value the returned module holds then wins.
    """
    out = {}
    for param, value in with_weights.forced.items():
        if without_weights.forced.get(param, _MISSING) == value:
            continue
        final = getattr(module, param, _MISSING)
        out[param] = final if isinstance(final, (bool, int, float, str)) and final != value else value
    return out


def dropped_prefixes(record: BuildRecord, module: Any, name: str) -> list[str]:
    """Prefixes of the keys the weights file holds but the returned module lacks (heads dropped after loading)."""
    final = set(module.state_dict())
    loaded = record.load_keys if record.load_keys is not None else final
    if final - loaded:
        raise RuntimeError(f"{name}: the builder adds {sorted(final - loaded)[:3]} after loading; handle it here")
    prefixes = sorted({key.split(".", 1)[0] + "." for key in loaded - final})
    if any(key.startswith(tuple(prefixes)) for key in final):
        raise RuntimeError(f"{name}: the keys dropped after loading share prefixes with kept ones: {prefixes}")
    return prefixes


# --- turning torchvision's weights metadata into JSON-ready data -------------------------------------


def _plain_text(doc: str | None) -> str:
    """First sentence of a docstring with reStructuredText links reduced to their titles."""
    text = " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())
    text = re.sub(r"`([^`<]+?)\s*<[^>]+>`_{1,2}", r"\1", text)
    text = text.replace("``", "").replace("`", "")
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match.group(1) if match else text


def _title(summary: str) -> str:
    """Short model title from a builder docstring's first sentence ("ResNet-18 from ..." -> "ResNet-18")."""
    title = re.split(r" from |, as described (?:in|at) ", summary, maxsplit=1)[0].rstrip(".")
    title = re.sub(r"^Constructs an? ", "", title)
    return re.sub(r" model architecture\b| architecture\b| model\b", "", title).strip()


def _size(values: list[int]) -> int | list[int]:
    return values[0] if len(values) == 1 else list(values)


def preprocess(weights: Any) -> dict[str, Any]:
    """torchvision's preset of `weights` (`weights.transforms()`), as `zoo.ImagePreprocess.to_dict` writes it.

    Detection presets only scale to [0, 1] (the detector resizes and normalizes inside its forward); the
    optical-flow preset maps [0, 1] to [-1, 1]; video presets resize each frame without antialias.
    """
    from torchvision.transforms import _presets

    preset = weights.transforms()
    plain = {"resize": None, "crop": None, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    if isinstance(preset, _presets.ObjectDetection):
        return {**plain, "interpolation": "bilinear", "antialias": True, "channels": 3}
    if isinstance(preset, _presets.OpticalFlow):
        return {**plain, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "antialias": True,
                "channels": 3}  # fmt: skip
    if isinstance(preset, _presets.SemanticSegmentation):
        resize, crop = preset.resize_size, None
    elif isinstance(preset, (_presets.ImageClassification, _presets.VideoClassification)):
        resize, crop = preset.resize_size, preset.crop_size
    else:
        raise TypeError(f"{weights}: transforms() is a {type(preset).__name__}: teach preprocess() about it")
    video = isinstance(preset, _presets.VideoClassification)
    return {
        "resize": _size(resize) if resize is not None else None,
        "crop": _size(crop) if crop is not None else None,
        "mean": [float(x) for x in preset.mean],
        "std": [float(x) for x in preset.std],
        "interpolation": preset.interpolation.value,
        "antialias": False if video else bool(preset.antialias),  # VideoClassification hard-codes False
        "channels": 3,
    }


def labels_key(categories: list[str] | None, label_sets: dict[str, list[str]]) -> str | None:
    """Key of the label set equal to `categories` (None for weights without class labels)."""
    if categories is None:
        return None
    for key, labels in label_sets.items():
        if list(categories) == labels:
            return key
    raise ValueError(f"categories {categories[:3]}... match no label set: add one to LABEL_FILES")


def metrics(meta: dict[str, Any], name: str) -> dict[str, float]:
    """The published metrics, leaving out the values torchvision publishes as NaN.

    One dataset (ImageNet-1K acc@1, COCO box_map, ...): its keys as they are; several (RAFT's Sintel and
    KITTI figures): `dataset/key`.
    """
    datasets = meta["_metrics"]
    if not datasets:
        raise ValueError(f"{name}: no metrics published")
    out = {}
    for dataset, values in sorted(datasets.items()):
        prefix = f"{dataset}/" if len(datasets) > 1 else ""
        out.update({prefix + key: float(value) for key, value in sorted(values.items()) if not math.isnan(value)})
    return out


def tag_entry(model: str, weights: Any, label_sets: dict[str, list[str]], plain: BuildRecord) -> dict[str, Any]:
    """Catalog entry of one weights tag, with its builder arguments captured from a meta-device build.

    Args:
        model: the builder name.
        weights: the weights enum member.
        label_sets: known label sets by key.
        plain: the record of the same builder called without weights.
    """
    from torch.hub import HASH_REGEX
    from torchvision.models import get_model_builder

    meta = dict(weights.meta)
    unknown = set(meta) - KNOWN_META
    if unknown:
        raise ValueError(f"{model}.{weights.name}: unknown meta keys {sorted(unknown)}: record them in tag_entry()")
    builder = get_model_builder(model)
    quantized = "backend" in meta
    if quantized:  # the quantized structure cannot be built on the meta device: record the float one
        with _quantize_skipped():
            module, record = record_build(functools.partial(builder, quantize=True), weights)
    else:
        module, record = record_build(builder, weights)
    hash_match = HASH_REGEX.search(weights.url.rsplit("/", 1)[-1])
    entry: dict[str, Any] = {
        "url": weights.url,
        "hash_prefix": hash_match.group(1) if hash_match and hash_match.group(1) else None,
        "labels": labels_key(meta.get("categories"), label_sets),
        "preprocess": preprocess(weights),
        "builder_kwargs": tag_kwargs(builder, weights, record, plain, module),
        "metrics": metrics(meta, f"{model}.{weights.name}"),
        "license": meta.get("license"),
        "meta": {
            "num_params": meta["num_params"],
            "min_size": list(meta["min_size"]),
            "file_size_mb": meta["_file_size"],
            "gflops": meta["_ops"],
            "recipe": meta["recipe"],
            "docs": _plain_text(meta["_docs"]),
            "datasets": sorted(meta["_metrics"]),
            **({"keypoint_names": list(meta["keypoint_names"])} if "keypoint_names" in meta else {}),
            **({"min_temporal_size": meta["min_temporal_size"]} if "min_temporal_size" in meta else {}),
            **({"backend": meta["backend"], "unquantized": str(meta["unquantized"])} if quantized else {}),
        },
    }
    if quantized:
        entry["quantized"] = True
    prefixes = dropped_prefixes(record, module, model)
    if prefixes:
        entry["drop_prefixes"] = prefixes
    if record.renames_keys:
        entry["renames_keys"] = True
    return entry


def tag_kwargs(builder: Any, weights: Any, record: BuildRecord, plain: BuildRecord, module: Any) -> dict[str, Any]:
    """The builder arguments zoo passes for `weights`: the forced ones, `layout` for detection, the quantization."""
    out = {k: v for k, v in builder_kwargs(record, plain, module).items() if k not in INTERNAL_PARAMS}
    if builder.__module__.rsplit(".", 1)[0] in LAYOUT_MODULES:
        out["layout"] = weights.name
    if "backend" in weights.meta:
        out.update(quantize=True, backend=weights.meta["backend"])
    return out


@contextmanager
def _quantize_skipped() -> Iterator[None]:
    """Quantized builders with `quantize_model`, `prepare_qat`, `convert` made no-ops (they need real tensors)."""
    import torch.ao.quantization
    import torchvision.models.quantization as quantization

    modules = [m for name, m in sorted(sys.modules.items()) if name.startswith(quantization.__name__)]
    patches: list[tuple[object, str, object]] = [
        (m, "quantize_model", lambda model, backend: None) for m in modules if hasattr(m, "quantize_model")
    ]
    for attr in ("convert", "prepare_qat"):  # MobileNetV3's QAT path
        patches.append((torch.ao.quantization, attr, lambda model, inplace=False: model))
    with _patched(patches):
        yield


def task_of(name: str) -> str:
    """zoo's task name of torchvision builder `name`."""
    from torchvision.models import get_model_builder

    module = get_model_builder(name).__module__.rsplit(".", 1)[0]
    if name.startswith("maskrcnn"):
        return "instance-segmentation"
    if name.startswith("keypointrcnn"):
        return "keypoint-detection"
    return MODULE_TASKS[module]


def model_entry(name: str, label_sets: dict[str, list[str]]) -> dict[str, Any]:
    """Catalog entry of one torchvision model: task, family, summary, default tag and every tag."""
    from torchvision.models import get_model_builder, get_model_weights

    builder = get_model_builder(name)
    enum = get_model_weights(name)
    _, plain = record_build(builder, None)
    tags = {member.name: tag_entry(name, member, label_sets, plain) for member in enum}
    default = enum.DEFAULT.name
    summary = _plain_text(builder.__doc__)
    title = _title(summary)
    # the description quotes the weights a bare name loads (zoo_torchvision.ORIGINAL_TAG where it exists)
    first = tags[ORIGINAL_TAG if ORIGINAL_TAG in tags else default]
    return {
        "task": task_of(name),
        "family": builder.__module__.rsplit(".", 1)[-1],
        "summary": summary,
        "description": _description(title, first),
        "weights_enum": enum.__name__,
        "default": default,
        "tags": tags,
    }


#: The headline metric quoted in a description, by dataset (the first one found is quoted).
_HEADLINE = (("acc@1", "acc@1"), ("mask_map", "mask mAP"), ("kp_map", "keypoint mAP"), ("box_map", "box mAP"),
             ("miou", "mIoU"), ("Sintel-Train-Cleanpass/epe", "Sintel clean EPE"))  # fmt: skip


def _description(title: str, tag: dict[str, Any]) -> str:
    """`Title (dataset, metric value)` for `zoo list`."""
    if tag.get("quantized"):
        title = f"{title}, quantized ({tag['meta']['backend']})"
    found = tag["metrics"]
    for key, label in _HEADLINE:
        if key in found:
            dataset = tag["meta"]["datasets"][0] if len(tag["meta"]["datasets"]) == 1 else "Sintel"
            return f"{title} ({dataset}, {label} {found[key]:.2f})"
    return title


def build_label_files() -> dict[str, list[str]]:
    """The label files to write: file name -> categories."""
    from torchvision.models import _meta

    sets = {
        "imagenet1k": list(_meta._IMAGENET_CATEGORIES),
        "coco": list(_meta._COCO_CATEGORIES),
        "coco_person": list(_meta._COCO_PERSON_CATEGORIES),
        "voc": list(_meta._VOC_CATEGORIES),
        "kinetics400": list(_meta._KINETICS400_CATEGORIES),
    }
    return {LABEL_FILES[key]: labels for key, labels in sets.items()}


def all_models() -> list[str]:
    """Names of every builder of `torchvision.models.list_models()` (every sub-module)."""
    import torchvision.models

    return sorted(torchvision.models.list_models())


def build_catalog() -> dict[str, Any]:
    """The catalog, as JSON-ready data, from the installed torchvision."""
    import torchvision

    files = build_label_files()
    label_sets = {key: files[file] for key, file in LABEL_FILES.items()}
    return {
        "format": FORMAT,
        "torchvision": torchvision.__version__.split("+", 1)[0],
        "labels": dict(LABEL_FILES),
        "models": {name: model_entry(name, label_sets) for name in all_models()},
    }


#: A JSON list of numbers or short plain strings, as `json.dumps(indent=...)` spreads it over lines.
_FLAT_LIST = re.compile(r'\[\s+((?:(?:-?[0-9.eE+-]+|"[^",\\]*"),\s+)*(?:-?[0-9.eE+-]+|"[^",\\]*"))\s+\]')


def render(data: Any) -> str:
    """Deterministic JSON text: sorted keys, no NaN, one key per line, short lists kept on one line."""
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return _FLAT_LIST.sub(lambda m: "[" + ", ".join(item.strip() for item in m.group(1).split(",")) + "]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with `--check`, compare) the catalog files; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the shipped files are stale")
    parser.add_argument("--out", type=Path, default=PLUGIN_DIR, help="directory to write into")
    args = parser.parse_args(argv)
    catalog = build_catalog()
    files = {CATALOG_FILE: render(catalog)}
    files.update({name: render(labels) for name, labels in build_label_files().items()})
    stale = [name for name, text in files.items() if _read(args.out / name) != text]
    if args.check:
        print(f"stale: {', '.join(stale)}; rerun {Path(__file__).name}" if stale else "up to date")
        return 1 if stale else 0
    for name in stale:
        (args.out / name).write_text(files[name], encoding="utf-8")
    tags = sum(len(model["tags"]) for model in catalog["models"].values())
    wrote = ", ".join(stale) or "nothing (up to date)"
    print(f"torchvision {catalog['torchvision']}: {len(catalog['models'])} models, {tags} weights tags; wrote {wrote}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
