"""The object-detection task and `Detections`: NMS and letterbox arithmetic, results, batching, CLI."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.results import Detections
from zoo.tasks.detection import letterbox, letterbox_shape, non_max_suppression, resize_linear

LABELS = ("ant", "bee", "cat")


def _tiny_yaml() -> dict:
    from zoo_hub.yolov5.config import model_yaml

    cfg = model_yaml("n", nc=3)
    cfg["width_multiple"] = 0.03  # 8 channels at most levels: a few KB of weights
    return cfg


@pytest.fixture
def tiny_detector() -> zoo.Model:
    """A random-init YOLOv5-shaped detector with 3 classes, registered in-script."""
    from zoo_hub.yolov5.arch import build

    @zoo.register("tinydet", task="object-detection", labels=LABELS, image_size=128)
    def make():
        torch.manual_seed(0)
        model = build(_tiny_yaml())
        with torch.no_grad():  # objectness and class logits high enough that boxes come out
            for conv in model.model[-1].m:
                conv.bias.normal_(1.0, 1.5)
        return model

    return zoo.load("tinydet:none", device="cpu")


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate([(90, 120), (150, 100), (90, 120)]):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


def _preds(rows: list[list[float]], nc: int = 3) -> torch.Tensor:
    """One image's YOLO rows: cx, cy, w, h, objectness, class probabilities."""
    return torch.tensor(rows, dtype=torch.float32).view(1, -1, 5 + nc)


def test_nms_scores_thresholds_and_class_awareness() -> None:
    preds = _preds(
        [
            [50, 50, 20, 20, 0.9, 0.9, 0.1, 0.0],  # class 0, score 0.81
            [51, 51, 20, 20, 0.8, 0.9, 0.1, 0.0],  # overlaps the first, same class: dropped
            [51, 51, 20, 20, 0.8, 0.1, 0.9, 0.0],  # same place, class 1: kept
            [10, 10, 4, 4, 0.9, 0.2, 0.0, 0.0],  # score 0.18 < 0.25
            [90, 90, 10, 10, 0.2, 1.0, 0.0, 0.0],  # objectness below conf
        ]
    )
    boxes, scores, classes = non_max_suppression(preds, conf=0.25, iou=0.45)[0]
    assert classes.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([0.81, 0.72])
    assert boxes[0].tolist() == [40, 40, 60, 60]
    agnostic = non_max_suppression(preds, agnostic=True)[0]
    assert agnostic[2].tolist() == [0]
    only_1 = non_max_suppression(preds, classes=[1])[0]
    assert only_1[2].tolist() == [1]
    assert len(non_max_suppression(preds, max_det=1)[0][0]) == 1
    assert len(non_max_suppression(preds, conf=0.1)[0][0]) == 4  # 0.18 and 0.2 pass too


def test_letterbox_like_autoshape() -> None:
    assert letterbox_shape(1080, 810, 640, 32) == (640, 480)
    assert letterbox_shape(720, 1280, 640, 32) == (384, 640)
    image = torch.full((3, 720, 1280), 200, dtype=torch.uint8)
    out, box = letterbox(image, (384, 640))
    assert out.shape == (3, 384, 640)
    assert out[:, :12].eq(114).all() and out[:, 12:372].eq(200).all() and out[:, 372:].eq(114).all()
    assert box.gain == 0.5 and box.pad == (0.0, 12.0)
    back = box.unscale((torch.tensor([[0.0, 12.0, 640.0, 372.0]]), torch.ones(1), torch.zeros(1)))[0]
    assert back.tolist() == [[0, 0, 1280, 720]]


@pytest.mark.parametrize("opencv", [False, True])
def test_resize_linear_matches_opencv_arithmetic(opencv: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.tasks.detection as detection

    cv2 = detection._opencv()
    if opencv and cv2 is None:
        pytest.skip("OpenCV is not installed")
    if not opencv:
        monkeypatch.setattr(detection, "_opencv", lambda: None)
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    half = resize_linear(image, 20, 30)
    expected = image.view(3, 20, 2, 30, 2).float().mean((2, 4)).add(1e-3).round()  # 2x2 average, rounded half up
    assert torch.equal(half, expected.to(torch.uint8))
    flat = torch.full((3, 50, 70), 77, dtype=torch.uint8)
    assert resize_linear(flat, 33, 21).eq(77).all() and resize_linear(flat, 90, 130).eq(77).all()
    if cv2 is not None and not opencv:  # the torch arithmetic is OpenCV's, bit for bit, when downscaling
        photo = torch.randint(0, 256, (3, 1080, 810), dtype=torch.uint8)
        expected = cv2.resize(photo.permute(1, 2, 0).numpy().copy(), (480, 640), interpolation=cv2.INTER_LINEAR)
        assert torch.equal(resize_linear(photo, 640, 480), torch.from_numpy(expected).permute(2, 0, 1))


def test_detections_formats_and_serialisation() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    det = Detections(
        np.array([[10, 20, 50, 60], [0, 0, 200, 100]], dtype=np.float32),
        np.array([0.9, 0.4], dtype=np.float32),
        np.array([2, 0]),
        ("cat", "ant"),
        (200, 100),
        "/x/photo.jpg",
        image,
    )
    assert det.xywh[0].tolist() == [30, 40, 40, 40]
    assert det.xywhn[1].tolist() == [0.5, 0.5, 1, 1]
    assert det.xyxyn[0].tolist() == pytest.approx([0.05, 0.2, 0.25, 0.6])
    data = json.loads(det.to_json())
    assert data["width"] == 200 and [d["label"] for d in data["detections"]] == ["cat", "ant"]
    assert det.summary() == "photo.jpg: 100x200 1 cat, 1 ant"
    buf = io.StringIO()
    det.print(file=buf)
    assert buf.getvalue().splitlines()[0] == det.summary() and "0.900" in buf.getvalue()
    assert repr(det).startswith("Detections('/x/photo.jpg', 2 boxes: 'cat': 0.900")
    plotted = np.asarray(det.plot())
    assert plotted.shape == (100, 200, 3) and plotted.any()  # boxes and labels drawn on black
    assert plotted[20, 30].tolist() != [0, 0, 0] or plotted[40, 10].tolist() != [0, 0, 0]


def test_to_df_with_and_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    det = Detections(np.array([[1, 2, 3, 4]], dtype=np.float32), np.array([0.5]), np.array([1]), ("bee",), (10, 10))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(zoo.UnsupportedError, match=r"pip install 'zoo-sdk\[pandas\]'"):
        det.to_df()
    monkeypatch.delitem(sys.modules, "pandas")
    pd = pytest.importorskip("pandas")
    df = det.to_df()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["xmin", "ymin", "xmax", "ymax", "confidence", "class", "name"]
    assert df.iloc[0]["name"] == "bee"


def test_batched_inputs_of_different_sizes_match_singles(tiny_detector: zoo.Model, photos: list[Path]) -> None:
    singles = [tiny_detector.predict(p, conf=0.3) for p in photos]
    batch = tiny_detector.predict(photos, conf=0.3, batch_size=2)
    assert isinstance(batch, list) and len(batch) == 3
    for one, many in zip(singles, batch):  # random weights tie often: the real-weights test compares boxes
        assert len(one) > 0 and many.size == one.size and many.source == one.source
        assert many.scores.max() == pytest.approx(one.scores.max(), abs=1e-5)
    first = batch[0]
    assert first.size == (120, 90) and set(first.labels) <= set(LABELS)
    assert (first.boxes[:, 2] <= 120).all() and (first.boxes[:, 3] <= 90).all() and (first.boxes >= 0).all()
    assert (first.scores[:-1] >= first.scores[1:]).all()


def _rows(det: Detections) -> np.ndarray:
    """Boxes with score and class, in an order that does not depend on ties between equal scores."""
    rows = np.concatenate([det.boxes, det.scores[:, None], det.class_ids[:, None]], 1).round(2)
    return rows[np.lexsort(rows.T[::-1])]


def test_predict_options(tiny_detector: zoo.Model, photos: list[Path]) -> None:
    everything = tiny_detector.predict(photos[0], conf=0.3)
    only = tiny_detector.predict(photos[0], conf=0.3, classes=[1])
    assert set(only.class_ids.tolist()) <= {1} and len(only) < len(everything)
    assert len(tiny_detector.predict(photos[0], conf=0.3, max_det=2)) == 2
    tensor = torch.from_numpy(np.array(Image.open(photos[0]))).permute(2, 0, 1)
    from_tensor = tiny_detector.predict(tensor.float() / 255, conf=0.3)
    np.testing.assert_allclose(_rows(from_tensor), _rows(everything), atol=1e-3)
    with pytest.raises(zoo.InputError, match="conf and iou must be between 0 and 1"):
        tiny_detector.predict(photos[0], conf=2)


def test_save_writes_the_image_with_boxes(tiny_detector: zoo.Model, photos: list[Path], tmp_path: Path) -> None:
    result = tiny_detector.predict(photos[0], conf=0.3)
    path = result.save(tmp_path / "out")
    assert path == tmp_path / "out" / "p0.jpg"
    drawn = np.asarray(Image.open(path).convert("RGB")).astype(int)
    original = np.asarray(Image.open(photos[0]).convert("RGB")).astype(int)
    assert drawn.shape == original.shape and np.abs(drawn - original).mean() > 5


def test_cli_predict_json_and_save(tiny_detector: zoo.Model, photos: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["predict", "tinydet:none", str(photos[0]), "--json", "--conf", "0.3",
                              "--save", str(tmp_path / "saved"), "--device", "cpu"])  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["errors"] == []
    data = data["results"]
    assert data[0]["source"] == str(photos[0]) and data[0]["detections"]
    assert (tmp_path / "saved" / "p0.jpg").is_file()
    text = runner.invoke(cli, ["predict", "tinydet:none", str(photos[1]), "--conf", "0.3", "--device", "cpu"])
    assert text.stdout.startswith("p1.png: 150x100 ")
    assert text.stderr.startswith("warning: tinydet has random weights")
