"""The custom plugin: the tutorials' LeNet5, MLP, CIFAR-10 CNN and RNN/LSTM/GRU classifiers, and its demo weights."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

import zoo
from tests.conftest import ROOT

WEIGHTS = ROOT / "plugins" / "zoo_custom" / "weights"
SCRIPT = ROOT / "scripts" / "train_demo_models.py"
IMAGE_MODELS = ["lenet5", "mlp", "cifar_cnn"]
SEQUENCE_MODELS = ["rnn_classifier", "lstm_classifier", "gru_classifier"]


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    """scripts/train_demo_models.py as a module: its data split and generator are the tests' data."""
    spec = importlib.util.spec_from_file_location("train_demo_models", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_weights(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline: the catalog's `pkg:zoo-sdk/zoo_custom/weights/...` sources resolve inside the installed package."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    return WEIGHTS


def test_listing_the_plugin_never_imports_torch() -> None:
    code = (
        "import sys, zoo; names = zoo.list_models(plugin='custom'); spec = zoo.info('lenet5:digits');"
        "print(names, sorted(spec.weights), spec.default_weights, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    models = sorted(IMAGE_MODELS + SEQUENCE_MODELS)
    assert out == f"{models} ['digits'] None False"


def test_architectures_load_random_init_by_default() -> None:
    for name in IMAGE_MODELS + SEQUENCE_MODELS:
        assert zoo.info(name).default_weights is None, name
    assert zoo.load("lenet5", device="cpu").weights is None
    assert set(zoo.info("gru_classifier").weights) == {"waveforms"}
    assert zoo.info("cifar_cnn").labels[:2] == ("airplane", "automobile")


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_image_model_builds_and_predicts_with_none(name: str) -> None:
    model = zoo.load(f"{name}:none", device="cpu", num_classes=7)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    result = model.predict(image, top_k=3)
    assert isinstance(result, zoo.Classification) and len(result) == 3
    assert all(0 <= i < 7 for i in result.indices) and sum(result.scores) <= 1 + 1e-6
    assert model.spec.task == "image-classification" and model.spec.plugin == "custom"


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_every_sequence_model_builds_and_predicts_with_none(name: str) -> None:
    model = zoo.load(f"{name}:none", device="cpu")
    results = model.predict([np.sin(np.arange(9.0)), np.cos(np.arange(4.0))])
    assert [len(r) for r in results] == [2, 2]  # two classes by default
    assert model.spec.task == "sequence-classification"


def test_sequence_builder_arguments_reach_the_recurrent_layer() -> None:
    for cell, layer in zip(SEQUENCE_MODELS, (nn.RNN, nn.LSTM, nn.GRU)):
        kwargs = {"input_size": 5, "hidden_size": 8, "num_layers": 3, "bidirectional": True, "dropout": 0.25}
        module = zoo.load(f"{cell}:none", device="cpu", num_classes=4, **kwargs).module
        rnn = module.rnn
        assert type(rnn) is layer
        assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bidirectional, rnn.dropout) == (
            5,
            8,
            3,
            True,
            0.25,
        )
        assert module.head.in_features == 16 and module.head.out_features == 4
    relu = zoo.load("rnn_classifier:none", device="cpu", nonlinearity="relu").module.rnn
    assert relu.nonlinearity == "relu"


def test_lenet5_takes_one_or_three_channels_and_tutorial_state_dicts() -> None:
    class TutorialNet(nn.Module):  # "Training a classifier", verbatim
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    net = TutorialNet().eval()
    x = torch.randn(2, 3, 32, 32)
    for model in (zoo.load("cifar_cnn:none", device="cpu"), zoo.load("lenet5:none", device="cpu", in_channels=3)):
        model.module.load_state_dict(net.state_dict())  # strict: the same keys and shapes
        with torch.inference_mode():
            assert torch.equal(model.module(x), net(x))
        assert [r.indices for r in model.predict(x, preprocess=False)] == [
            tuple(row.argsort(descending=True)[:5].tolist()) for row in net(x).detach()
        ]
    gray = zoo.load("lenet5:none", device="cpu")
    assert gray.module.conv1.in_channels == 1 and gray.preprocess.channels == 1
    with pytest.raises(zoo.InputError, match=r"pad 28x28 images by 2"):
        gray.predict(torch.rand(1, 28, 28), preprocess=False)
    assert len(gray.predict(F.pad(torch.rand(1, 28, 28), (2, 2, 2, 2)), preprocess=False)) == 5


def test_mlp_takes_28x28_grayscale_images_and_784_features() -> None:
    model = zoo.load("mlp:none", device="cpu")
    assert [m.out_features for m in model.module.modules() if isinstance(m, nn.Linear)] == [128, 10]
    digit = np.random.default_rng(0).integers(0, 255, (56, 56), dtype=np.uint8)
    result = model.predict(digit, top_k=10)  # resized to 28x28, normalized, flattened by the model
    features = torch.rand(3, 784)
    with torch.inference_mode():
        flat = model(features)
        assert torch.equal(model(features.view(3, 1, 28, 28)), flat)
    assert [r.indices[0] for r in model.predict(features.view(3, 1, 28, 28), preprocess=False)] == flat.argmax(
        1
    ).tolist()
    assert len(result) == 10
    deep = zoo.load("mlp:none", device="cpu", in_features=20, hidden_sizes=(16, 8), num_classes=3)
    assert [m.out_features for m in deep.module.modules() if isinstance(m, nn.Linear)] == [16, 8, 3]
    with pytest.raises(zoo.InputError, match="takes 20 features"):
        deep(torch.rand(2, 21))


def test_custom_models_round_trip_through_checkpoints(tmp_path: Path, demo_weights: Path) -> None:
    signals = [np.sin(np.arange(30) / 2), np.where(np.arange(20) % 10 < 5, 1.0, -1.0)]
    gru = zoo.load("gru_classifier:waveforms", device="cpu")
    again = zoo.load(str(gru.save(tmp_path / "gru.safetensors")), device="cpu")
    assert again.labels == gru.labels and again.builder_kwargs["bidirectional"] is True
    assert [r.scores for r in again.predict(signals)] == [r.scores for r in gru.predict(signals)]
    mlp = zoo.load("mlp:none", device="cpu", hidden_sizes=(32, 16), num_classes=3)
    restored = zoo.load(str(mlp.save(tmp_path / "mlp.safetensors")), device="cpu")
    x = torch.rand(2, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(restored(x), mlp(x))
    assert restored.preprocess == mlp.preprocess


@pytest.mark.parametrize(
    ("file", "weights"),
    [("lenet5-digits.safetensors", "LENET5_DIGITS"), ("gru-waveforms.safetensors", "GRU_WAVEFORMS")],
)
def test_shipped_weights_are_tiny_and_declared_exactly(file: str, weights: str) -> None:
    import zoo_custom

    declared = getattr(zoo_custom, weights)
    data = (WEIGHTS / file).read_bytes()
    assert len(data) < 1_000_000
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (declared.sha256, declared.size)
    assert declared.url == f"pkg:zoo-sdk/zoo_custom/weights/{file}" and declared.format == "safetensors"
    assert declared.artifact.name == file


def test_lenet5_digits_reads_held_out_sklearn_digits(recipe: ModuleType, demo_weights: Path) -> None:
    pytest.importorskip("sklearn")
    *_, images, labels = recipe.digits_split()
    model = zoo.load("lenet5:digits", device="cpu")
    assert model.labels == tuple("0123456789")
    results = model.predict(list(images), top_k=1)  # 8x8 uint8 arrays, upscaled by the spec's preprocessing
    accuracy = np.mean([r.label == str(y) for r, y in zip(results, labels)])
    assert len(results) == 450 and accuracy >= 0.95  # the recipe measured 0.9778
    assert model.predict(Image.fromarray(images[0]), top_k=1).label == results[0].label


def test_gru_waveforms_reads_fresh_signals(recipe: ModuleType, demo_weights: Path) -> None:
    signals, labels = recipe.waveforms(400, seed=12345)  # a seed the recipe never trained or tested on
    model = zoo.load("gru_classifier:waveforms", device="cpu")
    results = model.predict(signals, top_k=1)  # a list of 1-D numpy signals of 16..48 steps, packed
    accuracy = np.mean([r.label == recipe.WAVEFORMS[y] for r, y in zip(results, labels)])
    assert accuracy >= 0.9  # the recipe measured 0.962 on 1000 others
    assert model.labels == ("sine", "square", "sawtooth", "triangle")
    assert model.predict(np.where(np.arange(40) % 12 < 6, 1.0, -1.0), top_k=1).label == "square"


def test_the_recipe_reproduces_the_shipped_weights_bit_for_bit(tmp_path: Path) -> None:
    """One seeded run of scripts/train_demo_models.py writes exactly the files the plugin ships."""
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr
    for file in ("lenet5-digits.safetensors", "gru-waveforms.safetensors"):
        assert (tmp_path / file).read_bytes() == (WEIGHTS / file).read_bytes(), file
    assert len([line for line in run.stdout.splitlines() if "held-out accuracy" in line]) == 2


def test_in_channels_sets_the_preprocessing_channels() -> None:
    model = zoo.load("lenet5:none", device="cpu", in_channels=3)
    assert model.preprocess is not None and model.preprocess.channels == 3
    assert len(model.predict(np.zeros((40, 40, 3), np.uint8))) == 5


def test_mlp_takes_feature_vectors_with_preprocess_false() -> None:
    model = zoo.load("mlp:none", device="cpu")
    assert len(model.predict(torch.rand(3, 784), preprocess=False)) == 3
    assert isinstance(model.predict(torch.rand(784), preprocess=False), zoo.Classification)
