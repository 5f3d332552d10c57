"""Fine-tuning torchvision detectors on boxes: a COCO-json file or a YOLO folder, new classes through a swapped
class predictor, reports in the run folder, a checkpoint that reloads by path, and one-line errors for bad data.

The dataset is built here: crops of the shared photos with solid-colour rectangles pasted on them (the new
classes "red" and "blue"), written in both formats from the same boxes.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import zoo
from zoo.train.detection_data import read_detection

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn:none"
NAMES = ("red", "blue")
COLOURS = {0: (230, 20, 20), 1: (20, 40, 230)}
SIZE = 96  # images are SIZE x SIZE crops
ROOT = Path(__file__).resolve().parent.parent


def make_boxes(assets: Path, folder: Path, count: int = 8, seed: int = 0) -> list[tuple[Path, list[tuple[int, ...]]]]:
    """`count` PNG crops of the shared photos in `folder`, each with 1-2 pasted rectangles; returns
    (image, [(class, x1, y1, x2, y2), ...]) per image, in pixels."""
    from PIL import Image

    rng = random.Random(seed)
    photos = [Image.open(assets / "images" / name).convert("RGB") for name in ("bus.jpg", "zidane.jpg")]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        x, y = rng.randrange(photo.width - SIZE), rng.randrange(photo.height - SIZE)
        image = photo.crop((x, y, x + SIZE, y + SIZE))
        boxes = []
        for k in range(1 + i % 2):
            cls = (i + k) % 2
            w, h = rng.randrange(20, 36), rng.randrange(20, 36)
            x1 = rng.randrange(2, SIZE // 2 - w // 2) if k == 0 else rng.randrange(SIZE // 2, SIZE - w - 2)
            y1 = rng.randrange(2, SIZE - h - 2)
            image.paste(COLOURS[cls], (x1, y1, x1 + w, y1 + h))
            boxes.append((cls, x1, y1, x1 + w, y1 + h))
        path = folder / f"img{i}.png"
        image.save(path)
        out.append((path, boxes))
    return out


def write_coco(path: Path, items: list[tuple[Path, list[tuple[int, ...]]]], ids: tuple[int, ...] = (3, 7)) -> Path:
    """A COCO annotations file beside the images (category ids need not start at 0 nor be contiguous)."""
    images, annotations = [], []
    for image_id, (image, boxes) in enumerate(items, 1):
        images.append({"id": image_id, "file_name": image.name, "width": SIZE, "height": SIZE})
        for cls, x1, y1, x2, y2 in boxes:
            bbox = [x1, y1, x2 - x1, y2 - y1]
            annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": ids[cls], "bbox": bbox}
            annotations.append(annotation)
    categories = [{"id": ids[k], "name": name} for k, name in enumerate(NAMES)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_yolo(root: Path, split: str, items: list[tuple[Path, list[tuple[int, ...]]]]) -> Path:
    """The same images and boxes as a YOLO folder (`images/<split>`, `labels/<split>`, `data.yaml`)."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for image, boxes in items:
        (root / "images" / split / image.name).write_bytes(image.read_bytes())
        lines = [
            f"{cls} {(x1 + x2) / 2 / SIZE:.8f} {(y1 + y2) / 2 / SIZE:.8f} {(x2 - x1) / SIZE:.8f} {(y2 - y1) / SIZE:.8f}"
            for cls, x1, y1, x2, y2 in boxes
        ]
        (root / "labels" / split / f"{image.stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("names:\n  0: red\n  1: blue\n")
    return root


@pytest.fixture
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def coco(assets: Path, tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco" / "train.json", make_boxes(assets, tmp_path / "coco"))


@pytest.fixture
def yolo(assets: Path, tmp_path: Path) -> Path:
    items = make_boxes(assets, tmp_path / "photos")
    write_yolo(tmp_path / "yolo", "train", items[:6])
    return write_yolo(tmp_path / "yolo", "val", items[6:])


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_finetune_on_yolo_swaps_the_predictor_learns_and_reloads_by_path(
    yolo: Path, tmp_path: Path, single_thread: None
) -> None:
    run = tmp_path / "run"
    model = zoo.load(MODEL, device="cpu", box_batch_size_per_image=16)  # fewer sampled regions: a quicker step
    assert model.module.roi_heads.box_predictor.cls_score.out_features == 91
    trained = model.finetune(yolo, epochs=2, batch_size=2, image_size=96, optimizer="sgd", lr=1e-2, seed=0, out=run)

    assert trained is model and model.labels == ("__background__", "red", "blue")
    predictor = model.module.roi_heads.box_predictor
    assert (predictor.cls_score.out_features, predictor.bbox_pred.out_features) == (3, 12)  # 2 classes + background
    history = model.history
    assert history is not None and len(history) == 2 and history.monitor == "val_map"
    assert history[-1].train_loss < history[0].train_loss  # it learns the pasted rectangles
    assert all(e.val_loss is not None and e.val_map is not None for e in history)  # validated on labels/val
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(r["val_map50"] != "" for r in rows)
    assert (run / "curves.png").stat().st_size > 0 and history.checkpoint == str(run / "best.safetensors")
    assert model.info.training is not None and model.info.training["labels"] == ["__background__", "red", "blue"]

    image = yolo / "images" / "val" / "img6.png"
    here = model.predict(image)
    assert len(here) > 0 and set(here.labels) <= {"red", "blue"}
    env = {**os.environ, "ZOO_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}  # the same float sums as here
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "predict", str(run / "best.safetensors"), str(image), "--json"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    there = json.loads(out.stdout)["results"][0]
    assert there["detections"] == json.loads(here.to_json())["detections"]  # same names, same boxes


def test_coco_and_yolo_give_the_same_training_targets(assets: Path, tmp_path: Path) -> None:
    items = make_boxes(assets, tmp_path / "photos", count=5)
    from_coco = read_detection(write_coco(tmp_path / "photos" / "train.json", items))
    from_yolo = read_detection(write_yolo(tmp_path / "yolo", "train", items))
    assert from_coco.names == from_yolo.names == NAMES
    assert from_coco.labels == ("__background__", "red", "blue")
    assert [s.path.name for s in from_coco.samples] == [s.path.name for s in from_yolo.samples]
    for a, b, (_, boxes) in zip(from_coco.samples, from_yolo.samples, items):
        ta, tb = a.target(), b.target()
        assert torch.equal(ta["labels"], tb["labels"])
        assert ta["labels"].tolist() == [cls + 1 for cls, *_ in boxes]  # COCO ids 3 and 7 are classes 1 and 2
        assert torch.allclose(ta["boxes"], tb["boxes"], atol=1e-4)
        assert ta["boxes"].tolist() == [[float(v) for v in box[1:]] for box in boxes]


def test_a_held_out_fraction_is_scored_by_map_like_a_validation_file(coco: Path, tmp_path: Path) -> None:
    """val=0.25 holds 2 of the 8 images out and scores them by mAP each epoch; in-memory boxes score as a file does."""
    from zoo.evaluate.detection import evaluate_boxes, evaluate_detection

    model = zoo.load(MODEL, device="cpu", box_batch_size_per_image=16)
    model.finetune(coco, val=0.25, epochs=1, batch_size=2, image_size=64, optimizer="sgd", lr=1e-2, seed=0)
    history = model.history
    assert history is not None and history.monitor == "val_map"
    assert history[0].val_map is not None and history[0].val_map50 is not None

    # One epoch from random weights scores 0 on the true boxes; to compare the two scorers on a score above 0, the
    # truth here is the model's own best box on each held-out image (and a box it does not find).
    _, held = read_detection(coco).split(0.25, 0)
    truth = []
    for sample in held.samples:
        found = model.predict(sample.path, conf=0.001)
        assert len(found) > 0
        box = [float(v) for v in found.boxes[0].tolist()]
        truth.append((sample.path, [box, [1.0, 1.0, 9.0, 9.0]], [NAMES.index(found.labels[0]), 1]))
    in_memory = evaluate_boxes(model, truth, NAMES, data="held out", batch_size=2)
    images, annotations = [], []
    for image_id, (path, boxes, classes) in enumerate(truth, 1):
        images.append({"id": image_id, "file_name": path.name, "width": SIZE, "height": SIZE})
        for (x1, y1, x2, y2), cls in zip(boxes, classes):
            bbox = [x1, y1, x2 - x1, y2 - y1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 5, "bbox": bbox})
    categories = [{"id": k + 5, "name": name} for k, name in enumerate(NAMES)]
    held_file = coco.parent / "held.json"
    held_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    by_file = evaluate_detection(model, held_file, batch_size=2)
    assert 0 < in_memory.map50 < 1 and in_memory.count == 2
    assert (in_memory.map, in_memory.map50, in_memory.classes) == (by_file.map, by_file.map50, by_file.classes)


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_same_seed_same_weights_from_the_cli_and_the_api(assets: Path, tmp_path: Path, single_thread: None) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    data = write_coco(tmp_path / "coco" / "train.json", make_boxes(assets, tmp_path / "coco", count=4))
    start = zoo.load(MODEL, device="cpu").save(tmp_path / "start.safetensors")  # one random init for both runs
    args = ["finetune", str(start), str(data), "--epochs", "1", "-b", "4", "--seed", "3", "--image-size", "64"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "cli"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("epoch 1  loss ") and lines[-1] == f"saved {tmp_path / 'cli' / 'best.safetensors'}"
    from_cli = zoo.load(str(tmp_path / "cli" / "best.safetensors"), device="cpu")
    assert from_cli.labels == ("__background__", "red", "blue")

    api = zoo.load(str(start), device="cpu").finetune(data, epochs=1, batch_size=4, seed=3, image_size=64)
    ours, theirs, before = api.module.state_dict(), from_cli.module.state_dict(), zoo.load(str(start)).module
    assert ours.keys() == theirs.keys()
    changed = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not changed, changed[:5]
    assert not torch.equal(ours["backbone.body.0.0.weight"], before.state_dict()["backbone.body.0.0.weight"])


def _coco_edit(change: Any) -> Any:
    """A bad-data case: edit the COCO dict of the `coco` fixture."""

    def apply(path: Path) -> Path:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
        return path

    return apply


def _yolo_label(line: str) -> Any:
    """A bad-data case: the COCO fixture's images as a YOLO folder whose first label file holds `line`."""

    def apply(path: Path) -> Path:
        root = path.parent / "yolo"
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir()
        for image in sorted(path.parent.glob("*.png")):
            (root / "images" / image.name).write_bytes(image.read_bytes())
            (root / "labels" / f"{image.stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        (root / "labels" / "img0.txt").write_text(line + "\n")
        (root / "classes.txt").write_text("red\nblue\n")
        return root

    return apply


def _empty_yolo(path: Path) -> Path:
    root = path.parent / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: [red, blue]\n")
    return root


def _yaml_with_code(path: Path) -> Path:
    root = _yolo_label("0 0.5 0.5 0.2 0.2")(path)
    (root / "classes.txt").unlink()
    marker = path.parent / "ran"
    (root / "data.yaml").write_text(f"names: !!python/object/apply:os.system ['touch {marker}']\n")
    return root


def _missing_image(path: Path) -> Path:
    (path.parent / "img1.png").unlink()
    return path


BAD = {
    "missing image": (_missing_image, r"Image 'img1.png' of .*train.json is not beside it"),
    "box past the right edge": (
        _coco_edit(lambda d: d["annotations"][0].update(bbox=[80, 10, 40, 20])),
        r"box \(80, 10, 40, 20\) \(x, y, w, h\) of img0.png lies outside the 96x96 image",
    ),
    "negative width": (_coco_edit(lambda d: d["annotations"][0].update(bbox=[10, 10, -5, 20])), "has zero area"),
    "zero-area YOLO box": (_yolo_label("0 0.5 0.5 0 0.2"), r"box .* of img0.png has zero area"),
    "YOLO box outside": (_yolo_label("1 0.95 0.5 0.3 0.2"), "lies outside the 96x96 image"),
    "YOLO class out of range": (_yolo_label("5 0.5 0.5 0.2 0.2"), "class 5 is not one of the 2 classes"),
    "COCO class out of range": (
        _coco_edit(lambda d: d["annotations"][0].update(category_id=99)),
        "class id 99, which is not one of the 2 categories",
    ),
    "no images": (_coco_edit(lambda d: d.update(images=[], annotations=[])), "lists no images"),
    "no boxes": (_coco_edit(lambda d: d.update(annotations=[])), "has images but no boxes"),
    "empty YOLO folder": (_empty_yolo, "holds no images"),
    "not JSON": (lambda p: (p.write_text("{nope"), p)[1], "is not a COCO annotations file"),
    "annotation without bbox": (_coco_edit(lambda d: d["annotations"][0].pop("bbox")), "malformed annotations"),
    "YAML that would run code": (_yaml_with_code, "could not read its data.yaml"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_is_a_one_line_error_before_anything_is_written(coco: Path, tmp_path: Path, case: str) -> None:
    make, message = BAD[case]
    data = make(coco)
    with pytest.raises(zoo.InputError, match=message) as caught:
        read_detection(data)
    assert "\n" not in str(caught.value)
    assert not (coco.parent / "ran").exists()  # the YAML tag ran nothing


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_finetune_refuses_bad_data_and_models_leaving_no_run_folder(coco: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli
    from zoo.train.detection import finetune_detection

    model = zoo.load(MODEL, device="cpu")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    bad = _coco_edit(lambda d: d["annotations"][-1].update(bbox=[10, 90, 20, 20]))(coco)  # the last image's box
    with pytest.raises(zoo.InputError, match="lies outside the 96x96 image"):
        model.finetune(bad, epochs=1, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # checked before training: nothing half-written
    assert model.module.roi_heads.box_predictor.cls_score.out_features == 91  # nor the model changed
    assert all(torch.equal(v, before[k]) for k, v in model.module.state_dict().items())
    with pytest.raises(zoo.InputError, match="reads a COCO annotations .json file or a YOLO folder"):
        model.finetune(tmp_path, epochs=1)

    classifier = zoo.load("lenet5:none", device="cpu")
    with pytest.raises(zoo.UnsupportedError, match="Cannot fine-tune a LeNet5 on boxes"):
        finetune_detection(classifier, coco)
    with pytest.raises(zoo.UnsupportedError, match=r"holds boxes .* \(image-classification\) does not detect"):
        classifier.finetune(coco, epochs=1)
    assert zoo.capabilities(MODEL).finetune and not zoo.capabilities("maskrcnn_resnet50_fpn").finetune
    result = CliRunner().invoke(cli, ["finetune", "maskrcnn_resnet50_fpn", str(coco), "--device", "cpu"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "(instance-segmentation): its task declares no 'finetune' capability" in result.output


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_a_pretrained_layout_with_new_classes_builds_and_reloads(tmp_path: Path) -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    # what fine-tuning COCO weights leaves in a checkpoint: the COCO_V1 layout (frozen batch norm) and 3 classes
    model = zoo.load(MODEL, layout="COCO_V1", num_classes=3, device="cpu")
    assert model.module.roi_heads.box_predictor.cls_score.out_features == 3
    assert isinstance(model.module.backbone.body["0"][1], FrozenBatchNorm2d)
    model.replace_info(labels=("__background__", "red", "blue"))
    again = zoo.load(str(model.save(tmp_path / "tuned.safetensors")), device="cpu")
    assert again.builder_kwargs == {"layout": "COCO_V1", "num_classes": 3} and again.labels == model.labels
    assert all(torch.equal(v, again.module.state_dict()[k]) for k, v in model.module.state_dict().items())


def _tiny_detector(kind: str, num_classes: int) -> Any:
    """A few-KB torchvision RetinaNet, FCOS, SSD or SSDlite on a one-convolution backbone."""
    from torch import nn
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 32, 3, stride=8, padding=1), nn.ReLU())
    backbone.out_channels = [32] if kind == "ssd" else 32  # type: ignore[assignment]  # FCOS: GroupNorm(32, ...)
    if kind == "retinanet":
        anchors = AnchorGenerator(((16,),), ((1.0,),))
        return RetinaNet(backbone, num_classes, anchor_generator=anchors, min_size=64, max_size=64)
    if kind == "fcos":
        return FCOS(
            backbone, num_classes, anchor_generator=AnchorGenerator(((8,),), ((1.0,),)), min_size=64, max_size=64
        )
    boxes = DefaultBoxGenerator([[2]])
    head = (
        SSDLiteHead([32], boxes.num_anchors_per_location(), num_classes, nn.BatchNorm2d) if kind == "ssdlite" else None
    )
    return SSD(backbone, boxes, (64, 64), num_classes, head=head)


@pytest.mark.parametrize("kind", ["retinanet", "fcos", "ssd", "ssdlite"])
def test_one_stage_detectors_get_a_class_predictor_for_the_new_classes(kind: str) -> None:
    from zoo.ext import box_classes, replace_box_predictor

    model = _tiny_detector(kind, 91)
    assert box_classes(model) == 91
    replace_box_predictor(model, 3, seed=0)
    assert box_classes(model) == 3
    _tiny_detector(kind, 3).load_state_dict(model.state_dict())  # the layout a 3-class build has: it reloads
    model.train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([2])}] * 2
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        assert all(0 <= int(label) < 3 for out in model(images) for label in out["labels"])
