"""The real ultralytics/yolov5 hub code (v7.0 through zoo's hub backend, master end to end) under the sandbox,
served from a local mirror: it loads, installs nothing (its check_requirements tries pip through a shell) and gives
the reference detections.

Its code imports packages zoo does not depend on (v7.0: IPython, seaborn, pkg_resources from setuptools<81;
master: seaborn): the tests skip naming the missing ones.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

import zoo
from tests.test_hub_sandbox import fake_bin  # noqa: F401 - fixture
from tests.test_yolov5 import _assert_matches, _reference

V70 = "915bbf294bb74c859f0b41f1c23bc395014ea679"
MASTER = "5081342f04fb287fc2e5f2b5a4e06752b7937b1c"
WEIGHTS = "/ultralytics/yolov5/releases/download/v7.0/yolov5n.pt"


def _needs(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the real ultralytics/yolov5 code imports {', '.join(missing)}, not installed here")


def _installer_calls(calls: Path) -> list[str]:
    """Calls the fake executables recorded from pip, python or uv (git, for `git tag`, may be called)."""
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [line for line in lines if line.split()[0] in {"pip", "pip3", "python", "python3", "uv"}]


@pytest.fixture
def mirror(assets: Path, file_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """GitHub through a local mirror: the v7.0 and master archives and the v7.0 yolov5n.pt release asset."""
    hub = assets / "hub"
    for ref, name in (("v7.0", "ultralytics-yolov5-v7.0.tar.gz"), ("master", "ultralytics-yolov5-master.tar.gz")):
        if not (hub / name).is_file():
            pytest.skip(f"{name} is not in ../shared/assets")
        target = file_server.root / "ultralytics/yolov5/archive" / f"{ref}.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(hub / name, target)
    (file_server.root / WEIGHTS.lstrip("/")).parent.mkdir(parents=True)
    shutil.copy(assets / "weights" / "yolov5n.pt", file_server.root / WEIGHTS.lstrip("/"))
    monkeypatch.setenv("ZOO_MIRRORS", f"https://github.com={file_server.url}")
    monkeypatch.setenv("ZOO_RETRIES", "1")
    monkeypatch.chdir(tmp_path)  # yolov5 writes downloads into the working folder
    return file_server


@pytest.mark.assets
def test_v7_through_the_hub_backend_installs_nothing_and_matches(
    mirror,
    fake_bin: Path,  # noqa: F811
    assets: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _needs("IPython", "seaborn", "pkg_resources")
    monkeypatch.setenv("ZOO_TRUST", f"ultralytics/yolov5@{V70}")
    model = zoo.load("yolov5n", backend="hub", device="cpu")
    assert type(model.module).__module__ == "models.yolo"  # ultralytics/yolov5's own class
    reference = _reference(assets)
    for name in ("bus.jpg", "zidane.jpg"):
        _assert_matches(model.predict(assets / "images" / name), reference[name])
    assert _installer_calls(fake_bin) == []  # its check_requirements ran no pip, no python -m pip
    assert sorted(set(mirror.paths())) == ["/ultralytics/yolov5/archive/v7.0.tar.gz", WEIGHTS]


@pytest.mark.assets
def test_master_end_to_end_offline(mirror, fake_bin: Path, assets: Path, monkeypatch) -> None:  # noqa: F811
    _needs("seaborn", "IPython")
    import torch

    monkeypatch.setenv("ZOO_TRUST", f"ultralytics/yolov5@{MASTER}")
    zoo.fetch("yolov5n")  # the catalog's copy of the weights: hub code is served the same cached file
    from zoo.store import repo_snapshot

    repo_snapshot("ultralytics", "yolov5", "master")
    requests = len(mirror.requests)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    model = zoo.load("hub:ultralytics/yolov5/yolov5n", device="cpu")  # no ref: main (absent), then master
    assert len(mirror.requests) == requests  # nothing more was asked: the cached archive and weights served it
    reference = _reference(assets)
    with torch.inference_mode():
        results = model.module([str(assets / "images" / "bus.jpg")], size=640)
    boxes = results.xyxy[0].numpy()
    expected = reference["bus.jpg"]
    assert [results.names[int(c)] for c in boxes[:, 5]] == [e["label"] for e in expected]
    np.testing.assert_allclose(boxes[:, :4], [e["xyxy"] for e in expected], atol=2.0)
    np.testing.assert_allclose(boxes[:, 4], [e["score"] for e in expected], atol=0.01)
    assert _installer_calls(fake_bin) == []
