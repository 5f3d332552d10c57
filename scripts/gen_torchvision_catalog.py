"""Generate the zoo torchvision plugin's catalog from the installed torchvision.

Writes `plugins/zoo_torchvision/catalog.json` (every image-classification builder of `torchvision.models`,
each weights tag with its file, metrics, preprocessing and the builder arguments the weights need) and
`plugins/zoo_torchvision/imagenet_labels.json` (the 1000 ImageNet categories, stored once and referenced
by key). Rerun it after upgrading torchvision; `tests/test_torchvision_catalog.py` fails until then.

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

FORMAT = 1
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "zoo_torchvision"
CATALOG_FILE = "catalog.json"
#: Label sets stored once, by key: key -> file name in the plugin package.
LABEL_FILES = {"imagenet1k": "imagenet_labels.json"}
#: Meta keys of torchvision's weights this script knows how to record; a new one fails loudly.
KNOWN_META = {"categories", "min_size", "num_params", "recipe", "license", "_metrics", "_ops", "_file_size", "_docs"}
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
    probe = _StateDictProbe()

    def ovewrite_named_param(kwargs: dict[str, Any], param: str, new_value: Any) -> None:
        original(kwargs, param, new_value)
        record.forced[param] = kwargs[param]

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
    title = re.split(r" from |, as described in ", summary, maxsplit=1)[0]
    title = re.sub(r"^Constructs an? ", "", title)
    return re.sub(r" model architecture\b| architecture\b| model\b", "", title).strip()


def _size(values: list[int]) -> int | list[int]:
    return values[0] if len(values) == 1 else list(values)


def preprocess(weights: Any) -> dict[str, Any]:
    """torchvision's `ImageClassification` preset of `weights`, as `zoo.ImagePreprocess.to_dict` writes it."""
    from torchvision.transforms._presets import ImageClassification

    preset = weights.transforms()
    if not isinstance(preset, ImageClassification):
        raise TypeError(f"{weights}: transforms() is a {type(preset).__name__}, not ImageClassification")
    return {
        "resize": _size(preset.resize_size),
        "crop": _size(preset.crop_size),
        "mean": [float(x) for x in preset.mean],
        "std": [float(x) for x in preset.std],
        "interpolation": preset.interpolation.value,
        "antialias": bool(preset.antialias),
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
    """ImageNet-1K acc@1 / acc@5, leaving out the values torchvision publishes as NaN."""
    extra = set(meta["_metrics"]) - {"ImageNet-1K"}
    if extra:
        raise ValueError(f"{name}: metrics on {sorted(extra)} are not recorded yet: extend metrics()")
    values = meta["_metrics"]["ImageNet-1K"]
    return {key: float(value) for key, value in sorted(values.items()) if not math.isnan(value)}


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
    module, record = record_build(builder, weights)
    hash_match = HASH_REGEX.search(weights.url.rsplit("/", 1)[-1])
    entry: dict[str, Any] = {
        "url": weights.url,
        "hash_prefix": hash_match.group(1) if hash_match and hash_match.group(1) else None,
        "labels": labels_key(meta["categories"], label_sets),
        "preprocess": preprocess(weights),
        "builder_kwargs": builder_kwargs(record, plain, module),
        "metrics": metrics(meta, f"{model}.{weights.name}"),
        "license": meta.get("license"),
        "meta": {
            "num_params": meta["num_params"],
            "min_size": list(meta["min_size"]),
            "file_size_mb": meta["_file_size"],
            "gflops": meta["_ops"],
            "recipe": meta["recipe"],
            "docs": _plain_text(meta["_docs"]),
        },
    }
    prefixes = dropped_prefixes(record, module, model)
    if prefixes:
        entry["drop_prefixes"] = prefixes
    if record.renames_keys:
        entry["renames_keys"] = True
    return entry


def model_entry(name: str, label_sets: dict[str, list[str]]) -> dict[str, Any]:
    """Catalog entry of one torchvision classifier: family, summary, default tag and every tag."""
    from torchvision.models import get_model_builder, get_model_weights

    builder = get_model_builder(name)
    enum = get_model_weights(name)
    _, plain = record_build(builder, None)
    tags = {member.name: tag_entry(name, member, label_sets, plain) for member in enum}
    default = enum.DEFAULT.name
    summary = _plain_text(builder.__doc__)
    title = _title(summary)
    # the description quotes the weights a bare name loads (zoo_torchvision.ORIGINAL_TAG where it exists)
    acc = tags[ORIGINAL_TAG if ORIGINAL_TAG in tags else default]["metrics"].get("acc@1")
    return {
        "family": builder.__module__.rsplit(".", 1)[-1],
        "summary": summary,
        "description": f"{title} (ImageNet-1K, acc@1 {acc:.2f})" if acc is not None else title,
        "weights_enum": enum.__name__,
        "default": default,
        "tags": tags,
    }


def build_label_files() -> dict[str, list[str]]:
    """The label files to write: file name -> categories."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    sets = {"imagenet1k": list(_IMAGENET_CATEGORIES)}
    return {LABEL_FILES[key]: labels for key, labels in sets.items()}


def classification_models() -> list[str]:
    """Names of torchvision's image-classification builders (not detection, segmentation, video, quantized)."""
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_catalog() -> dict[str, Any]:
    """The catalog, as JSON-ready data, from the installed torchvision."""
    import torchvision

    files = build_label_files()
    label_sets = {key: files[file] for key, file in LABEL_FILES.items()}
    return {
        "format": FORMAT,
        "torchvision": torchvision.__version__.split("+", 1)[0],
        "labels": dict(LABEL_FILES),
        "models": {name: model_entry(name, label_sets) for name in classification_models()},
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
