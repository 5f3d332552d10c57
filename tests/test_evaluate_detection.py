"""`model.evaluate` / `zoo eval` for detectors: COCO mAP through faster-coco-eval on COCO-json and YOLO datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from tests.test_yolov5 import IMAGES, _reference, weights  # noqa: F401  (fixture)
from zoo.cli import cli

pytest.importorskip("faster_coco_eval")
pytestmark = pytest.mark.assets
NAMES = ("person", "bus", "tie")


def coco_file(assets: Path, root: Path, shift: float = 0.0) -> Path:
    """The reference YOLOv5n boxes of bus.jpg and zidane.jpg as COCO ground truth (`shift`: move them right by
    that share of their width)."""
    reference = _reference(assets)
    images, annotations = [], []
    for image_id, name in enumerate(IMAGES, 1):
        shutil.copy(assets / "images" / name, root / name)
        images.append({"id": image_id, "file_name": name, "width": 0, "height": 0})
        for box in reference[name]:
            x1, y1, x2, y2 = box["xyxy"]
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 10 + NAMES.index(box["label"]),
                    "bbox": [x1 + shift * w, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }  # fmt: skip
            )
    categories = [{"id": 10 + i, "name": name} for i, name in enumerate(NAMES)]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_reference_boxes_score_a_full_map_and_shifted_ones_do_not(
    weights: Path,  # noqa: F811
    assets: Path,
    tmp_path: Path,
) -> None:
    model = zoo.load("yolov5n", device="cpu")
    result = model.evaluate(coco_file(assets, tmp_path))
    assert result.count == 2 and result.map50 == pytest.approx(1.0) and result.map > 0.9
    assert result.classes == NAMES and all(ap > 0.85 for ap in result.ap)

    (tmp_path / "shifted").mkdir()
    shifted = model.evaluate(coco_file(assets, tmp_path / "shifted", shift=0.6))  # IoU 0.25 with every box
    assert shifted.map50 < 0.1 and shifted.map < 0.05  # only stray low-score boxes can still match


def test_yolo_folder_and_the_eval_command(weights: Path, assets: Path, tmp_path: Path) -> None:  # noqa: F811
    from PIL import Image

    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(NAMES))
    for name, boxes in _reference(assets).items():
        with Image.open(assets / "images" / name) as image:
            width, height = image.size
            if name == "bus.jpg":  # stored as a phone does: turned a quarter, EXIF orientation 6 turns it back
                exif = Image.Exif()
                exif[0x0112] = 6
                image.transpose(Image.Transpose.ROTATE_90).save(root / "images" / name, quality=95, exif=exif)
            else:
                shutil.copy(assets / "images" / name, root / "images" / name)
        lines = []
        for box in boxes:
            x1, y1, x2, y2 = box["xyxy"]
            cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{NAMES.index(box['label'])} {cx} {cy} {w} {h}")
        (root / "labels" / f"{Path(name).stem}.txt").write_text("\n".join(lines))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "yolov5n", str(root), "--json", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["task"] == "object-detection" and figures["count"] == 2
    assert figures["map50"] == pytest.approx(1.0) and figures["map"] > 0.9
    assert json.loads((out / "metrics.json").read_text())["map"] == figures["map"]

    for line, message in (("0 0.5 0.5 oops 0.1", "expected 'class cx cy w h'"), ("1.5 0.5 0.5 0.1 0.1", "whole")):
        (root / "labels" / "bus.txt").write_text(line)
        bad = CliRunner().invoke(cli, ["eval", "yolov5n", str(root), "--device", "cpu"])
        assert bad.exit_code == 1 and bad.output.startswith("error: ") and "bus.txt:1" in bad.output
        assert message in bad.output and bad.output.count("\n") == 1


def test_unusable_coco_files(weights: Path, assets: Path, tmp_path: Path) -> None:  # noqa: F811
    model = zoo.load("yolov5n", device="cpu")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(zoo.InputError, match="not a COCO annotations file"):
        model.evaluate(tmp_path / "bad.json")
    (tmp_path / "cats.json").write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "tabby"}]}))
    with pytest.raises(zoo.InputError, match="None of .* categories \\(tabby\\) is a class of"):
        model.evaluate(tmp_path / "cats.json")
    (tmp_path / "missing.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "nope.jpg"}], "categories": [{"id": 1, "name": "person"}]})
    )
    with pytest.raises(zoo.InputError, match="'nope.jpg'"):
        model.evaluate(tmp_path / "missing.json")
