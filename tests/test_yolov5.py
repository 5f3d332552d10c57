"""YOLOv5: the native implementation on the real yolov5n.pt against the ultralytics/yolov5 hub reference,
weights read without running pickled code, offline and mirrored loads, and the hub backend's plumbing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from tests.test_hub import write_repo

IMAGES = ("bus.jpg", "zidane.jpg")


@pytest.fixture
def weights(assets: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared yolov5n.pt reachable through ZOO_WEIGHTS_PATH, offline."""
    path = assets / "weights" / "yolov5n.pt"
    if not path.is_file():
        pytest.skip("yolov5n.pt is not in ../shared/assets")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(path.parent))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return path


def _reference(assets: Path) -> dict:
    return json.loads((assets / "reference" / "yolov5n.json").read_text())["images"]


def _assert_matches(result: zoo.Detections, expected: list[dict]) -> None:
    assert list(result.labels) == [e["label"] for e in expected]
    assert result.class_ids.tolist() == [e["class_id"] for e in expected]
    np.testing.assert_allclose(result.scores, [e["score"] for e in expected], atol=0.01)
    np.testing.assert_allclose(result.boxes, [e["xyxy"] for e in expected], atol=2.0)


@pytest.mark.assets
def test_native_matches_the_hub_reference(weights: Path, assets: Path) -> None:
    model = zoo.load("yolov5n", device="cpu")
    assert type(model.module).__module__ == "zoo_hub.yolov5.arch"
    assert model.module.stride == (8.0, 16.0, 32.0)
    reference = _reference(assets)
    bus, zidane = (assets / "images" / name for name in IMAGES)
    single = model.predict(bus)
    _assert_matches(single, reference["bus.jpg"])
    batch = model.predict([zidane, bus])  # different sizes in one call
    _assert_matches(batch[0], reference["zidane.jpg"])
    _assert_matches(batch[1], reference["bus.jpg"])
    np.testing.assert_array_equal(batch[1].boxes, single.boxes)
    assert single.summary() == "bus.jpg: 1080x810 4 persons, 1 bus"
    assert batch[0].summary() == "zidane.jpg: 720x1280 2 persons, 1 tie"


@pytest.mark.assets
def test_checkpoint_is_read_safely_and_matches_the_catalog(weights: Path) -> None:
    from zoo_hub.yolov5.checkpoint import read_checkpoint
    from zoo_hub.yolov5.config import COCO_NAMES, model_yaml

    state, meta = read_checkpoint(weights)
    assert meta["yaml"] == {**model_yaml("n"), "ch": 3}
    assert tuple(meta["names"]) == COCO_NAMES
    assert meta["stride"] == [8.0, 16.0, 32.0]
    assert state["model.24.anchors"][0].tolist() == [[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]]
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())


@pytest.mark.assets
def test_a_pt_file_is_built_and_placed_like_a_catalog_model(weights: Path) -> None:
    """`load_checkpoint(.pt)` goes through `build_model` (`place_module`): the device asked for, eval mode,
    channels_last on CUDA as `zoo.load` gives, and what it is in `model.info` (the detections are the
    catalog model's: `docs/guides/detection.md`)."""
    from zoo_hub.yolov5.checkpoint import load_checkpoint

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_checkpoint(weights, device=device)
    assert model.device.type == device and not model.module.training
    convs = [p for p in model.module.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.device == model.device for p in model.module.parameters())
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs) == (device == "cuda")
    assert model.info.weights == "yolov5n.pt" and len(model.labels or ()) == 80 and not model.random_init
    assert model.weights_sha256 is not None and len(model.weights_sha256) == 64


@pytest.mark.assets
def test_cli_predict_json_and_save(weights: Path, assets: Path, tmp_path: Path) -> None:
    bus = assets / "images" / "bus.jpg"
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "predict", "yolov5n", str(bus), "--json", "--save", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["results"][0]
    expected = _reference(assets)["bus.jpg"]
    assert [d["label"] for d in data["detections"]] == [e["label"] for e in expected]
    for got, want in zip(data["detections"], expected):
        assert got["score"] == pytest.approx(want["score"], abs=0.01)
        assert got["xyxy"] == pytest.approx(want["xyxy"], abs=2)
    drawn = np.asarray(Image.open(tmp_path / "out" / "bus.jpg").convert("RGB")).astype(int)
    photo = np.asarray(Image.open(bus).convert("RGB")).astype(int)
    assert drawn.shape == photo.shape and np.abs(drawn - photo).mean() > 1


@pytest.mark.assets
def test_mirror_then_offline_with_zero_requests(assets: Path, file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    served = file_server.root / "ultralytics/yolov5/releases/download/v7.0/yolov5n.pt"
    served.parent.mkdir(parents=True)
    served.write_bytes((assets / "weights" / "yolov5n.pt").read_bytes())
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    path = zoo.fetch("yolov5n")
    assert file_server.paths() == ["/ultralytics/yolov5/releases/download/v7.0/yolov5n.pt"]
    assert path.name == "yolov5n.safetensors"
    pins = json.loads((zoo.settings.cache_root() / "pins.json").read_text())
    assert len(pins["yolov5n.pt"]["sha256"]) == 64  # upstream publishes no hash: recorded at first download
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    result = zoo.load("yolov5n", device="cpu").predict(assets / "images" / "zidane.jpg")
    _assert_matches(result, _reference(assets)["zidane.jpg"])
    assert len(file_server.requests) == 1


def test_a_pickle_with_a_payload_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "pwned"))

    folder = tmp_path / "weights"
    folder.mkdir()
    buf = io.BytesIO()
    torch.save({"model": Payload(), "epoch": -1}, buf)
    (folder / "yolov5n.pt").write_bytes(buf.getvalue())
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.ZooError):
        zoo.load("yolov5n")
    from zoo_hub.yolov5.checkpoint import read_checkpoint

    with pytest.raises(zoo.ZooError):
        read_checkpoint(folder / "yolov5n.pt")
    assert not marker.exists()


def test_catalog_names_and_backends() -> None:
    assert zoo.list_models("yolov5*", plugin="hub") == ["yolov5l", "yolov5m", "yolov5n", "yolov5s", "yolov5x"]
    spec = zoo.info("yolov5s")
    weights = spec.weights["v7.0"]
    assert weights.url == "https://github.com/ultralytics/yolov5/releases/download/v7.0/yolov5s.pt"
    assert weights.sha256 is None and weights.format == "full-pickle"
    assert spec.task == "object-detection" and len(spec.labels) == 80
    with pytest.raises(zoo.UnsupportedError, match="backend 'onnx' is unknown"):
        zoo.load("yolov5n:none", backend="onnx")
    params = {s: zoo.load(f"yolov5{s}:none", device="cpu").num_parameters for s in "ns"}
    assert 1.8e6 < params["n"] < 1.95e6 and 7.0e6 < params["s"] < 7.3e6


def test_hub_backend_goes_through_a_trusted_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for ultralytics/yolov5 (its hubconf signature, a model of the same layout)."""
    marker = tmp_path / "imported"
    repo = write_repo(
        tmp_path / "yolov5",
        {"hubconf.py": f"""
            open({str(marker)!r}, "w").close()

            def yolov5n(pretrained=True, channels=3, classes=80, autoshape=True, _verbose=True, device=None):
                from models.yolo import make
                assert not pretrained and not autoshape
                return make(classes)
            """,
         "models/__init__.py": "",
         "models/yolo.py": """
            from zoo_hub.yolov5.arch import build
            from zoo_hub.yolov5.config import model_yaml

            def make(nc):
                model = build(model_yaml("n", nc))
                forward = model.forward
                model.forward = lambda x: (forward(x), "feature maps")  # upstream's eval output is a tuple
                return model
            """},
    )  # fmt: skip
    with pytest.raises(zoo.UntrustedCodeError):
        zoo.load("yolov5n:none", backend="hub", repo=str(repo))
    assert not marker.exists()
    torch.manual_seed(0)
    native = zoo.load("yolov5n:none", device="cpu")
    hub = zoo.load("yolov5n:none", backend="hub", repo=str(repo), trust=True, device="cpu")
    hub.module.load_state_dict(native.module.state_dict())
    image = torch.randint(0, 255, (3, 200, 300), dtype=torch.uint8)
    a, b = native.predict(image, conf=0.001), hub.predict(image, conf=0.001)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
