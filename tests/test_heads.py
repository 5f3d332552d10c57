"""Head surgery: every torchvision classifier gets a new head, and `zoo.load(name, num_classes=N)` keeps the trunk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import zoo
from tests.conftest import ROOT, tiny_cnn
from zoo.train.heads import find_head, head_parameters, replace_head

CATALOG = {  # the image classifiers (the catalog also holds detectors, segmenters, video and flow models)
    name: entry
    for name, entry in json.loads((ROOT / "plugins" / "zoo_torchvision" / "catalog.json").read_text())["models"].items()
    if entry.get("task", "image-classification") == "image-classification"
    and not name.startswith("quantized_")  # int8 modules: no meta-device build, no head swap
}
#: The head each family must get, where the torchvision plugin declares it (`ModelSpec.head`), written out.
EXPECTED_HEAD = {
    "alexnet": "classifier.6",
    "convnext": "classifier.2",
    "densenet": "classifier",
    "efficientnet": "classifier.1",
    "googlenet": "fc",
    "inception": "fc",
    "maxvit": "classifier.5",
    "mnasnet": "classifier.1",
    "mobilenetv2": "classifier.1",
    "mobilenetv3": "classifier.3",
    "regnet": "fc",
    "resnet": "fc",
    "shufflenetv2": "fc",
    "squeezenet": "classifier.1",
    "swin_transformer": "head",
    "vgg": "classifier.6",
    "vision_transformer": "heads.head",
}


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: One model per family also runs a forward pass (on the meta device: shapes only, no compute).
FORWARD = {min(n for n in CATALOG if CATALOG[n]["family"] == family) for family in EXPECTED_HEAD}


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_torchvision_classifier_gets_a_new_head(name: str, one_thread: None) -> None:
    from zoo_torchvision._build import build

    entry = CATALOG[name]
    tag = entry["tags"][entry["default"]]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in tag["builder_kwargs"].items()}
    with torch.device("meta"):
        module = build(name, **kwargs)
        rebuilt = build(name, **{**kwargs, "num_classes": 7})
    head = zoo.info(name).head  # declared by the torchvision plugin
    before = find_head(module, head)
    assert before.path == EXPECTED_HEAD[entry["family"]]
    assert before.out_features == 1000

    after = replace_head(module, 7, head=head)
    assert after.path == before.path and after.in_features == before.in_features and after.out_features == 7
    # what zoo.load(checkpoint) rebuilds with num_classes=7 has exactly these keys and shapes
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if name in FORWARD:
        size = tag["preprocess"]["crop"]
        out = module.to("meta").eval()(torch.empty(2, 3, size, size, device="meta"))
        assert tuple(out.shape) == (2, 7)


def test_fallback_is_the_last_linear_and_squeezenet_conv_heads_work() -> None:
    module = tiny_cnn(3)
    assert find_head(module).path == "5"
    replace_head(module, 4)
    assert module(torch.rand(2, 3, 8, 8)).shape == (2, 4)
    names = [name for name, _ in head_parameters(module)]
    assert names == ["5.weight", "5.bias"]

    from torchvision.models import squeezenet1_1

    net = squeezenet1_1(num_classes=1000)
    replace_head(net, 5)
    assert net.num_classes == 5 and net.classifier[1].out_channels == 5
    assert net.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 5)


def test_replacement_is_seeded_and_a_headless_module_is_a_clear_error() -> None:
    a, b = tiny_cnn(3), tiny_cnn(3)
    torch.manual_seed(123)
    replace_head(a, 6, seed=4)
    torch.manual_seed(456)
    replace_head(b, 6, seed=4)
    assert torch.equal(a[5].weight, b[5].weight)
    with pytest.raises(zoo.UnsupportedError, match="Cannot find the classification head"):
        find_head(nn.Sequential(nn.Conv2d(3, 3, 3), nn.ReLU()))


@pytest.fixture
def tiny_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """`tiny` registered with 3-class pretrained weights found through ZOO_WEIGHTS_PATH."""
    torch.manual_seed(0)
    state = tiny_cnn(3).state_dict()
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(state, folder / "tiny-1234.pth")
    digest = hashlib.sha256((folder / "tiny-1234.pth").read_bytes()).hexdigest()
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(folder))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    zoo.register(
        "tiny",
        task="image-classification",
        labels=["ant", "bee", "cat"],
        weights={"v1": zoo.Weights(url="https://weights.invalid/tiny-1234.pth", sha256=digest)},
        preprocess=zoo.ImagePreprocess(resize=36, crop=32),
    )(lambda num_classes=3: tiny_cnn(num_classes))
    return state


def test_load_with_num_classes_keeps_the_pretrained_trunk(tiny_weights: dict[str, torch.Tensor]) -> None:
    model = zoo.load("tiny", device="cpu", num_classes=5)
    got = model.module.state_dict()
    for key, value in tiny_weights.items():
        if not key.startswith("5."):
            assert torch.equal(got[key], value), key
    assert got["5.weight"].shape == (5, 4)
    assert model.builder_kwargs["num_classes"] == 5
    assert model.labels is None and model.weights == "v1"
    assert len(model.predict(torch.rand(3, 32, 32))) == 5


def test_load_with_labels_names_the_new_classes(tiny_weights: dict[str, torch.Tensor]) -> None:
    model = zoo.load("tiny", device="cpu", labels=["x", "y"])
    assert model.labels == ("x", "y") and model.builder_kwargs["num_classes"] == 2
    assert set(model.predict(torch.rand(3, 32, 32)).labels) == {"x", "y"}
    same = zoo.load("tiny", device="cpu", num_classes=3)
    assert torch.equal(same.module.state_dict()["5.weight"], tiny_weights["5.weight"])  # same count: head kept
    assert zoo.load("tiny:none", device="cpu", labels=["a", "b", "c", "d"]).module[5].out_features == 4
    with pytest.raises(zoo.InputError, match="labels= names 2 classes but num_classes=3"):
        zoo.load("tiny", device="cpu", labels=["x", "y"], num_classes=3)
