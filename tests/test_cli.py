"""The command line: listing, info, plugins, predict, and one-line errors with non-zero exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True)


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("zoo ")


def test_list_json_holds_the_torchvision_classifiers() -> None:
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.output)
    tv = [m for m in models if m["plugin"] == "torchvision" and m["task"] == "image-classification"]
    assert len(tv) >= 80
    assert {"resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "efficientnet_b0"} <= {m["name"] for m in tv}


def test_list_pattern_and_table() -> None:
    result = CliRunner().invoke(cli, ["list", "resnet*"])
    assert result.exit_code == 0
    assert "resnet18" in result.output and "mobilenet" not in result.output


def test_info_json() -> None:
    result = CliRunner().invoke(cli, ["info", "resnet50", "--json"])
    data = json.loads(result.output)
    assert data["default_weights"] == "IMAGENET1K_V1"  # what pretrained=True gives
    assert data["aliases"] == {"DEFAULT": "IMAGENET1K_V2"}  # torchvision's weights="DEFAULT"
    assert data["weights"]["IMAGENET1K_V1"]["hash_prefix"] == "0676ba61"
    assert data["weights"]["IMAGENET1K_V2"]["preprocess"]["resize"] == 232


def test_plugins_json() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    data = {p["name"]: p for p in json.loads(result.output)}
    assert data["torchvision"]["status"] == "ok"
    assert data["torchvision"]["models"] >= 80


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "resnt18"], "Did you mean 'resnet18'"),
        (["predict", "resnet18:v9", "x.jpg"], "Unknown weights tag 'v9'"),
        (["predict", "resnet18:none", "/no/such/file.jpg", "--device", "cpu"], "No such file or folder"),
        (["predict", "resnet18:none", "x.jpg", "--device", "quantum"], "is not a device"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args: list[str], needle: str) -> None:
    out = run(*args)
    assert out.returncode == 1
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.startswith("error:")]) == 1


def test_offline_pretrained_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    out = run("predict", "resnet18", str(tmp_path))
    assert out.returncode == 1
    assert "resnet18-f37072fd.pth" in out.stderr and "ZOO_WEIGHTS_PATH" in out.stderr


def test_predict_random_init_prints_each_input(tmp_path: Path) -> None:
    for i in range(2):
        Image.fromarray(np.full((50, 60, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    out = run("predict", "resnet18:none", str(tmp_path), "-k", "2", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / "0.png"), str(tmp_path / "1.png")]


@click.command("hello")
def hello() -> None:
    """Say hello (a command a test plugin adds)."""
    click.echo("hello from a plugin")


def test_plugin_commands_join_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import registry

    plugin = zoo.Plugin("extra")
    plugin.command("hello", "tests.test_cli:hello")
    plugin.command("list", "tests.test_cli:hello")  # zoo's own commands win
    reg = registry.Registry()
    reg.add_plugin(plugin)
    monkeypatch.setattr(registry, "_registry", reg)
    assert CliRunner().invoke(cli, ["hello"]).output == "hello from a plugin\n"
    assert "Say hello" in CliRunner().invoke(cli, ["--help"]).output
    assert "hello from a plugin" not in CliRunner().invoke(cli, ["list", "--json"]).output


@pytest.mark.parametrize(("flags", "expected"), [([], None), (["-b", "3"], 3)])
def test_predict_passes_batch_size_only_when_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: list[str], expected: int | None
) -> None:
    """Without -b each task keeps its own default (4 for image-to-image, 16 for detection), not the CLI's."""
    from zoo.tasks.classification import ImageClassification

    seen: list[dict[str, object]] = []
    original = ImageClassification.predict

    def spy(self: ImageClassification, inputs: object, **options: object) -> object:
        seen.append(options)
        return original(self, inputs, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageClassification, "predict", spy)
    Image.fromarray(np.full((40, 40, 3), 90, dtype=np.uint8)).save(tmp_path / "a.png")
    result = CliRunner().invoke(cli, ["predict", "resnet18:none", str(tmp_path / "a.png"), "--device", "cpu", *flags])
    assert result.exit_code == 0, result.output
    assert len(seen) == 1 and seen[0].get("batch_size") == expected
