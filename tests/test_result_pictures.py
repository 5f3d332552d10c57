"""Result pictures drawn with `torchvision.utils`: labels stay whole inside the picture at every edge, their text
contrasts with their tag on light and dark photos, the same result gives the same PNG bytes, masks and keypoints
land where they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.results import Detections, Segmentation, _draw
from zoo.results._draw import COCO_KEYPOINTS, text_colour

W, H = 200, 120
#: Boxes touching (or crossing) each edge of a W x H picture, and one in the middle as the reference.
EDGES = {
    "top": (60, 0, 120, 40),
    "bottom": (60, 100, 120, H - 1),
    "left": (0, 50, 40, 90),
    "right": (170, 50, W - 1, 90),
    "top-right corner": (185, 0, W - 1, 30),
    "bottom-left corner": (0, H - 8, 30, H - 1),
    "above the top": (60, -30, 120, 20),
    "past the right": (195, 60, 260, 100),
}
LABEL = "motorcycle-long-name"


def detections(box: tuple[float, ...], image: np.ndarray, class_id: int = 0, **extra: object) -> Detections:
    boxes = np.array([box], np.float32)
    size = (image.shape[1], image.shape[0])
    return Detections(boxes, np.array([0.87], np.float32), np.array([class_id]), (LABEL,), size, image=image, **extra)


def ink(pixels: np.ndarray) -> np.ndarray:
    """The label's black text: pixels much darker than the tag (FF3838, class 0) and the white photo."""
    return pixels.astype(int).sum(-1) < 150


@pytest.fixture(params=["truetype", "no font file"])
def font(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run with the environment's TrueType font, and as on a machine with none (torchvision's default font)."""
    if request.param == "no font file":
        monkeypatch.setattr(_draw, "font_file", lambda: None)
    return str(request.param)


@pytest.mark.parametrize("edge", EDGES)
def test_a_box_touching_each_edge_keeps_its_whole_label_inside(edge: str, font: str) -> None:
    white = np.full((H, W, 3), 255, np.uint8)
    drawn = np.asarray(detections(EDGES[edge], white).plot(font_size=14))
    roomy = np.asarray(detections((150, 150, 210, 190), np.full((400, 400, 3), 255, np.uint8)).plot(font_size=14))
    assert drawn.shape == (H, W, 3)
    assert ink(drawn).sum() == ink(roomy).sum() > 50, f"the label of the box at the {edge} lost pixels"
    border = np.zeros((H, W), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    assert not (ink(drawn) & border).any(), "the text touches the edge: its tag was cut"


def tag_region(pixels: np.ndarray, colour: str, above: int) -> np.ndarray:
    """The label tag above a box whose top edge is row `above`: the columns where the tag's colour is."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    band = pixels[:above]
    columns = np.nonzero((band == rgb).all(-1).any(0))[0]
    rows = np.nonzero((band == rgb).all(-1).any(1))[0]
    return band[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def contrast(a: np.ndarray, b: np.ndarray) -> float:
    """WCAG contrast ratio of two RGB colours (1 to 21)."""

    def luminance(c: np.ndarray) -> float:
        s = c / 255
        linear = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("class_id", range(20))
def test_label_text_contrasts_with_its_tag_on_white_and_black_photos(class_id: int) -> None:
    colour = Detections._colour(class_id)
    tags = []
    for background in (255, 0):
        photo = np.full((H, W, 3), background, np.uint8)
        pixels = np.asarray(detections((60, 60, 140, 100), photo, class_id).plot(font_size=14))
        tag = tag_region(pixels, colour, above=60)
        fill = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        far = max(tag.reshape(-1, 3), key=lambda p: abs(int(p.astype(int).sum()) - int(fill.sum())))
        assert contrast(far, fill) >= 4.5, f"{text_colour(colour)} text on {colour}"
        text = (np.abs(tag.astype(int) - far).sum(-1) < 60).sum()
        assert text > 40, "the label is written in that colour"
        tags.append(tag)
    assert np.array_equal(*tags), "the label looks the same on a light and a dark photo"


def test_text_colour_follows_luminance() -> None:
    assert text_colour("#FFFF00") == "black" and text_colour("#0018EC") == "white"
    assert text_colour("#FFFFFF") == "black" and text_colour("#000000") == "white"


def test_the_same_result_gives_the_same_png_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    masks = np.zeros((1, H, W), bool)
    masks[0, 30:80, 40:100] = True
    points = np.array([[[50, 50, 1.0]] * 17], np.float32)
    found = detections((40, 30, 100, 80), photo, 3, masks=masks, keypoints=points, keypoint_names=COCO_KEYPOINTS)
    one, two = found.save(tmp_path / "a.png"), found.save(tmp_path / "b.png")
    assert one.read_bytes() == two.read_bytes()
    class_map = np.zeros((H, W), np.int64)
    class_map[10:60, 20:90] = 15
    segmented = Segmentation(class_map, tuple(str(i) for i in range(21)), image=photo)
    assert segmented.save(tmp_path / "s1.png").read_bytes() == segmented.save(tmp_path / "s2.png").read_bytes()


def test_masks_and_keypoints_are_drawn_where_they_are() -> None:
    black = np.zeros((H, W, 3), np.uint8)
    masks = np.zeros((1, H, W), bool)
    masks[0, 70:110, 20:60] = True
    points = np.zeros((1, 17, 3), np.float32)
    points[0, :, :2] = [[150, 110]] * 17
    points[0, 5] = [120, 40, 1.0]  # left shoulder, visible
    points[0, 6] = [180, 40, 1.0]  # right shoulder, visible: the skeleton joins them
    points[0, 0] = [150, 20, 0.0]  # the nose, not visible
    box = (100, 5, 195, 115)
    colour = np.array([255, 178, 29])  # class 3: FFB21D
    plain = np.asarray(detections(box, black, 3).plot())
    drawn = np.asarray(detections(box, black, 3, masks=masks, keypoints=points).plot())
    joined = np.asarray(detections(box, black, 3, masks=masks, keypoints=points, keypoint_names=COCO_KEYPOINTS).plot())

    assert drawn[90, 40].tolist() == (colour * 0.45).astype(int).tolist(), "the mask, in its class colour"
    assert (drawn[70:110, 20:60] != 0).any(-1).all() and (drawn[70:110, 20:60] != plain[70:110, 20:60]).all()
    assert np.array_equal(drawn[:, :20], plain[:, :20]) and np.array_equal(drawn[:70, 60:100], plain[:70, 60:100])
    assert drawn[40, 120].tolist() == drawn[40, 180].tolist() == [0, 255, 0], "visible keypoints, in green"
    assert drawn[20, 150].tolist() == plain[20, 150].tolist(), "an invisible keypoint is not drawn"
    assert drawn[40, 150].tolist() == [0, 0, 0] and joined[40, 150].tolist() == [255] * 3, "the skeleton"


def test_segmentation_overlay_and_legend() -> None:
    for background in (255, 0):
        photo = np.full((H, W, 3), background, np.uint8)
        class_map = np.zeros((H, W), np.int64)
        class_map[60:110, 120:190] = 6  # FF701F... index 6 of the segmentation palette: 48F90A
        drawn = np.asarray(Segmentation(class_map, tuple(str(i) for i in range(21)), image=photo).plot(font_size=14))
        assert drawn[85, 150].tolist() != [background] * 3 and drawn[85, 100].tolist() == [background] * 3
        legend = tag_region(drawn, "#48F90A", above=60)
        fill = np.array([0x48, 0xF9, 0x0A])
        far = max(legend.reshape(-1, 3), key=lambda p: abs(int(p.astype(int).sum()) - int(fill.sum())))
        assert contrast(far, fill) >= 4.5


def test_the_font_is_a_local_truetype_file() -> None:
    path = _draw.font_file()
    assert path is None or (Path(path).is_file() and path.lower().endswith(".ttf"))
