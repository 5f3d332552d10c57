"""torchvision's real MobileNetV2 weights through zoo give torchvision's own answers (../shared/assets)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

WEIGHTS = "mobilenet_v2-b0353104.pth"


def _check_against_reference(model: zoo.Model, assets: Path) -> None:
    reference = json.loads((assets / "reference" / "mobilenet_v2.json").read_text())["images"]
    paths = [assets / "images" / name for name in sorted(reference)]
    for path, result in zip(paths, model.predict(paths, top_k=5)):
        expected = reference[path.name]
        assert list(result.labels) == [e["label"] for e in expected], path.name
        assert list(result.indices) == [e["index"] for e in expected], path.name
        assert result.scores == pytest.approx([e["score"] for e in expected], abs=1e-3), path.name


def test_through_a_mirror_of_download_pytorch_org(assets: Path, file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    (file_server.root / "models").mkdir()
    shutil.copy(assets / "weights" / WEIGHTS, file_server.root / "models" / WEIGHTS)
    monkeypatch.setenv("ZOO_MIRRORS", f"https://download.pytorch.org={file_server.url}")
    model = zoo.load("mobilenet_v2", device="cpu")
    assert file_server.paths() == [f"/models/{WEIGHTS}"]
    _check_against_reference(model, assets)
    chelsea = model.predict(assets / "images" / "chelsea.png")
    assert chelsea.label == "Egyptian cat"
    # warm: a second load is served by the cache, with no request
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    again = zoo.load("mobilenet_v2:imagenet1k_v1", device="cpu")
    assert again.predict(assets / "images" / "coffee.png").label == "espresso"
    assert file_server.paths() == [f"/models/{WEIGHTS}"]
    kept = zoo.settings.cache_root() / "weights" / WEIGHTS  # the original stays next to its conversion
    assert kept.read_bytes() == (assets / "weights" / WEIGHTS).read_bytes()


def test_through_zoo_weights_path(assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    _check_against_reference(zoo.load("mobilenet_v2", device="cpu"), assets)


def test_cli_predict_json(assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    images = assets / "images"
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "predict", "mobilenet_v2", str(images / "chelsea.png"),
         str(images / "coffee.png"), "--top-k", "3", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)["results"]
    assert [d["top"][0]["label"] for d in data] == ["Egyptian cat", "espresso"]
    assert all(len(d["top"]) == 3 for d in data)
