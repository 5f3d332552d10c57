"""Module versions (`state_dict()._metadata`) survive the safetensors conversion and zoo's own checkpoints.

torchvision's MNASNet refuses a state_dict without them, so without this its weights would not load.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest
import torch

import zoo


@pytest.fixture
def mnasnet_file(tmp_path: Path) -> Path:
    from torchvision.models import mnasnet0_5

    torch.manual_seed(0)
    path = tmp_path / "mn-0.pth"
    torch.save(mnasnet0_5(num_classes=4).state_dict(), path)
    return path


def test_converted_pickle_keeps_module_versions(mnasnet_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import mnasnet0_5

    sha = hashlib.sha256(mnasnet_file.read_bytes()).hexdigest()
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(mnasnet_file.parent))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    zoo.register(
        "mn", task="image-classification", weights={"v1": zoo.Weights(filename=mnasnet_file.name, sha256=sha)}
    )(partial(mnasnet0_5, num_classes=4))
    model = zoo.load("mn", device="cpu")
    expected = torch.load(mnasnet_file, weights_only=True)
    assert all(torch.equal(model.module.state_dict()[k], v) for k, v in expected.items())


def test_saved_checkpoint_keeps_module_versions(tmp_path: Path) -> None:
    model = zoo.load("mnasnet0_5:none", device="cpu", num_classes=3)
    path = model.save(tmp_path / "mn.safetensors")
    again = zoo.load(str(path), device="cpu")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), again(x))
