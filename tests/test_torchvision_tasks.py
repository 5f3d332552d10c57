"""torchvision's detectors and segmenters through zoo: the same answers as torchvision's own pipeline.

Parity: one state_dict (random init from a fixed seed, heads scaled so the outputs are not trivial) in zoo's
model and in torchvision's builder; zoo's predict against `weights.transforms()` + the module + torchvision's
postprocessing on a real photo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.results import Detections, Segmentation


@pytest.fixture
def bus(assets: Path) -> Path:
    return assets / "images" / "bus.jpg"


def _reference_input(path: Path, name: str, tag: str) -> object:
    """`weights.transforms()` of torchvision's own weights, applied to the decoded photo."""
    from torchvision.io import read_image
    from torchvision.models import get_model_weights

    return get_model_weights(name)[tag].transforms()(read_image(str(path)))


def test_fasterrcnn_predict_equals_torchvision_pipeline(bus: Path) -> None:
    import torch
    from torchvision.models import get_model

    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    torch.manual_seed(0)
    model = zoo.load(f"{name}:none", box_score_thresh=0.0, device="cpu")  # random heads score ~1/91
    found = model.predict(bus)
    reference = get_model(name, weights=None, weights_backbone=None, box_score_thresh=0.0).eval()
    reference.load_state_dict(model.module.state_dict())
    with torch.inference_mode():
        want = reference([_reference_input(bus, name, "COCO_V1")])[0]

    assert isinstance(found, Detections) and len(found) == len(want["boxes"]) > 0
    np.testing.assert_allclose(found.boxes, want["boxes"].numpy(), atol=1e-3, rtol=0)
    np.testing.assert_array_equal(found.class_ids, want["labels"].numpy())
    np.testing.assert_allclose(found.scores, want["scores"].numpy(), atol=1e-6)
    assert found.labels[0] == model.labels[int(found.class_ids[0])] and model.labels[1] == "person"
    assert found.size == (810, 1080)


def _loud_heads(module: object, heads: tuple[str, ...], seed: int) -> None:
    """Give a random model's final convolutions unit-normal weights and no bias, so the class map is not one
    class everywhere (their small random init lets the biases decide every pixel)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in module.state_dict().items():  # type: ignore[attr-defined]
            if key.startswith(heads):
                value.copy_(torch.randn(value.shape, generator=generator) if key.endswith("weight") else 0)


def test_lraspp_predict_equals_torchvision_pipeline(bus: Path) -> None:
    import torch
    from torch.nn.functional import interpolate
    from torchvision.models import get_model

    name = "lraspp_mobilenet_v3_large"
    torch.manual_seed(0)
    model = zoo.load(f"{name}:none", device="cpu")
    _loud_heads(model.module, ("classifier.low_classifier.", "classifier.high_classifier."), seed=1)
    found = model.predict(bus)
    reference = get_model(name, weights=None, weights_backbone=None).eval()
    reference.load_state_dict(model.module.state_dict())
    batch = _reference_input(bus, name, "COCO_WITH_VOC_LABELS_V1").unsqueeze(0)
    with torch.inference_mode():
        logits = reference(batch)["out"]
    want = interpolate(logits, size=(1080, 810), mode="bilinear", align_corners=False).argmax(1)[0].numpy()

    assert isinstance(found, Segmentation) and found.class_map.shape == (1080, 810)
    assert len(np.unique(want)) > 1, "the test needs a class map with several classes"
    np.testing.assert_array_equal(found.class_map, want)
    shares = found.shares
    assert abs(sum(shares.values()) - 1) < 1e-9 and list(shares.values()) == sorted(shares.values(), reverse=True)
    data = json.loads(found.to_json())
    assert data["width"] == 810 and {c["label"] for c in data["classes"]} == set(shares)
    assert "Segmentation(" in repr(found) and "%" in str(found)
    picture = found.plot()
    assert picture.size == (810, 1080)


def test_detections_with_masks_and_keypoints(tmp_path: Path) -> None:
    """What Mask R-CNN and Keypoint R-CNN fill (the R-CNNs themselves are too slow to build here)."""
    import torch

    from zoo.tasks.torchvision_detection import TorchvisionDetection, _keep

    image = np.zeros((60, 80, 3), np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:50, 10:30] = True
    points = np.array([[[12, 12, 1.0], [20, 15, 0.0]], [[50, 40, 2.0], [60, 45, 3.0]]], np.float32)
    boxes = np.array([[10, 10, 30, 20], [40, 30, 70, 50]], np.float32)
    found = Detections(boxes, np.array([0.9, 0.8], np.float32), np.array([1, 2]), ("person", "bicycle"), (80, 60),
                       image=image, masks=masks, keypoints=points, keypoint_names=("nose", "left_eye"))  # fmt: skip
    data = found.to_dict()
    assert [d["mask_area"] for d in data["detections"]] == [800, 0]
    assert data["detections"][1]["keypoints"][0] == [50.0, 40.0, 2.0] and data["keypoint_names"] == ["nose", "left_eye"]
    assert "with masks, with keypoints" in repr(found)
    plain = Detections(boxes, found.scores, found.class_ids, found.labels, found.size, image=image)
    drawn, bare = np.asarray(found.plot()), np.asarray(plain.plot())
    assert (drawn[45, 20] != bare[45, 20]).any(), "the mask is shaded"
    assert (drawn[40, 50] != bare[40, 50]).any(), "the visible keypoint is drawn"
    assert found.save(tmp_path / "masks.png").stat().st_size > 0
    out = {"boxes": torch.tensor(boxes), "scores": torch.tensor([0.9, 0.2]), "labels": torch.tensor([1, 2])}
    assert _keep(out, 0.5, None, None)["labels"].tolist() == [1]
    assert _keep(out, 0.0, [2], None)["labels"].tolist() == [2]
    assert TorchvisionDetection.plots


def test_labels_are_drawn_inside_the_right_edge() -> None:
    width, height = 200, 100
    image = np.full((height, width, 3), 255, np.uint8)
    box = np.array([[190, 5, 199, 95]], np.float32)
    found = Detections(box, np.array([0.9], np.float32), np.array([0]), ("a-long-label",), (width, height), image=image)
    pixels = np.asarray(found.plot())
    colored = (pixels != 255).any(axis=2)
    assert colored[:, :190].any(), "the label moved left to stay whole"


def test_zoo_predict_cli_detects_with_a_torchvision_detector(bus: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "predict", "ssdlite320_mobilenet_v3_large:none", str(bus), "--json",
         "--save", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    result = data["results"][0] if isinstance(data, dict) else data
    assert result["width"] == 810 and isinstance(result["detections"], list)
    assert list(tmp_path.glob("bus.*"))


@pytest.mark.filterwarnings("ignore::zoo.errors.RandomWeightsWarning")
def test_quantized_classifier_builds_and_runs_on_cpu_with_its_engine(bus: Path) -> None:
    import torch

    spec = zoo.info("quantized_shufflenet_v2_x0_5")
    assert spec.meta["quantized_engines"] == {"IMAGENET1K_FBGEMM_V1": "fbgemm"}
    assert spec.default_weights == "IMAGENET1K_FBGEMM_V1"
    before = torch.backends.quantized.engine
    try:
        model = zoo.load("quantized_shufflenet_v2_x0_5:none", quantize=True, device="cpu")
        assert torch.backends.quantized.engine == "fbgemm"
        assert type(model.module.fc).__module__.startswith("torch.ao.nn.quantized")  # int8 kernels, not float
        found = model.predict(bus, top_k=2)
        assert len(found.labels) == 2 and 0 < found.score <= 1
        with pytest.raises(zoo.UnsupportedError, match="fbgemm or qnnpack"):
            zoo.load("quantized_shufflenet_v2_x0_5:none", quantize=True, backend="x86", device="cpu")
    finally:
        torch.backends.quantized.engine = before
