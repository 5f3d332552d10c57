"""Every backend loads its pretrained weights in a fresh process: `zoo predict` run as a subprocess, once per
backend (torchvision, custom, hub native, hub code, ultralytics, hf, timm), on a weights file in its real
upstream format, checked against a reference: the shared assets' recorded outputs, or the upstream library's
own pipeline run here on the same file.

A fresh process matters: a library first imported inside zoo's meta-device build (ultralytics) used to leave
tensors on the meta device, which tests that had imported it earlier never saw. Skipped without
../shared/assets (the real weights and photos).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

pytestmark = pytest.mark.assets
torch = pytest.importorskip("torch")


class ZooPredict:
    """`python -m zoo predict ARGS --json` started in a new process (the test's environment plus `env`); the
    test computes its reference while it runs (the machine has two cores), then reads its `results()`."""

    def __init__(self, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoo", "predict", *args, "--json", "--device", "cpu"],
            env={**os.environ, "ZOO_PROGRESS": "0", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def results(self) -> list[dict[str, Any]]:
        """The JSON results, after checking the process succeeded without a traceback."""
        try:
            stdout, stderr = self.proc.communicate(timeout=300)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        assert self.proc.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]
        data = json.loads(stdout)
        assert data["errors"] == []
        return data["results"]


def zoo_predict(*args: str, **env: str) -> list[dict[str, Any]]:
    """The results of `zoo predict ARGS --json` in a new process."""
    return ZooPredict(*args, **env).results()


def top(result: dict[str, Any]) -> tuple[list[str], list[float]]:
    return [t["label"] for t in result["top"]], [t["score"] for t in result["top"]]


@pytest.fixture
def offline_weights(assets: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared weights folder on ZOO_WEIGHTS_PATH, with zoo offline: nothing may be downloaded."""
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return assets / "weights"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """60 of scikit-learn's held-out digits (the demo recipe's split: lenet5:digits never trained on them)."""
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("train_demo_models", ROOT / "scripts" / "train_demo_models.py")
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recipe  # its dataclasses look their module up
    spec.loader.exec_module(recipe)
    *_, images, labels = recipe.digits_split()
    return images[:60], labels[:60]


def write_digits(folder: Path, digits: tuple[np.ndarray, np.ndarray]) -> dict[str, str]:
    """The digits as 8x8 grayscale PNG files; returns {file name: true label}."""
    folder.mkdir()
    truth = {}
    for i, (image, label) in enumerate(zip(*digits)):
        Image.fromarray(image).save(folder / f"d{i:02d}.png")
        truth[f"d{i:02d}.png"] = str(label)
    return truth


def digit_accuracy(results: list[dict[str, Any]], truth: dict[str, str]) -> float:
    assert sorted(Path(r["source"]).name for r in results) == sorted(truth)
    return float(np.mean([r["top"][0]["label"] == truth[Path(r["source"]).name] for r in results]))


# -- catalog backends: torchvision, custom, hub native -------------------------------------------------------


def test_torchvision_mobilenet_v2_gives_the_reference_top5(assets: Path, offline_weights: Path) -> None:
    """torchvision's own .pth (legacy pickle) is converted and loaded; every photo's top-5 is torchvision's."""
    reference = json.loads((assets / "reference" / "mobilenet_v2.json").read_text())["images"]
    results = zoo_predict("mobilenet_v2", str(assets / "images"))
    assert sorted(Path(r["source"]).name for r in results) == sorted(reference)
    for result in results:
        expected = reference[Path(result["source"]).name]
        labels, scores = top(result)
        assert labels == [e["label"] for e in expected], result["source"]
        np.testing.assert_allclose(scores, [e["score"] for e in expected], atol=1e-3)


def test_custom_lenet5_reads_held_out_digits(digits: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights shipped inside the package (`pkg:` source) load offline; the recipe measured 97.8%."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    truth = write_digits(tmp_path / "digits", digits)
    results = zoo_predict("lenet5:digits", str(tmp_path / "digits"), "--top-k", "1")
    assert digit_accuracy(results, truth) >= 0.9


def test_hub_native_yolov5n_gives_the_reference_boxes(assets: Path, offline_weights: Path) -> None:
    """The real yolov5n.pt (a full-module pickle, read without unpickling code) through zoo's own YOLOv5."""
    reference = json.loads((assets / "reference" / "yolov5n.json").read_text())["images"]
    names = ("bus.jpg", "zidane.jpg")
    results = zoo_predict("yolov5n", *(str(assets / "images" / n) for n in names))
    for name, result in zip(names, results):
        found, expected = result["detections"], reference[name]
        assert [d["label"] for d in found] == [e["label"] for e in expected], name
        np.testing.assert_allclose([d["score"] for d in found], [e["score"] for e in expected], atol=0.01)
        np.testing.assert_allclose([d["xyxy"] for d in found], [e["xyxy"] for e in expected], atol=2.0)


# -- hub code: the real bryandlee/animegan2-pytorch repo -----------------------------------------------------


def _archive_module(archive: Path, name: str, modules: dict[str, types.ModuleType]) -> types.ModuleType:
    """A top-level file of a repo archive, executed as a module (the test's stand-in for an import)."""
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith(f"/{name}.py"))
        source = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    module = types.ModuleType(f"animegan2_repo_{name}")
    sys.modules[module.__name__] = module
    module.__dict__.update(modules)
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


def test_hub_code_animegan2_paints_like_the_repos_face2paint(
    assets: Path, file_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repo's real hubconf and model code, trusted through ZOO_TRUST, fetched through a mirror, with a
    state_dict .pt where upstream keeps its weights: the picture zoo saves is the one the repo's own
    `face2paint(generator(), photo)` paints with those weights."""
    archive = assets / "hub" / "bryandlee-animegan2-pytorch-main.tar.gz"
    repo = file_server.root / "bryandlee" / "animegan2-pytorch"
    (repo / "archive").mkdir(parents=True)
    (repo / "archive" / "main.tar.gz").write_bytes(archive.read_bytes())
    model_py = _archive_module(archive, "model", {})
    torch.manual_seed(0)
    generator = model_py.Generator().eval()
    with torch.no_grad():  # weights that differ from any init, as trained ones do
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    (repo / "raw" / "main" / "weights").mkdir(parents=True)
    torch.save(generator.state_dict(), repo / "raw" / "main" / "weights" / "face_paint_512_v2.pt")
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    monkeypatch.setenv("ZOO_TRUST", "bryandlee/animegan2-pytorch")
    photo = assets / "images" / "chelsea.png"  # 451x300: face2paint crops the centre 300x300, resizes to 512

    run = ZooPredict("animegan2", str(photo), "--save", str(tmp_path / "out"))
    hubconf = _archive_module(archive, "hubconf", {})
    expected = np.asarray(hubconf.face2paint(size=512)(generator, Image.open(photo).convert("RGB")), np.int16)
    results = run.results()

    assert results[0]["width"] == results[0]["height"] == 512 and results[0]["tiles"] == 1
    got = np.asarray(Image.open(tmp_path / "out" / "chelsea.png").convert("RGB"), np.int16)
    assert got.shape == expected.shape == (512, 512, 3)
    assert np.abs(got - expected).max() <= 1  # upstream truncates to uint8 where zoo rounds
    assert any(p.endswith("/weights/face_paint_512_v2.pt") for p in file_server.paths())


# -- ultralytics: a yolov8n.pt written by ultralytics itself ---------------------------------------------------


def _ultralytics_checkpoint(path: Path) -> Any:
    """`YOLO("yolov8n.yaml")` saved by ultralytics (`YOLO.save`: a pickled half-precision module), its weights
    nudged first so that, unlike a fresh init, its boxes depend on the photo and pass the default threshold."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")
    with torch.no_grad():
        for p in model.model.parameters():
            p.add_(torch.randn_like(p) * 0.07)
        for branch in model.model.model[-1].cv3:  # the class logits: from ~1e-4 (ultralytics' prior) to ~0.3
            branch[-1].bias.add_(7.5)
    model.save(path)
    return YOLO(str(path))


def test_ultralytics_yolov8n_pt_loads_in_a_fresh_process(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The must-hold: `zoo predict yolov8n bus.jpg --json` with a yolov8n.pt present, in a new process (before the
    fix: "Cannot copy out of meta tensor"); its boxes are ultralytics' own for the same file and pixels."""
    pytest.importorskip("ultralytics")
    weights = tmp_path / "weights"
    weights.mkdir()
    reference_model = _ultralytics_checkpoint(weights / "yolov8n.pt")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(weights))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    bus = assets / "images" / "bus.jpg"

    run = ZooPredict("yolov8n", str(bus))
    pixels = np.asarray(Image.open(bus).convert("RGB"))[:, :, ::-1]  # ultralytics takes BGR arrays
    own = reference_model.predict(pixels, verbose=False, save=False)[0].boxes  # conf 0.25, iou 0.7: zoo's defaults
    results = run.results()

    found = results[0]["detections"]
    assert (results[0]["width"], results[0]["height"]) == Image.open(bus).size
    assert len(found) == len(own) >= 10
    assert [d["class_id"] for d in found] == own.cls.int().tolist()
    np.testing.assert_allclose([d["score"] for d in found], own.conf.numpy(), atol=1e-4)
    np.testing.assert_allclose([d["xyxy"] for d in found], own.xyxy.numpy(), atol=0.05)


# -- Hugging Face Hub: a zoo checkpoint and a timm repo on a local endpoint ---------------------------------


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local Hugging Face Hub endpoint; huggingface_hub (here and in subprocesses) pointed at it, online."""
    pytest.importorskip("huggingface_hub")
    from tests.hf_endpoint import serving

    yield from serving(monkeypatch)


def test_hf_zoo_checkpoint_reads_held_out_digits(hub: Any, digits: tuple, tmp_path: Path) -> None:
    """lenet5's shipped digits weights pushed as a zoo checkpoint repo, loaded back by `hf:` in a new process."""
    import zoo

    upload = zoo.load("lenet5:digits", device="cpu").push_to_hub("org/digits")
    truth = write_digits(tmp_path / "digits", digits)
    results = zoo_predict("hf:org/digits", str(tmp_path / "digits"), "--top-k", "1")
    assert digit_accuracy(results, truth) >= 0.9
    assert ("GET", f"/api/models/org/digits/tree/{upload.commit}") in hub.requests


def test_timm_repo_predicts_like_timms_own_pipeline(hub: Any, assets: Path, tmp_path: Path) -> None:
    """A repo written by timm's `save_for_hf` (a squash crop in its pretrained config): zoo's top-3 in a new
    process are those of timm's model on timm's own transform of the same photos."""
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config
    from timm.models import save_for_hf

    torch.manual_seed(0)
    overlay = {"input_size": (3, 112, 96), "crop_mode": "squash", "crop_pct": 0.95, "interpolation": "bicubic"}
    reference = timm.create_model("test_resnet", num_classes=4, pretrained_cfg_overlay=overlay).eval()
    names = ["ant", "bee", "cow", "doe"]
    save_for_hf(reference, tmp_path / "repo", model_config={"label_names": names}, safe_serialization="both")
    hub.add("timm/test-resnet.e2e", {p.name: p.read_bytes() for p in (tmp_path / "repo").iterdir()})
    photos = [assets / "images" / n for n in ("chelsea.png", "coffee.png", "bus.jpg")]

    run = ZooPredict("hf:timm/test-resnet.e2e", *map(str, photos), "--top-k", "3")
    transform = create_transform(**resolve_data_config(model=reference))
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in photos])
    with torch.no_grad():
        probs = reference(batch).softmax(-1)
    results = run.results()

    for result, p in zip(results, probs):
        scores, indices = p.topk(3)
        labels, got = top(result)
        assert labels == [names[i] for i in indices.tolist()]
        np.testing.assert_allclose(got, scores.numpy(), atol=1e-5)
