"""`zoo finetune NAME DATA ...`: per-epoch metrics, the saved checkpoint's path, resume, one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo
from tests.conftest import tiny_cnn
from tests.test_finetune import PRE, colours, folder
from zoo.cli import cli


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    zoo.register("tiny", task="image-classification", preprocess=PRE)(lambda num_classes=3: tiny_cnn(num_classes))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield folder(tmp_path / "data", *colours(30), ["red", "green", "blue"])
    torch.set_num_threads(threads)


def test_finetune_command_prints_epochs_and_the_checkpoint(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", "tiny:none", str(data), "--val", "0.2", "--epochs", "2", "-b", "8", "--seed", "0"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--device", "cpu", "--strategy", "full"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("epoch 1  loss ") and "val_top1" in lines[0] and lines[1].startswith("epoch 2 ")
    assert lines[-1] == f"saved {out / 'best.safetensors'}"
    assert zoo.load(str(out / "best.safetensors"), device="cpu").labels == ("blue", "green", "red")

    resumed = CliRunner().invoke(cli, [*args[:5], "--epochs", "3", "-b", "8", "--val", "0.2", "--out", str(out),
                                       "--resume", str(out / "last.pt"), "--seed", "0"])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert [line.split()[1] for line in resumed.output.splitlines() if line.startswith("epoch")] == ["3"]


def test_finetune_command_errors_are_one_line(data: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["finetune", "tiny:none", str(tmp_path / "empty"), "--device", "cpu"])
    assert result.exit_code == 1
    assert result.output.startswith("error: No images in") and result.output.count("\n") == 1


def test_finetune_command_passes_the_recipe_options(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", "tiny:none", str(data), "--val", "0.2", "--epochs", "1", "-b", "8", "--seed", "0"]
    recipe = ["--optimizer", "sgd", "--weight-decay", "0", "--label-smoothing", "0.1", "--augment", "--patience", "2"]
    result = CliRunner().invoke(cli, [*args, *recipe, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    training = zoo.load(str(out / "best.safetensors"), device="cpu").training_summary
    assert training is not None
    assert (training["optimizer"], training["weight_decay"], training["label_smoothing"], training["augment"]) == (
        "sgd", 0.0, 0.1, True,
    )  # fmt: skip
    assert training["lr"] == pytest.approx(0.01)  # SGD's default for a new model, not AdamW's


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--label-smoothing", "1.5"], "error: label_smoothing=1.5: use a value in [0, 1)."),
        (["--weight-decay", "-1"], "error: weight_decay=-1.0: use a value >= 0."),
        (["--patience", "0"], "error: patience=0: use >= 1, or None."),
    ],
)
def test_finetune_command_refuses_a_bad_recipe_in_one_line(data: Path, option: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["finetune", "tiny:none", str(data), "--device", "cpu", *option])
    assert result.exit_code != 0 and result.output == message + "\n"
