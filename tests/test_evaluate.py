"""`model.evaluate(folder)` and `zoo eval`: top-1 equals counting `predict` answers, per-class figures, the
confusion matrix picture, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from tests.conftest import tiny_cnn
from tests.test_finetune import PRE, colours, folder
from zoo.cli import cli


@pytest.fixture
def tiny() -> None:
    zoo.register("tiny", task="image-classification", preprocess=PRE, labels=("red", "green", "blue"))(
        lambda num_classes=3: tiny_cnn(num_classes)
    )


def test_counts_match_predict_and_the_confusion_matrix(tiny: None, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.load("tiny:none", device="cpu")
    data = folder(tmp_path / "data", *colours(24), ["red", "green", "blue"])
    (data / "blue" / "broken.png").write_bytes(b"not a png")
    result = model.evaluate(data, batch_size=5)

    files = sorted(p for p in data.rglob("*.png") if p.name != "broken.png")
    answers = model.predict(files, top_k=1)
    truth = [p.parent.name for p in files]
    hits = sum(r.label == t for r, t in zip(answers, truth))
    assert result.count == 24 and result.top1 == hits / 24 and result.top5 == 1.0  # 3 classes: top-3 holds all
    assert result.skipped == (str(data / "blue" / "broken.png"),)
    assert result.classes == ("blue", "green", "red")  # folder order
    for k, name in enumerate(result.classes):
        predicted = [t for r, t in zip(answers, truth) if r.label == name]
        mine = [r.label for r, t in zip(answers, truth) if t == name]
        assert result.support[k] == len(mine) == 8
        assert result.recall[k] == mine.count(name) / 8
        assert result.precision[k] == (predicted.count(name) / len(predicted) if predicted else 0.0)
        assert list(result.confusion[k]) == [mine.count(c) for c in result.classes]
    assert sum(map(sum, result.confusion)) == 24

    data_json = json.loads(result.to_json())
    assert data_json["top1"] == result.top1 and len(data_json["per_class"]) == 3
    png = result.save(tmp_path / "out")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 60 and image.height > 60
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["count"] == 24


def test_a_train_val_root_is_measured_on_val_and_other_predictions_get_a_column(tiny: None, tmp_path: Path) -> None:
    model = zoo.load("tiny:none", device="cpu")
    folder(tmp_path / "data" / "train", *colours(6), ["red", "green", "blue"])
    folder(tmp_path / "data" / "val", *colours(4, classes=2), ["red", "green"])
    result = model.evaluate(tmp_path / "data")
    assert result.data == str(tmp_path / "data" / "val") and result.count == 4
    answers = model.predict(sorted((tmp_path / "data" / "val").rglob("*.png")), top_k=1)
    outside = sum(r.label == "blue" for r in answers)
    assert result.columns == (("green", "red", "(other)") if outside else ("green", "red"))
    assert sum(row[-1] for row in result.confusion) == outside or not outside


def test_bad_data_gives_typed_errors(tiny: None, tmp_path: Path) -> None:
    model = zoo.load("tiny:none", device="cpu")
    with pytest.raises(zoo.InputError, match="No such folder"):
        model.evaluate(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(zoo.InputError, match="no class folders"):
        model.evaluate(tmp_path / "empty")
    data = folder(tmp_path / "data", *colours(4), ["red", "green", "cat"])
    with pytest.raises(zoo.InputError, match="name no class of the model \\('cat'\\)"):
        model.evaluate(data)
    with pytest.raises(zoo.InputError, match="batch_size"):
        model.evaluate(data, batch_size=0)
    with pytest.raises(zoo.InputError, match="unknown options"):
        model.evaluate(data, top_k=3)


def test_eval_command_json_out_and_one_line_errors(tiny: None, tmp_path: Path) -> None:
    data = folder(tmp_path / "data", *colours(9), ["red", "green", "blue"])
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["eval", "tiny:none", str(data), "--json", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["count"] == 9 and 0 <= figures["top1"] <= 1
    assert [row["class"] for row in figures["per_class"]] == ["blue", "green", "red"]
    assert (out / "confusion_matrix.png").stat().st_size > 200

    text = CliRunner().invoke(cli, ["eval", "tiny:none", str(data), "--device", "cpu"])
    assert text.exit_code == 0 and "top-1" in text.output and "precision" in text.output

    bad = CliRunner().invoke(cli, ["eval", "tiny:none", str(tmp_path / "nope"), "--device", "cpu"])
    assert bad.exit_code == 1 and bad.output.startswith("error: No such folder") and "Traceback" not in bad.output


@pytest.mark.assets
def test_zoo_eval_top1_equals_counting_predict_on_the_shared_photos(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared photos filed by their reference labels, two of them filed wrongly on purpose."""
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    reference = json.loads((assets / "reference" / "mobilenet_v2.json").read_text())["images"]
    names = sorted(reference)
    wrong = {names[0]: reference[names[1]][0]["label"], names[1]: reference[names[0]][0]["label"]}
    for name in names:
        label = wrong.get(name, reference[name][0]["label"])
        (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(assets / "images" / name, tmp_path / "data" / label / name)

    result = CliRunner().invoke(cli, ["eval", "mobilenet_v2", str(tmp_path / "data"), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)

    model = zoo.load("mobilenet_v2", device="cpu")
    files = sorted((tmp_path / "data").rglob("*.*"))
    answers = model.predict(files, top_k=1)
    hits = sum(r.label == path.parent.name for r, path in zip(answers, files))
    assert figures["count"] == len(names) and figures["top1"] == hits / len(names)
    assert hits == len(names) - 2  # the two misfiled photos miss, every other one is right
