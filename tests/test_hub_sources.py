"""Real hub code against the zoo store: pytorch/vision's own hubconf through a mirror, sharing the catalog's cached
file (one GET per file, offline afterwards), `check_hash=True` honoured before anything is cached, and no patch
left behind in torch or torchvision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import zoo

WEIGHTS = "mobilenet_v2-b0353104.pth"
ARCHIVE = "/pytorch/vision/archive/main.tar.gz"


@pytest.fixture
def vision(assets: Path, file_server, monkeypatch: pytest.MonkeyPatch):
    """pytorch/vision's real hubconf and the real MobileNetV2 weights behind a mirror; pytorch/vision trusted."""
    archive = assets / "hub" / "pytorch-vision-hubconf.tar.gz"
    if not archive.is_file():
        pytest.skip("pytorch-vision-hubconf.tar.gz is not in ../shared/assets")
    (file_server.root / "pytorch/vision/archive").mkdir(parents=True)
    shutil.copy(archive, file_server.root / ARCHIVE.lstrip("/"))
    (file_server.root / "models").mkdir()
    shutil.copy(assets / "weights" / WEIGHTS, file_server.root / "models" / WEIGHTS)
    mirrors = f"https://download.pytorch.org={file_server.url},https://github.com={file_server.url}"
    monkeypatch.setenv("ZOO_MIRRORS", mirrors)
    monkeypatch.setenv("ZOO_TRUST", "pytorch/vision")
    monkeypatch.setenv("ZOO_RETRIES", "1")  # upstream is tried after a bad mirror, and fails at once here
    return file_server


def _originals() -> tuple[object, ...]:
    import torch.hub
    import torch.utils.model_zoo
    import torchvision.models._api

    return (
        torch.hub.load_state_dict_from_url,
        torch.hub.download_url_to_file,
        torch.utils.model_zoo.load_url,
        torchvision.models._api.load_state_dict_from_url,
    )


@pytest.mark.assets
def test_catalog_then_hub_code_share_one_download_and_work_offline(vision, monkeypatch) -> None:
    before = _originals()
    catalog = zoo.load("mobilenet_v2", device="cpu")
    assert vision.paths() == [f"/models/{WEIGHTS}"]
    hub = zoo.load("hub:pytorch/vision/mobilenet_v2", weights="IMAGENET1K_V1", device="cpu")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    again = zoo.load("hub:pytorch/vision/mobilenet_v2", weights="IMAGENET1K_V1", device="cpu")
    assert sorted(vision.paths()) == sorted([f"/models/{WEIGHTS}", ARCHIVE])  # one GET per file
    expected = catalog.module.state_dict()
    for model in (hub, again):
        got = model.module.state_dict()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert _originals() == before  # nothing stays bound to zoo's replacement, in torch or torchvision


@pytest.mark.assets
def test_hub_code_first_then_catalog_offline(vision, monkeypatch) -> None:
    hub = zoo.load("hub:pytorch/vision/mobilenet_v2", weights="IMAGENET1K_V1", device="cpu")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    catalog = zoo.load("mobilenet_v2", device="cpu")
    assert sorted(vision.paths()) == sorted([f"/models/{WEIGHTS}", ARCHIVE])
    image = torch.rand(1, 3, 224, 224)
    hub.module.eval()
    with torch.inference_mode():
        assert torch.allclose(hub.module(image), catalog.module(image), atol=1e-5)


@pytest.mark.assets
def test_check_hash_refuses_a_tampered_mirror_before_caching_anything(vision) -> None:
    vision.corrupt.add(f"/models/{WEIGHTS}")
    before = _originals()
    with pytest.raises(zoo.ZooError, match="expected b0353104") as info:
        zoo.load("hub:pytorch/vision/mobilenet_v2", weights="IMAGENET1K_V1", device="cpu")
    assert "\n" not in str(info.value)
    root = zoo.settings.cache_root()
    pins = json.loads((root / "pins.json").read_text()) if (root / "pins.json").exists() else {}
    assert WEIGHTS not in pins
    assert not (root / "weights" / WEIGHTS).exists() and not (root / "weights" / f"{WEIGHTS}.record.json").exists()
    assert _originals() == before  # restored after the error too
    vision.corrupt.clear()  # the good file is still accepted afterwards
    model = zoo.load("hub:pytorch/vision/mobilenet_v2", weights="IMAGENET1K_V1", device="cpu")
    assert model.module.classifier[1].out_features == 1000


def test_check_hash_and_hash_prefix_in_hub_code(tmp_path: Path, file_server, monkeypatch) -> None:
    """Tiny files: `check_hash` reads the prefix from the name; `download_url_to_file` checks before installing."""
    import hashlib

    from tests.test_hub import write_repo

    torch.save({"w": torch.ones(2)}, file_server.root / "w.pth")
    digest = hashlib.sha256((file_server.root / "w.pth").read_bytes()).hexdigest()
    good, bad = f"w-{digest[:8]}.pth", "w-00000000.pth"
    for name in (good, bad):
        shutil.copy(file_server.root / "w.pth", file_server.root / name)
    repo = write_repo(
        tmp_path / "repo",
        {
            "hubconf.py": """
            import torch

            def load(file, prefix=None, dst=None):
                '''Weights checked like torch.hub checks them.'''
                m = torch.nn.Linear(2, 1)
                if dst is None:
                    m.state = torch.hub.load_state_dict_from_url("https://w.invalid/" + file, check_hash=True)
                else:
                    torch.hub.download_url_to_file("https://w.invalid/" + file, dst, hash_prefix=prefix)
                return m
            """
        },
    )  # fmt: skip
    monkeypatch.setenv("ZOO_MIRRORS", f"https://w.invalid={file_server.url}")
    monkeypatch.setenv("ZOO_RETRIES", "1")
    assert torch.equal(zoo.load(f"hub:{repo}/load", trust=True, file=good).module.state["w"], torch.ones(2))
    with pytest.raises(zoo.ZooError, match="expected 00000000"):
        zoo.load(f"hub:{repo}/load", trust=True, file=bad)
    weights = zoo.settings.cache_root() / "weights"
    assert not (weights / bad).exists() and not (weights / f"{bad}.record.json").exists()
    dst = tmp_path / "copy.pth"
    with pytest.raises(zoo.ZooError, match="expected 12345678"):
        zoo.load(f"hub:{repo}/load", trust=True, file="w.pth", prefix="12345678", dst=str(dst))
    assert not dst.exists() and not (weights / "w.pth").exists()
    assert "w.pth" not in json.loads((zoo.settings.cache_root() / "pins.json").read_text())  # nothing pinned
    zoo.load(f"hub:{repo}/load", trust=True, file="w.pth", prefix=digest[:10], dst=str(dst))
    assert dst.read_bytes() == (file_server.root / "w.pth").read_bytes()


def test_a_library_first_imported_by_hub_code_keeps_the_originals(tmp_path: Path) -> None:
    """torchvision binds `load_state_dict_from_url` at import: imported during the hub call, it must not keep zoo's."""
    import subprocess
    import sys

    from tests.test_hub import write_repo

    repo = write_repo(tmp_path / "repo", {"hubconf.py": "def net():\n    import torchvision.models\n    return None\n"})
    script = f"""
import sys, torch, torch.hub, zoo
from zoo_hub import load_entry
assert "torchvision" not in sys.modules
load_entry({str(repo) + "/net"!r}, trust=True)
import torchvision.models._api as api, torchvision._internally_replaced_utils as utils
assert "torchvision" in sys.modules
for fn in (api.load_state_dict_from_url, utils.load_state_dict_from_url, torch.hub.load_state_dict_from_url):
    assert fn.__module__ == "torch.hub", fn
print("originals")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "originals", out.stderr[-2000:]
