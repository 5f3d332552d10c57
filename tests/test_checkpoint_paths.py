"""Checkpoint paths in the public API: `str` and `os.PathLike` everywhere, an existing path wins over a model name,
and `zoo info PATH` describes what a checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

torch = pytest.importorskip("torch")


@pytest.fixture
def model() -> zoo.Model:
    torch.manual_seed(0)
    model = zoo.load("lenet5:none", num_classes=3, labels=["cat", "dog", "fox"], device="cpu")
    model.replace_info(training={"epochs": 2})
    return model


def same(a: zoo.Model, b: zoo.Model) -> bool:
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        return torch.equal(a.module.eval()(x), b.module.eval()(x))


def test_load_takes_what_save_returns(model: zoo.Model, tmp_path: Path) -> None:
    for target in (tmp_path / "x.safetensors", tmp_path / "folder"):
        saved = model.save(target)
        assert isinstance(saved, Path)
        loaded = zoo.load(saved, device="cpu")
        assert loaded.labels == ("cat", "dog", "fox") and same(model, loaded)
        assert zoo.info(saved).name == "lenet5"
        assert zoo.fetch(saved).name.endswith(".safetensors") and zoo.fetch(saved).is_file()


def test_an_existing_path_wins_over_a_model_name(
    model: zoo.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model.save("outdir")
    assert same(model, zoo.load("outdir", device="cpu"))
    model.save(tmp_path / "lenet5")  # a folder named like a catalog model, in the working directory
    assert zoo.load("lenet5", device="cpu").labels == ("cat", "dog", "fox")
    monkeypatch.chdir(tmp_path / "outdir")
    assert zoo.load("lenet5", device="cpu").labels is None  # no such folder here: the catalog model
    with pytest.raises(zoo.UnknownModelError, match="Unknown model"):
        zoo.load("outdir")
    with pytest.raises(zoo.InputError, match="not a"):
        zoo.load(3)  # type: ignore[arg-type]


def test_zoo_info_describes_a_checkpoint(model: zoo.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model.save("ckpt.safetensors")
    runner = CliRunner()
    out = runner.invoke(cli, ["info", "./ckpt.safetensors"])
    assert out.exit_code == 0, out.output
    assert "custom/lenet5" in out.output and "labels: 3" in out.output
    assert "num_classes=3" in out.output and "resize 32" in out.output
    data = json.loads(runner.invoke(cli, ["info", "ckpt.safetensors", "--json"]).output)
    assert data["model"] == "lenet5" and data["plugin"] == "custom" and data["num_labels"] == 3
    assert data["builder_kwargs"]["num_classes"] == 3 and data["preprocess"]["crop"] == 32
    assert data["training"] == {"epochs": 2}
    model.save("folder")
    assert "custom/lenet5" in runner.invoke(cli, ["info", "folder"]).output
    missing = runner.invoke(cli, ["info", "./nothing.safetensors"])
    assert missing.exit_code == 1 and missing.output.startswith("error: No checkpoint at")
