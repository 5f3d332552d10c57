"""Fine-tuning an ultralytics model with ultralytics' trainer, offline: outputs under a folder zoo chooses, a
safetensors checkpoint that reloads by path and predicts the same boxes, nothing in the working directory."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.conftest import ASSETS

pytest.importorskip("ultralytics")


def write_dataset(root: Path) -> Path:
    """A 4-image YOLO dataset (2 classes) with a data.yaml whose `path:` is relative to the yaml."""
    photo = ASSETS / "images" / "bus.jpg"
    if photo.is_file():
        base = Image.open(photo).convert("RGB").resize((96, 128))
    else:
        base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 96, 3), dtype=np.uint8))
    for split in ("images", "labels"):
        (root / "data" / split).mkdir(parents=True)
    for i in range(4):
        base.rotate(i * 5).save(root / "data" / "images" / f"im{i}.jpg")
        (root / "data" / "labels" / f"im{i}.txt").write_text("0 0.5 0.45 0.8 0.6\n1 0.2 0.6 0.15 0.5\n")
    yaml = root / "data.yaml"
    yaml.write_text("path: data\ntrain: images\nval: images\nnames:\n  0: bus\n  1: person\n")
    return yaml


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every DNS lookup and connection refused, and recorded."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return attempts


def test_one_epoch_finetune_saves_safetensors_that_reload_with_the_same_boxes(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    import torch

    data = write_dataset(tmp_path / "dataset")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(0)
    model = zoo.load("yolov8n:none", device="cpu")
    trained = model.finetune(data=str(data), epochs=1, imgsz=64, batch_size=4, plots=False, seed=0)

    assert trained is model and model.labels == ("bus", "person") and model.builder_kwargs["num_classes"] == 2
    out = Path(model.training_summary["out"])
    assert out.is_relative_to(isolated / "ultralytics" / "runs" / "detect")  # the folder zoo chose
    assert (out / "weights" / "best.pt").is_file() and (out / "best.safetensors").is_file()
    assert model.training_summary["trainer"] == "ultralytics" and model.training_summary["epochs"] == 1
    assert not list(cwd.iterdir()) and no_network == []
    assert torch.are_deterministic_algorithms_enabled() == deterministic  # ultralytics' global switch undone

    image = data.parent / "data" / "images" / "im0.jpg"
    before = model.predict(image, conf=0.0, size=64)
    reloaded = zoo.load(str(out / "best.safetensors"), device="cpu")
    after = reloaded.predict(image, conf=0.0, size=64)
    assert reloaded.labels == ("bus", "person") and reloaded.training_summary["trainer"] == "ultralytics"
    assert len(before) > 0 and before.labels == after.labels
    np.testing.assert_allclose(after.boxes, before.boxes, atol=1e-4)
    np.testing.assert_allclose(after.scores, before.scores, atol=1e-6)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        np.testing.assert_allclose(reloaded(x)[0].numpy(), model(x)[0].numpy(), atol=1e-5)


def test_finetune_needs_data_and_one_dataset() -> None:
    model = zoo.load("yolov8n:none", device="cpu")
    with pytest.raises(zoo.InputError, match="needs data"):
        model.finetune(epochs=1)
    with pytest.raises(zoo.InputError, match="once"):
        model.finetune("a.yaml", data="b.yaml")
    with pytest.raises(zoo.InputError, match="val:"):
        model.finetune("a.yaml", "val/")


def test_relative_dataset_path_is_read_against_the_yaml(tmp_path: Path) -> None:
    import yaml

    from zoo_yolo.train import resolve_data

    data = write_dataset(tmp_path / "dataset")
    out = tmp_path / "run"
    out.mkdir()
    written = Path(resolve_data(str(data), out))
    content = yaml.safe_load(written.read_text())
    assert written.parent == out and content["path"] == str((data.parent / "data").resolve())
    assert content["names"] == {0: "bus", 1: "person"}
    assert resolve_data("coco8.yaml", out) == "coco8.yaml"  # a name ultralytics knows is left to it
