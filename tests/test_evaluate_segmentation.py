"""`model.evaluate` / `zoo eval` for semantic segmentation: mIoU equals what one computes from predict's class
maps; VOC's own layout; one-line typed errors for bad masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli

LABELS = ("red", "green", "blue")


class BrightestChannel(torch.nn.Module):
    """A segmenter whose class is the brightest channel, through a 1x1 convolution (logits at the resized size)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


@pytest.fixture
def tiny() -> None:
    pre = zoo.ImagePreprocess(resize=16, crop=None, mean=(0.0,) * 3, std=(1.0,) * 3)
    zoo.register("tinyseg", task="semantic-segmentation", preprocess=pre, labels=LABELS)(
        lambda num_classes=3: BrightestChannel()
    )


def blocks(seed: int, size: tuple[int, int] = (40, 56)) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image of 8x8 blocks, each brightest in one channel, and its mask: each block's channel, a few
    blocks labelled wrongly on purpose, and a 255 (ignore) border like VOC's."""
    rng = np.random.default_rng(seed)
    h, w = size
    classes = rng.integers(0, 3, (h // 8, w // 8))
    image = rng.integers(0, 110, (h, w, 3)).astype(np.uint8)
    mask = np.kron(classes, np.ones((8, 8), np.int64))
    for c in range(3):
        image[..., c] += (mask == c).astype(np.uint8) * 120
    wrong = rng.random(classes.shape) < 0.2
    mask = np.kron(np.where(wrong, (classes + 1) % 3, classes), np.ones((8, 8), np.int64))
    mask[:, :2] = 255
    return image, mask.astype(np.uint8)


def dataset(root: Path, count: int = 4, *, palette: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image, mask = blocks(i)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        _save_mask(mask, root / "masks" / f"im{i}.png", palette=palette)
    return root


def _save_mask(mask: np.ndarray, path: Path, *, palette: bool = False) -> None:
    picture = Image.fromarray(mask)
    if palette:  # VOC's masks: palette PNGs whose indices are the class ids
        picture = picture.convert("P")
        picture.putpalette([v for i in range(256) for v in (i * 37 % 256, i * 91 % 256, i * 53 % 256)])
        picture.putdata(mask.flatten().tolist())
    picture.save(path)


def by_hand(model: zoo.Model, files: list[Path], masks: list[Path]) -> tuple[float, float, list[float]]:
    """mIoU, pixel accuracy and per-class IoU from predict's class maps, with plain boolean arithmetic."""
    inter, union, hits, scored = np.zeros(3), np.zeros(3), 0, 0
    for file, mask_file in zip(files, masks):
        found = model.predict(file).class_map
        truth = np.array(Image.open(mask_file)).astype(np.int64)
        valid = truth != 255
        hits += int(((found == truth) & valid).sum())
        scored += int(valid.sum())
        for c in range(3):
            inter[c] += ((found == c) & (truth == c) & valid).sum()
            union[c] += (((found == c) | (truth == c)) & valid).sum()
    iou = [i / u if u else float("nan") for i, u in zip(inter, union)]
    present = [v for v in iou if v == v]
    return sum(present) / len(present), hits / scored, iou


def test_miou_equals_the_one_computed_from_predicts_class_maps(tiny: None, tmp_path: Path) -> None:
    model = zoo.load("tinyseg:none", device="cpu")
    data = dataset(tmp_path / "data", palette=True)
    (data / "images" / "broken.png").write_bytes(b"not a png")  # unreadable: skipped, like classification
    shutil.copy(data / "masks" / "im0.png", data / "masks" / "broken.png")
    result = model.evaluate(data, batch_size=3)

    files = sorted((data / "images").glob("im*.png"))
    miou, accuracy, iou = by_hand(model, files, [data / "masks" / f.name for f in files])
    assert result.count == 4 and result.skipped == (str(data / "images" / "broken.png"),)
    assert result.miou == pytest.approx(miou, abs=1e-12) and result.pixel_accuracy == pytest.approx(accuracy)
    assert result.iou == pytest.approx(iou) and result.classes == LABELS
    assert 0.3 < result.miou < 0.95, "wrong blocks and resized borders: neither perfect nor chance"
    masks = [np.array(Image.open(data / "masks" / f.name)) for f in files]
    assert sum(result.support) == sum(int((m != 255).sum()) for m in masks)
    assert sum(map(sum, result.confusion)) == sum(result.support)
    assert [sum(row) for row in result.confusion] == list(result.support)

    figures = json.loads(result.to_json())
    assert figures["miou"] == result.miou and [c["class"] for c in figures["per_class"]] == list(LABELS)
    png = result.save(tmp_path / "out")
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.width > 60
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["count"] == 4


def test_the_class_map_is_scored_at_the_input_size_on_a_real_photo(tiny: None, assets: Path, tmp_path: Path) -> None:
    """A 451x300 photo through a 16-pixel model input: the mask is the photo's size, as predict's class map."""
    model = zoo.load("tinyseg:none", device="cpu")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    shutil.copy(assets / "images" / "chelsea.png", tmp_path / "images" / "chelsea.png")
    photo = np.asarray(Image.open(tmp_path / "images" / "chelsea.png").convert("RGB")).astype(np.int64)
    truth = photo.argmax(-1).astype(np.uint8)  # the brightest channel at full resolution
    _save_mask(truth, tmp_path / "masks" / "chelsea.png")
    result = model.evaluate(tmp_path)
    found = model.predict(tmp_path / "images" / "chelsea.png").class_map
    assert found.shape == truth.shape
    assert result.pixel_accuracy == pytest.approx(float((found == truth).mean()))
    miou = by_hand(model, [tmp_path / "images" / "chelsea.png"], [tmp_path / "masks" / "chelsea.png"])[0]
    assert result.miou == pytest.approx(miou)


def test_voc_layout_reads_the_val_list(tiny: None, tmp_path: Path) -> None:
    source = dataset(tmp_path / "src", count=3, palette=True)
    voc = tmp_path / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    shutil.copytree(source / "masks", voc / "SegmentationClass")
    for i in range(3):
        Image.open(source / "images" / f"im{i}.png").save(voc / "JPEGImages" / f"im{i}.png")
    Image.new("RGB", (8, 8)).save(voc / "JPEGImages" / "unlabelled.png")  # VOC holds images without masks
    model = zoo.load("tinyseg:none", device="cpu")

    everything = model.evaluate(voc)
    assert everything.count == 3
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("im0\nim2\n")
    val = model.evaluate(voc)
    files = [voc / "JPEGImages" / "im0.png", voc / "JPEGImages" / "im2.png"]
    miou = by_hand(model, files, [voc / "SegmentationClass" / f.name for f in files])[0]
    assert val.count == 2 and val.miou == pytest.approx(miou)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("im0\nim9\n")
    with pytest.raises(zoo.InputError, match="names 'im9'"):
        model.evaluate(voc)


def test_bad_masks_give_one_line_typed_errors(tiny: None, tmp_path: Path) -> None:
    model = zoo.load("tinyseg:none", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.InputError, match="has no masks/ folder"):
        model.evaluate(tmp_path / "empty")
    (tmp_path / "bare" / "images").mkdir(parents=True)
    (tmp_path / "bare" / "masks").mkdir()
    with pytest.raises(zoo.InputError, match="holds no images"):
        model.evaluate(tmp_path / "bare")

    data = dataset(tmp_path / "data", count=2)
    mask = data / "masks" / "im1.png"
    good = mask.read_bytes()
    mask.unlink()
    with pytest.raises(zoo.InputError, match="No mask .*im1.png: give each image a PNG of class ids"):
        model.evaluate(data)
    _save_mask(np.zeros((20, 56), np.uint8), mask)
    with pytest.raises(zoo.InputError, match="is 56x20 but its image is 56x40: save the mask at the image's size"):
        model.evaluate(data)
    outside = np.zeros((40, 56), np.uint8)
    outside[3, 3], outside[5, 5] = 7, 255  # 255 is ignored, 7 is no class of a 3-class model
    _save_mask(outside, mask)
    with pytest.raises(zoo.InputError, match="holds class id 7, outside the model's 3 classes"):
        model.evaluate(data)
    Image.fromarray(np.dstack([outside * 0, outside * 0 + 9, outside * 0])).save(mask)
    with pytest.raises(zoo.InputError, match="colour image"):
        model.evaluate(data)
    mask.write_bytes(good)
    expected = model.evaluate(data)
    Image.open(mask).convert("LA").save(mask)  # grayscale with alpha: the alpha is no class
    assert expected.count == 2 and model.evaluate(data).confusion == expected.confusion

    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    pre = zoo.ImagePreprocess(resize=8, crop=8)
    zoo.register("tinycls", task="image-classification", preprocess=pre, labels=LABELS)(lambda num_classes=3: linear)
    with pytest.raises(zoo.UnsupportedError, match="not class maps"):
        zoo.load("tinycls:none", device="cpu").evaluate(data)


def test_eval_command_json_out_and_one_line_errors(tiny: None, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data", count=2)
    out = tmp_path / "report"
    ran = CliRunner().invoke(cli, ["eval", "tinyseg:none", str(data), "--json", "--device", "cpu", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    figures = json.loads(ran.stdout)
    assert figures["task"] == "semantic-segmentation" and figures["count"] == 2 and 0 < figures["miou"] < 1
    assert (out / "confusion_matrix.png").stat().st_size > 200 and (out / "metrics.json").is_file()

    text = CliRunner().invoke(cli, ["eval", "tinyseg:none", str(data), "--device", "cpu"])
    assert text.exit_code == 0 and "mIoU" in text.output and "green" in text.output

    (data / "masks" / "im0.png").unlink()
    bad = CliRunner().invoke(cli, ["eval", "tinyseg:none", str(data), "--device", "cpu"])
    assert bad.exit_code == 1 and bad.output.startswith("error: No mask") and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_pixel_counts_fit_the_confusion_matrix_cells() -> None:
    from zoo.charts import _count

    assert [_count(n) for n in (987, 12_345, 999_999, 3_456_789)] == ["987", "12k", "1M", "3.5M"]


def test_classes_in_neither_masks_nor_predictions_are_left_out_of_miou(tiny: None, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.new("RGB", (24, 16), (200, 10, 10)).save(tmp_path / "images" / "red.png")
    _save_mask(np.zeros((16, 24), np.uint8), tmp_path / "masks" / "red.png")
    result = zoo.load("tinyseg:none", device="cpu").evaluate(tmp_path)
    assert result.miou == 1.0 and result.iou[0] == 1.0 and all(v != v for v in result.iou[1:])
    assert [c["iou"] for c in json.loads(result.to_json())["per_class"]] == [1.0, None, None]
    assert "NaN" not in result.to_json() and str(result).count("\n") == 2  # only red is listed


def test_unreadable_files_stay_typed_when_ultralytics_patched_pil(
    tiny: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing ultralytics replaces `PIL.Image.open` with one that imports pi_heif on a file PIL cannot
    identify (ModuleNotFoundError when it is absent); an unreadable image is still skipped, a bad mask typed."""
    opened = Image.open

    def patched(*args: object, **kwargs: object) -> Image.Image:
        try:
            return opened(*args, **kwargs)  # type: ignore[arg-type]
        except Image.UnidentifiedImageError:
            raise ModuleNotFoundError("No module named 'pi_heif'") from None

    monkeypatch.setattr(Image, "open", patched)
    data = dataset(tmp_path / "data", count=2)
    (data / "images" / "broken.png").write_bytes(b"not a png")
    shutil.copy(data / "masks" / "im0.png", data / "masks" / "broken.png")
    result = zoo.load("tinyseg:none", device="cpu").evaluate(data)
    assert result.count == 2 and result.skipped == (str(data / "images" / "broken.png"),)
    (data / "masks" / "im1.png").write_bytes(b"not a png either")
    with pytest.raises(zoo.InputError, match="Cannot read mask .*im1.png"):
        zoo.load("tinyseg:none", device="cpu").evaluate(data)
