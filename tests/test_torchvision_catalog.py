"""The torchvision plugin: its catalog matches the installed torchvision, and every weights tag fits its model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import zoo_torchvision
from zoo_torchvision import _build

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_torchvision_catalog.py"
PLUGIN_DIR = Path(zoo_torchvision.__file__).resolve().parent
CATALOG = json.loads((PLUGIN_DIR / "catalog.json").read_text(encoding="utf-8"))
TAGS = [(name, tag) for name, entry in sorted(CATALOG["models"].items()) for tag in sorted(entry["tags"])
        if not entry["tags"][tag].get("quantized")]  # fmt: skip
RERUN = f"rerun `.venv/bin/python {SCRIPT.relative_to(ROOT)}` and commit the result"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """The catalog generator script, imported from its file."""
    spec = importlib.util.spec_from_file_location("gen_torchvision_catalog", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _shapes(module: Any) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def _differences(shipped: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Model names (and top-level keys) whose entries differ, for a readable failure message."""
    keys = sorted(set(shipped) | set(expected))
    out = [key for key in keys if key != "models" and shipped.get(key) != expected.get(key)]
    models, fresh = shipped.get("models", {}), expected.get("models", {})
    out += [f"+{name}" for name in sorted(set(fresh) - set(models))]
    out += [f"-{name}" for name in sorted(set(models) - set(fresh))]
    out += [name for name in sorted(set(models) & set(fresh)) if models[name] != fresh[name]]
    return out


def test_catalog_matches_installed_torchvision(gen: ModuleType) -> None:
    import torchvision

    expected = json.loads(gen.render(gen.build_catalog()))
    version = (CATALOG["torchvision"], expected["torchvision"])
    shipped = {**CATALOG, "torchvision": None}
    expected["torchvision"] = None
    assert shipped == expected, (
        f"plugins/zoo_torchvision/catalog.json (from torchvision {version[0]}) does not match the installed "
        f"torchvision {torchvision.__version__} ({', '.join(_differences(shipped, expected)[:10])}): {RERUN}"
    )
    for name, labels in gen.build_label_files().items():
        on_disk = json.loads((PLUGIN_DIR / name).read_text(encoding="utf-8"))
        assert on_disk == labels, f"plugins/zoo_torchvision/{name} is stale: {RERUN}"


@pytest.mark.parametrize(("name", "tag"), TAGS, ids=[f"{n}:{t}" for n, t in TAGS])
def test_weights_fit_the_module_zoo_builds(
    gen: ModuleType, monkeypatch: pytest.MonkeyPatch, name: str, tag: str
) -> None:
    """torchvision's own builder, given the weights, loads a file into a module; zoo's build must have the same keys.

    The upstream file holds the keys the module had when torchvision loaded it (recorded by the patched
    `load_state_dict`); the spec's hook must turn those into zoo's module keys, with the same shapes.
    """
    import torch
    from torchvision.models import get_model_builder, get_model_weights

    spec = zoo_torchvision.plugin.specs[name]
    record = gen.BuildRecord()
    with monkeypatch.context() as patch:
        for target, attr, value in gen.recording_patches(record):
            patch.setattr(target, attr, value)
        with torch.device("meta"), _build.parameters_on_meta(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            upstream = get_model_builder(name)(weights=get_model_weights(name)[tag])
    with torch.device("meta"):
        module = spec.builder(**spec.weights[tag].builder_kwargs)

    assert type(module) is type(upstream)
    assert _shapes(module) == _shapes(upstream)
    assert record.load_keys is not None, f"{name}: torchvision's builder loaded no weights"
    file_keys = dict.fromkeys(record.load_keys)
    hooked = spec.state_dict_hook(file_keys) if spec.state_dict_hook else file_keys
    assert set(hooked) == set(module.state_dict()), "the weights file would not load strictly"


def test_every_key_renaming_family_has_a_hook() -> None:
    renaming = {entry["family"] for entry in CATALOG["models"].values() if any(
        tag.get("renames_keys") for tag in entry["tags"].values())}  # fmt: skip
    assert "densenet" in renaming  # the generator notices torchvision renaming keys in code
    missing = renaming - set(_build.KEY_HOOKS)
    assert not missing, f"torchvision rewrites the keys of {sorted(missing)} files before loading: add KEY_HOOKS"
    for name, entry in CATALOG["models"].items():
        if entry["family"] in renaming:
            assert zoo_torchvision.plugin.specs[name].state_dict_hook is not None, name


def _legacy_densenet_key(key: str) -> str:
    """`...denselayer1.norm1.weight` -> `...denselayer1.norm.1.weight`, as torchvision's published files name it."""
    return re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)


def test_densenet_hook_renames_torchvision_legacy_keys() -> None:
    """A file in the published DenseNet layout (legacy names, saved before BatchNorm counted batches) loads."""
    import torch

    spec = zoo_torchvision.plugin.specs["densenet121"]
    kwargs = spec.weights[spec.default_weights].builder_kwargs
    with torch.device("meta"):
        module = spec.builder(**kwargs)
    shapes = _shapes(module)
    legacy = {
        _legacy_densenet_key(k): torch.empty(v, device="meta") for k, v in shapes.items() if "num_batches" not in k
    }
    assert "features.denseblock1.denselayer1.norm.1.running_var" in legacy
    assert spec.state_dict_hook is not None
    state = spec.state_dict_hook(legacy)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: v for k, v in shapes.items() if "num_batches" not in k}
    module.load_state_dict(state, strict=True, assign=True)  # BatchNorm fills in num_batches_tracked itself


def test_googlenet_hook_drops_the_aux_heads_zoo_does_not_build() -> None:
    import torch

    spec = zoo_torchvision.plugin.specs["googlenet"]
    kwargs = dict(spec.weights["IMAGENET1K_V1"].builder_kwargs)
    assert kwargs["aux_logits"] is False and kwargs["transform_input"] is True
    with torch.device("meta"):
        upstream = spec.builder(**{**kwargs, "aux_logits": True}).state_dict()  # torchvision loads into this
        module = spec.builder(**kwargs)
    assert any(key.startswith("aux1.") for key in upstream)
    assert spec.state_dict_hook is not None
    module.load_state_dict(spec.state_dict_hook(dict(upstream)), strict=True, assign=True)


def test_listing_the_plugin_does_not_import_torch() -> None:
    code = (
        "import sys, json, zoo_torchvision\n"
        "specs = zoo_torchvision.plugin.specs\n"
        "json.dumps([spec.summary() for spec in specs.values()])\n"
        "assert len(specs) >= 80\n"
        "heavy = sorted(m for m in ('torch', 'torchvision') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_catalog_facts() -> None:
    specs = zoo_torchvision.plugin.specs
    assert len(specs) >= 80 and len(TAGS) >= 110
    resnet18 = specs["resnet18"]
    assert resnet18.plugin == "torchvision" and resnet18.task == "image-classification"
    assert resnet18.default_weights == "IMAGENET1K_V1"
    assert resnet18.weights["IMAGENET1K_V1"].hash_prefix == "f37072fd"
    assert resnet18.description == "ResNet-18 (ImageNet-1K, acc@1 69.76)"
    assert resnet18.weights["IMAGENET1K_V1"].metrics["acc@1"] == pytest.approx(69.758)
    mobilenet = specs["mobilenet_v2"]
    v1 = mobilenet.weights["IMAGENET1K_V1"]
    assert v1.url == "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
    assert v1.artifact.expected_digest == "b0353104" and v1.license == "BSD-3-Clause"
    assert mobilenet.default_weights == "IMAGENET1K_V1"  # the weights pretrained=True gives
    assert mobilenet.weights_tag("default") == "IMAGENET1K_V2"  # torchvision's weights="DEFAULT"
    assert specs["vit_h_14"].default_weights == "IMAGENET1K_SWAG_E2E_V1"  # no V1: torchvision's default
    assert v1.preprocess is not None
    assert (v1.preprocess.resize, v1.preprocess.crop, v1.preprocess.interpolation) == (256, 224, "bilinear")
    assert mobilenet.labels is not None and len(mobilenet.labels) == 1000 and mobilenet.labels[0] == "tench"
    assert mobilenet.labels is resnet18.labels  # one shared tuple, not 80 copies
    vit = specs["vit_h_14"].weights["IMAGENET1K_SWAG_E2E_V1"]
    assert vit.builder_kwargs["image_size"] == 518 and vit.preprocess is not None
    assert vit.preprocess.interpolation == "bicubic" and "SWAG" in str(vit.license)
    assert specs["maxvit_t"].weights["IMAGENET1K_V1"].builder_kwargs["input_size"] == (224, 224)
    assert specs["vgg16"].weights["IMAGENET1K_FEATURES"].metrics == {}  # torchvision publishes NaN


def test_real_mobilenet_v2_file_loads_strictly(assets: Path) -> None:
    import torch

    spec = zoo_torchvision.plugin.specs["mobilenet_v2"]
    weights = spec.weights["IMAGENET1K_V1"]
    path = assets / "weights" / weights.artifact.name
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(weights.hash_prefix or "-")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        module = spec.builder(**weights.builder_kwargs)
    module.load_state_dict(state, strict=True, assign=True)
    assert not any(t.is_meta for t in (*module.parameters(), *module.buffers()))
