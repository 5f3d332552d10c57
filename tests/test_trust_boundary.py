"""Data never selects code: checkpoints and Hub config.json files that name a class, an import path, trust, a hub
repo or ref are refused before anything is imported or built, in-process and through `zoo predict`, online and
offline. Every attack file is built by hand; each would write a marker file if any code it names ran."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import zoo
from tests.conftest import ROOT

EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).with_suffix(".imported").write_text("imported")

import torch

class EvilNet(torch.nn.Module):
    def __init__(self, **kwargs):
        Path({marker!r}).with_suffix(".built").write_text("built")
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))
"""
HUBCONF = """
from pathlib import Path
Path({marker!r}).with_suffix(".hubconf").write_text("hubconf ran")

def yolov5n(**kwargs):
    raise RuntimeError("hub code ran")

def generator(**kwargs):
    raise RuntimeError("hub code ran")
"""


def safetensors_bytes(
    metadata: dict[str, str], tensors: dict[str, tuple[str, list[int], bytes]] | None = None
) -> bytes:
    """A safetensors file written by hand (no library): `tensors` maps names to (dtype, shape, raw bytes)."""
    tensors = tensors if tensors is not None else {"w": ("F32", [2], b"\0" * 8)}
    header: dict[str, object] = {"__metadata__": metadata}
    data, offset = b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data, offset = data + raw, offset + len(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def zoo_metadata(plugin: str, model: str, builder_kwargs: dict[str, object], task: str = "") -> dict[str, str]:
    return {
        "format": "pt",
        "zoo.checkpoint": "1",
        "zoo.model": model,
        "zoo.plugin": plugin,
        "zoo.task": task,
        "zoo.builder_kwargs": json.dumps(builder_kwargs),
    }


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A module `zoo_evil_marker` on sys.path and a hub repo folder: each writes a marker file if it ever runs."""
    marker = tmp_path / "marker"
    code = tmp_path / "code"
    code.mkdir()
    (code / "zoo_evil_marker.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    repo = tmp_path / "evil_repo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(code))
    yield {"marker": marker, "code": code, "repo": repo}
    sys.modules.pop("zoo_evil_marker", None)


def markers(paths: dict[str, Path]) -> list[str]:
    return sorted(p.name for p in paths["marker"].parent.glob("marker.*"))


def attacks(paths: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Checkpoint headers that, before the fix, made `zoo.load(file)` import or run the code they name."""
    repo, cls = str(paths["repo"]), "zoo_evil_marker:EvilNet"
    return {
        "mixin-model_class": zoo_metadata("hf", "mixin", {"model_class": cls}, "pytorch-module"),
        "yolov5n-hub-trust-repo": zoo_metadata("hub", "yolov5n", {"backend": "hub", "trust": True, "repo": repo}),
        "yolov5n-hub-ref": zoo_metadata("hub", "yolov5n", {"backend": "hub", "ref": "refs/pull/1/head"}),
        "animegan2-trust-repo": zoo_metadata("hub", "animegan2", {"trust": True, "repo": repo}),
        "animegan2-ref": zoo_metadata("hub", "animegan2", {"ref": "refs/pull/1/head"}),
        "timm-checkpoint_path": zoo_metadata("hf", "timm", {"architecture": "resnet18", "checkpoint_path": repo}),
        "timm-hf-hub-architecture": zoo_metadata("hf", "timm", {"architecture": "hf-hub:evil/net"}),
    }


CASES = [
    "mixin-model_class",
    "yolov5n-hub-trust-repo",
    "yolov5n-hub-ref",
    "animegan2-trust-repo",
    "animegan2-ref",
    "timm-checkpoint_path",
    "timm-hf-hub-architecture",
]


def write_attack(paths: dict[str, Path], case: str) -> Path:
    path = paths["marker"].parent / f"{case}.safetensors"
    path.write_bytes(safetensors_bytes(attacks(paths)[case]))
    return path


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
@pytest.mark.parametrize("case", CASES)
def test_checkpoint_metadata_never_selects_code_in_process(
    evil: dict[str, Path], case: str, offline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if offline:
        monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("ZOO_TRUST", "ultralytics/yolov5,bryandlee/animegan2-pytorch")  # trusted upstream, not a PR
    path = write_attack(evil, case)
    with pytest.raises(zoo.InputError) as caught:
        zoo.load(str(path), device="cpu")
    assert "\n" not in str(caught.value)
    assert "never from a file" in str(caught.value) or "never takes from a file" in str(caught.value)
    with pytest.raises(zoo.InputError):  # describing it refuses it the same way
        zoo.api.checkpoint_info(path)
    assert markers(evil) == []


def cli_env(paths: dict[str, Path], home: Path, *, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_", "HF_"))}
    python_path = [str(ROOT), str(ROOT / "plugins"), str(paths["code"])]
    env.update(
        PYTHONPATH=os.pathsep.join(python_path),
        ZOO_HOME=str(home),
        ZOO_CONFIG=str(home / "config.toml"),
        TORCH_HOME=str(home / "torch"),
        HF_HOME=str(home / "hf"),
        HF_HUB_OFFLINE="1",
    )
    if offline:
        env["ZOO_OFFLINE"] = "1"
    return env


def run_zoo(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_checkpoint_metadata_never_selects_code_through_the_cli(
    evil: dict[str, Path], isolated: Path, tmp_path: Path, offline: bool
) -> None:
    from PIL import Image

    image = tmp_path / "img.png"
    Image.new("RGB", (32, 32), (120, 30, 200)).save(image)
    env = cli_env(evil, isolated, offline=offline)
    for case in CASES:
        path = write_attack(evil, case)
        commands = [["predict", str(path), str(image), "--device", "cpu"]] + ([["info", str(path)]] if offline else [])
        for args in commands:
            out = run_zoo(args, env, tmp_path)
            assert out.returncode == 1, (case, out.stdout, out.stderr)
            assert "Traceback" not in out.stderr, (case, out.stderr)
            lines = out.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (case, out.stderr)
        assert markers(evil) == [], case


def test_a_folder_checkpoint_config_json_never_selects_code(evil: dict[str, Path], tmp_path: Path) -> None:
    """The folder form keeps builder arguments at the top of config.json: the same checks apply there."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"format": "pt"}))
    config = {"model_class": "zoo_evil_marker:EvilNet", "zoo": {"checkpoint": 1, "model": "mixin", "plugin": "hf"}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(zoo.InputError, match="model_class"):
        zoo.load(str(folder), device="cpu")
    config = {"backend": "hub", "trust": True, "repo": str(evil["repo"]), "zoo": {"model": "yolov5n", "plugin": "hub"}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(zoo.InputError, match="never from a file"):
        zoo.load(str(folder), device="cpu")
    assert markers(evil) == []


def test_the_caller_still_chooses_code_and_trust(evil: dict[str, Path], tmp_path: Path) -> None:
    """What a file may not say, the caller's keyword still may: the refusal is about the source, not the value."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "plain-mixin.safetensors"
    path.write_bytes(safetensors_bytes(zoo_metadata("hf", "mixin", {}, "pytorch-module")))
    with pytest.raises(zoo.UnsupportedError, match="model_class="):
        zoo.load(path, device="cpu")
    model = zoo.load(path, model_class="zoo_evil_marker:EvilNet", device="cpu")  # the caller's own choice
    assert torch.equal(model.module.w, torch.zeros(2))
    assert markers(evil) == ["marker.built", "marker.imported"]


def test_a_saved_model_never_records_caller_only_arguments(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    model = zoo.load("yolov5n:none", device="cpu")
    model.replace_info(  # as if the caller had passed them
        builder_kwargs={**model.builder_kwargs, "backend": "native", "trust": True, "ref": "v7.0"}
    )
    path = model.save(tmp_path / "y.safetensors")
    info = zoo.api.checkpoint_info(path)
    assert "trust" not in info.builder_kwargs and info.builder_kwargs.get("nc", 80) == 80
    assert zoo.load(path, device="cpu").spec.name == "yolov5n"


def test_a_file_value_equal_to_the_builder_default_is_harmless(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    model = zoo.load("yolov5n:none", device="cpu")
    path = tmp_path / "y.safetensors"
    from safetensors.torch import save_file

    meta = zoo_metadata("hub", "yolov5n", {"backend": "native", "ref": "v7.0", "nc": 80}, "object-detection")
    save_file({k: v.contiguous() for k, v in model.module.state_dict().items()}, str(path), metadata=meta)
    assert zoo.load(path, device="cpu").builder_kwargs["backend"] == "native"


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bogus": 1}, "does not take"),
        ({"num_classes": "https://example.org/x.pt"}, "names code"),
        ({"num_classes": ["os:system"]}, "names code"),
        ({"num_classes": 2**70}, "too large"),
        ({"num_classes": nested(20)}, "nests deeper"),
    ],
)
def test_builder_arguments_must_be_declared_plain_json(tmp_path: Path, kwargs: dict, match: str) -> None:
    path = tmp_path / "lenet.safetensors"
    path.write_bytes(safetensors_bytes(zoo_metadata("custom", "lenet5", kwargs, "image-classification")))
    with pytest.raises(zoo.InputError, match=match):
        zoo.load(path, device="cpu")


# --- the same attacks through an hf: repo's config.json ---------------------------------------------------------


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    pytest.importorskip("huggingface_hub")
    from tests.hf_endpoint import serving

    yield from serving(monkeypatch)


def hf_configs(paths: dict[str, Path]) -> dict[str, dict[str, object]]:
    cls, repo = "zoo_evil_marker:EvilNet", str(paths["repo"])
    return {
        "mixin": {"model_class": cls, "width": 3},
        "zoo-mixin": {"model_class": cls, "zoo": {"checkpoint": 1, "model": "mixin", "plugin": "hf"}},
        "zoo-yolov5n": {"backend": "hub", "trust": True, "repo": repo, "zoo": {"model": "yolov5n", "plugin": "hub"}},
        "zoo-animegan2": {"ref": "refs/pull/1/head", "zoo": {"model": "animegan2", "plugin": "hub"}},
    }


def test_hf_repo_config_json_never_selects_code(
    evil: dict[str, Path], hub: object, tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = hf_configs(evil)
    weights = safetensors_bytes({"format": "pt"})
    for name, config in configs.items():
        hub.add(f"org/{name}", {"config.json": json.dumps(config).encode(), "model.safetensors": weights})  # type: ignore[attr-defined]
    env = cli_env(evil, isolated, offline=False)
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_TOKEN="hf_zoo_test")  # type: ignore[attr-defined]
    for name in configs:
        with pytest.raises(zoo.InputError) as caught:  # online: the config is fetched, then refused
            zoo.load(f"hf:org/{name}", device="cpu")
        assert "\n" not in str(caught.value)
        if name.startswith("mixin"):  # the caller's class does not make the file's choice acceptable
            with pytest.raises(zoo.InputError, match="model_class"):
                zoo.load(f"hf:org/{name}", model_class=lambda **kw: None, device="cpu")
        out = run_zoo(["predict", f"hf:org/{name}", str(tmp_path), "--device", "cpu"], env, tmp_path)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # offline, from the cached snapshot: refused the same way
    env["ZOO_OFFLINE"] = "1"
    for name in configs:
        with pytest.raises(zoo.InputError):
            zoo.load(f"hf:org/{name}", device="cpu")
        out = run_zoo(["predict", f"hf:org/{name}", str(tmp_path), "--device", "cpu"], env, tmp_path)
        assert out.returncode == 1 and out.stderr.startswith("error: ") and "from a file" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert markers(evil) == []


def test_hf_mixin_repo_still_loads_with_the_callers_class(evil: dict[str, Path], hub: object, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    hub.add("org/plain", {"config.json": b'{"width": 3}', "model.safetensors": safetensors_bytes({})})  # type: ignore[attr-defined]
    code = textwrap.dedent("""
        import torch
        class Plain(torch.nn.Module):
            def __init__(self, width):
                super().__init__()
                self.w = torch.nn.Parameter(torch.ones(2) * width)
    """)
    namespace: dict = {}
    exec(code, namespace)
    model = zoo.load("hf:org/plain", model_class=namespace["Plain"], device="cpu")
    assert torch.equal(model.module.w, torch.zeros(2))  # built with width=3, then the repo's weights loaded
    path = model.save(tmp_path / "plain.safetensors")  # the class is not recorded: the caller passes it again
    assert zoo.api.checkpoint_info(path).builder_kwargs == {"width": 3}
    with pytest.raises(zoo.UnsupportedError, match="model_class="):
        zoo.load(path, device="cpu")
    assert torch.equal(zoo.load(path, model_class=namespace["Plain"], device="cpu").module.w, torch.zeros(2))
    assert markers(evil) == []
