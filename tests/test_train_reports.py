"""Training reports in the run folder: results.csv per epoch, curves.png, and the best epoch's validation
confusion_matrix.png and per_class.csv."""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from tests.conftest import tiny_cnn
from tests.test_finetune import PRE, colours, folder
from zoo.train.history import EpochMetrics


@pytest.fixture
def data(tmp_path: Path) -> Path:
    zoo.register("tiny", task="image-classification", preprocess=PRE)(lambda num_classes=3: tiny_cnn(num_classes))
    folder(tmp_path / "data" / "train", *colours(30), ["red", "green", "blue"])
    return folder(tmp_path / "data" / "val", *colours(12, seed=1), ["red", "green", "blue"]).parent


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return image.size


def test_run_folder_holds_results_curves_and_the_best_epochs_confusion(data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    model = zoo.load("tiny:none", device="cpu")
    model.finetune(data, epochs=3, batch_size=8, seed=0, out=out, lr=3e-3, patience=None)
    history = model.history
    assert history is not None

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert list(rows[0]) == [f.name for f in fields(EpochMetrics)]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_top1"]) for r in rows] == pytest.approx(history.metric("val_top1"))
    assert [float(r["train_loss"]) for r in rows] == pytest.approx(history.metric("train_loss"))

    width, height = _png(out / "curves.png")
    assert width >= 800 and height >= 200  # three panels: loss, accuracy, learning rate

    per_class = list(csv.DictReader((out / "per_class.csv").open()))
    assert [r["class"] for r in per_class] == ["blue", "green", "red"]
    assert {int(r["epoch"]) for r in per_class} == {history.best_epoch}
    assert sum(int(r["support"]) for r in per_class) == 12
    hits = sum(float(r["accuracy"]) * int(r["support"]) for r in per_class)
    assert hits / 12 == pytest.approx(history.best.val_top1)  # the best epoch's figures, not the last one's
    val = sorted((data / "val").rglob("*.png"))
    answers = model.predict(val, top_k=1)
    for row in per_class:  # the model ends with the best weights: per-class accuracy is what predict gives
        mine = [r.label for r, p in zip(answers, val) if p.parent.name == row["class"]]
        assert float(row["accuracy"]) == pytest.approx(mine.count(row["class"]) / len(mine))
    assert min(_png(out / "confusion_matrix.png")) > 60


def test_no_validation_means_no_confusion_matrix(data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model = zoo.load("tiny:none", device="cpu")
    model.finetune(data / "train", epochs=1, batch_size=8, seed=0, out=tmp_path / "run")
    assert len(list(csv.DictReader((tmp_path / "run" / "results.csv").open()))) == 1
    assert (tmp_path / "run" / "curves.png").is_file()
    assert not (tmp_path / "run" / "confusion_matrix.png").exists()
    assert not (tmp_path / "run" / "per_class.csv").exists()
