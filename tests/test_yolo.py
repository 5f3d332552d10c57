"""The ultralytics plugin: its catalog matches ultralytics, models built from yaml predict offline on real photos
without touching the network or the working directory, and released weights come through the zoo store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.conftest import ASSETS
from zoo.results import Detections

pytest.importorskip("ultralytics")

PHOTOS = ("bus.jpg", "zidane.jpg")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """bus.jpg and zidane.jpg from the shared assets, or stand-ins of the same sizes when they are absent."""
    if all((ASSETS / "images" / name).is_file() for name in PHOTOS):
        return [ASSETS / "images" / name for name in PHOTOS]
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    out = []
    for name, (h, w) in zip(PHOTOS, ((1080, 810), (720, 1280))):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
        out.append(folder / name)
    return out


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Random-init models are the same whatever ran before."""
    import torch

    torch.manual_seed(0)


# -- catalog ------------------------------------------------------------------------------------------


def test_catalog_matches_installed_ultralytics() -> None:
    from zoo_yolo import _generate
    from zoo_yolo.runtime import ultralytics_module

    ultralytics_module()
    expected = _generate.render(_generate.build_catalog())
    assert _generate.CATALOG.read_text(encoding="utf-8") == expected, (
        "plugins/zoo_yolo/catalog.json does not match the installed ultralytics: run "
        "`.venv/bin/python -m zoo_yolo._generate` and commit the result."
    )


def test_catalog_names_tasks_and_release_weights() -> None:
    names = set(zoo.list_models(plugin="ultralytics"))
    for name in ("yolov8n", "yolo11s", "yolov5nu", "yolov8n-seg", "yolo11n-cls", "yolov8n-pose", "rtdetr-l",
                 "yolov8n-obb", "yolo26n", "yolov10n", "yolov9t", "yolov3u"):  # fmt: skip
        assert name in names
    assert "yolov5n" in zoo.list_models()  # the hub plugin's YOLOv5 keeps its bare name: no clash
    assert not [p for p in zoo.plugins() if p.name == "ultralytics" and (p.status != "ok" or p.clashes)]
    tasks = {name: zoo.info(name).task for name in ("yolov8n", "yolov8n-seg", "yolo11n-cls", "yolov8n-pose")}
    assert tasks == {"yolov8n": "object-detection", "yolov8n-seg": "instance-segmentation",
                     "yolo11n-cls": "image-classification", "yolov8n-pose": "keypoint-detection"}  # fmt: skip
    obb = zoo.info("yolov8n-obb")
    assert obb.task == "object-detection" and obb.meta["ultralytics_task"] == "obb"
    spec = zoo.info("yolov8n")
    weights = spec.weights[spec.default_weights]
    assert weights.url == f"https://github.com/ultralytics/assets/releases/download/{spec.default_weights}/yolov8n.pt"
    assert len(spec.labels) == 80 and spec.labels[5] == "bus"
    assert zoo.info("yolov8n-pose").labels == ("person",)
    assert len(zoo.info("yolov8n-obb").labels) == 15 and len(zoo.info("yolo11n-cls").labels) == 1000
    assert not zoo.info("yolov8n-ghost").weights  # no released file: random init only


def test_listing_imports_no_heavy_library() -> None:
    heavy = "{'torch', 'ultralytics', 'huggingface_hub', 'timm'}"
    code = f"import sys, zoo; zoo.list_models(); zoo.info('yolov8n'); print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# -- offline, no network, nothing in the working directory ---------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, os, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network refused by the test")
    socket.getaddrinfo = socket.create_connection = refuse
    socket.socket.connect = lambda self, *a: refuse(*a)
    import zoo
    out = {}
    result = zoo.load("yolov8n:none").predict(sys.argv[1])
    out["type"] = type(result).__name__
    from zoo.results import Detections
    out["is_detections"] = isinstance(result, Detections)
    out["size"] = list(result.size)
    from PIL import Image
    out["pillow_open"] = Image.open.__module__  # ultralytics replaces it process-wide; zoo puts it back
    try:  # ultralytics' replacement would run check_requirements("pi-heif") here: a pip install when online
        zoo.load("yolov8n:none").predict(sys.argv[2])
        out["bad_file"] = "predicted"
    except zoo.ZooError as exc:
        out["bad_file"] = type(exc).__name__
    if os.environ.get("ZOO_OFFLINE"):  # online, this would download the released weights: not here
        try:
            zoo.load("yolov8n")
            out["pretrained"] = "loaded"
        except zoo.ZooError as exc:
            out["pretrained"] = type(exc).__name__
    from ultralytics.utils import ONLINE, SETTINGS, USER_CONFIG_DIR
    out["online"] = ONLINE
    out["settings"] = {k: SETTINGS[k] for k in ("datasets_dir", "weights_dir", "runs_dir")}
    out["config_dir"] = str(USER_CONFIG_DIR)
    out["attempts"] = attempts
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("offline", [True, False], ids=["ZOO_OFFLINE", "online-without-YOLO_OFFLINE"])
def test_predict_makes_no_network_call_and_writes_nothing_in_cwd(
    offline: bool, photos: list[Path], tmp_path: Path, isolated: Path
) -> None:
    """The must-hold: `yolov8n:none` predicts on bus.jpg with every socket refused, DNS included, in a fresh
    process (ultralytics' import-time DNS probe included), and leaves the working directory as it was."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "keep.txt").write_text("mine")
    env = {k: v for k, v in os.environ.items() if k not in {"YOLO_OFFLINE", "HF_HUB_OFFLINE", "YOLO_CONFIG_DIR"}}
    if offline:
        env["ZOO_OFFLINE"] = "1"
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"GIF89a but not really" * 8)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(photos[0]), str(bad)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == []
    assert out["is_detections"] and out["type"] == "YoloDetections"
    assert out["size"] == list(Image.open(photos[0]).size)
    assert (out["pillow_open"], out["bad_file"]) == ("PIL.Image", "InputError")  # no pip, no ModuleNotFoundError
    assert sorted(p.name for p in cwd.iterdir()) == ["keep.txt"]
    assert out["online"] is False  # the import-time probe never ran
    root = isolated / "ultralytics"
    assert Path(out["config_dir"]) == root / "Ultralytics"
    assert all(Path(v).is_relative_to(root) for v in out["settings"].values()), out["settings"]
    assert {p.name for p in (root / "Ultralytics").iterdir()} >= {"Arial.ttf", "Arial.Unicode.ttf", "settings.json"}
    if offline:  # the released weights are not cached: a clear error, before any network call
        assert out["pretrained"] == "OfflineError"


# -- the predict contract, every task ------------------------------------------------------------------


def test_detect_contract_on_real_photos(photos: list[Path], tmp_path: Path) -> None:
    model = zoo.load("yolov8n:none", device="cpu")
    assert type(model.module).__name__ == "DetectionModel" and model.weights is None
    single = model.predict(photos[0], conf=0.0, max_det=20)
    batch = model.predict([str(p) for p in reversed(photos)], conf=0.0, max_det=20)
    assert isinstance(single, Detections)
    assert isinstance(batch, list) and [r.source for r in batch] == [str(p) for p in reversed(photos)]
    for result, photo in zip(batch, reversed(photos)):
        width, height = Image.open(photo).size
        assert result.size == (width, height) and 0 < len(result) <= 20
        assert result.boxes.shape == (len(result), 4) and result.boxes.dtype == np.float32
        assert (result.boxes[:, [0, 2]] <= width + 1).all() and (result.boxes[:, [1, 3]] <= height + 1).all()
        assert set(result.labels) <= set(model.labels) and (np.diff(result.scores) <= 1e-6).all()
    np.testing.assert_allclose(batch[1].boxes, single.boxes, atol=1e-3)
    data = json.loads(single.to_json())
    assert data["width"] == single.size[0] and len(data["detections"]) == len(single)
    plot = single.plot()
    assert plot.size == single.size
    saved = single.save(tmp_path / "out")
    assert saved.is_file() and Image.open(saved).size == single.size
    wanted = int(single.class_ids[-1])
    only = model.predict(photos[0], conf=0.0, classes=[wanted], max_det=5)
    assert len(only) and set(only.class_ids.tolist()) == {wanted}


def test_segment_pose_obb_and_classify_results(photos: list[Path]) -> None:
    width, height = Image.open(photos[0]).size
    seg = zoo.load("yolov8n-seg:none", device="cpu").predict(photos[0], conf=0.0, max_det=5, size=320)
    assert seg.masks is not None and seg.masks.shape == (len(seg), height, width) and seg.masks.dtype == bool
    assert "mask_area" in seg.to_dict()["detections"][0]
    pose = zoo.load("yolov8n-pose:none", device="cpu").predict(photos[0], conf=0.0, max_det=5, size=320)
    assert pose.keypoints is not None and pose.keypoints.shape == (len(pose), 17, 3)
    assert set(pose.labels) == {"person"} and len(pose.to_dict()["detections"][0]["keypoints"]) == 17
    assert pose.plot().size == (width, height)
    obb = zoo.load("yolov8n-obb:none", device="cpu").predict(photos[0], conf=0.0, max_det=5, size=320)
    assert obb.obb is not None and obb.obb.shape == (len(obb), 5) and len(obb)
    cls = zoo.load("yolo11n-cls:none", device="cpu").predict(photos, top_k=3)
    assert [type(r).__name__ for r in cls] == ["Classification", "Classification"]
    assert len(cls[0].labels) == 3 and abs(sum(cls[0].scores)) <= 1.0 + 1e-6


def test_labels_and_weight_changes_reach_the_predictor(photos: list[Path]) -> None:
    import torch

    model = zoo.load("yolov8n:none", device="cpu", labels=["thing", "other"])
    assert model.labels == ("thing", "other") and model.module.yaml["nc"] == 2
    before = model.predict(photos[0], conf=0.0, max_det=10)
    assert set(before.labels) <= {"thing", "other"}
    with torch.no_grad():  # an in-place weight change (as an optimizer step makes) must not be served stale
        for p in model.module.parameters():
            p.mul_(0.5)
    after = model.predict(photos[0], conf=0.0, max_det=10)
    assert not np.array_equal(before.scores, after.scores)


# -- released weights through the zoo store ------------------------------------------------------------


def _release_file(path: Path) -> dict:
    """An ultralytics release-style checkpoint (half-precision module pickled under `model`, `ema` None)."""
    import copy

    import torch

    from zoo_yolo.build import Arch, build

    torch.manual_seed(0)
    module = build(Arch("v8/yolov8.yaml", "n", "detect"), num_classes=80)
    torch.save({"date": "2025-01-01", "version": "8.4.0", "model": copy.deepcopy(module).half(), "ema": None,
                "optimizer": None, "train_args": {"task": "detect"}, "epoch": -1}, path)  # fmt: skip
    return {k: v.half().float() for k, v in module.state_dict().items()}


def test_released_weights_come_through_the_store_as_safetensors(
    file_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated: Path, photos: list[Path]
) -> None:
    spec = zoo.info("yolov8n")
    upstream = spec.weights[spec.default_weights].url
    served = file_server.root / "ultralytics" / "assets" / "releases" / "download" / spec.default_weights
    served.mkdir(parents=True)
    expected = _release_file(served / "yolov8n.pt")
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    model = zoo.load("yolov8n", device="cpu")
    assert any(p.endswith("/yolov8n.pt") for p in file_server.paths()) and upstream.endswith("yolov8n.pt")
    state = model.module.state_dict()
    assert all(torch_equal(state[k], v) for k, v in expected.items()) and set(state) == set(expected)
    assert {str(t.dtype) for t in model.module.parameters()} == {"torch.float32"}  # half upstream, fp32 here
    assert (isolated / "weights" / "yolov8n.safetensors").is_file()
    assert not list(cwd.iterdir())  # nothing in the working directory
    assert model.predict(photos[0]).size == Image.open(photos[0]).size
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # the cached safetensors serves offline
    seen = len(file_server.requests)
    assert zoo.load("yolov8n", device="cpu").num_parameters == model.num_parameters
    assert len(file_server.requests) == seen


def test_a_pt_written_by_ultralytics_predicts_in_a_fresh_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, photos: list[Path]
) -> None:
    """`zoo predict yolov8n photo --json` in a new process, with a yolov8n.pt that ultralytics saved from its yaml:
    ultralytics is first imported there inside the meta-device build, which once left its class-level tensors
    on the meta device ("Cannot copy out of meta tensor")."""
    from ultralytics import YOLO

    folder = tmp_path / "weights"
    folder.mkdir()
    YOLO("yolov8n.yaml").save(folder / "yolov8n.pt")
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    proc = subprocess.run([sys.executable, "-m", "zoo", "predict", "yolov8n", str(photos[0]), "--json"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    result = json.loads(proc.stdout)["results"][0]
    assert (result["width"], result["height"]) == Image.open(photos[0]).size and "detections" in result


def torch_equal(a, b) -> bool:  # noqa: ANN001 - tensors
    import torch

    return bool(torch.equal(a.float(), b.float()))


def test_without_ultralytics_the_error_names_the_extra(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The install hint comes before anything is fetched: a pretrained load downloads nothing first."""
    spec = zoo.info("yolov8n")
    served = file_server.root / "ultralytics" / "assets" / "releases" / "download" / spec.default_weights
    served.mkdir(parents=True)
    (served / "yolov8n.pt").write_bytes(b"not fetched")
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["ultralytics"] = None  # as if it were not installed
        import zoo
        print(len(zoo.list_models(plugin="ultralytics")))
        for name in ("yolov8n:none", "yolov8n"):
            try:
                zoo.load(name, device="cpu")
            except zoo.UnsupportedError as exc:
                print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    count, *messages = out.stdout.strip().splitlines()[-3:]
    assert int(count) > 100  # the catalog is listed all the same
    assert len(messages) == 2 and all('pip install "zoo-sdk[yolo]"' in m for m in messages), out.stdout
    assert file_server.requests == []  # no download before the hint
