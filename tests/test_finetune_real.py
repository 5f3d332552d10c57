"""Fine-tuning the real ImageNet MobileNetV2 on real small grayscale photos (scikit-learn's digits) on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo

pytestmark = pytest.mark.assets


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """A 10-class ImageFolder of 8x8 handwritten digits upscaled to 32x32 grayscale PNGs: 600 train, 200 val."""
    datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    data = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(data.images))
    for split, indices in (("train", order[:600]), ("val", order[600:800])):
        for i in indices:
            folder = tmp_path / "digits" / split / str(data.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (data.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels, "L").resize((32, 32), Image.BILINEAR).save(folder / f"{i}.png")
    return tmp_path / "digits"


def test_mobilenet_v2_learns_digits_in_one_epoch_and_reloads(
    assets: Path, digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than 2 contended threads on a shared CI machine
    try:
        model = zoo.load("mobilenet_v2:IMAGENET1K_V1", device="cpu")
        model.finetune(digits, epochs=1, strategy="linear", image_size=64, batch_size=16, seed=0, out=tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    assert model.labels == tuple(str(d) for d in range(10))
    assert model.history[0].val_top1 > 0.5  # chance is 0.1

    val = sorted((digits / "val").rglob("*.png"))
    results = model.predict(val, top_k=1, batch_size=50)
    accuracy = np.mean([r.label == path.parent.name for r, path in zip(results, val)])
    assert accuracy > 0.5

    again = zoo.load(str(tmp_path / "run" / "best.safetensors"), device="cpu")
    assert again.labels == model.labels and again.preprocess == model.preprocess
    from zoo.images import ImageItem, decode, preprocess_batch

    batch = preprocess_batch([decode(ImageItem(p, str(p))) for p in val[:32]], model.preprocess, torch.device("cpu"))
    with torch.inference_mode():
        assert (again(batch) - model(batch)).abs().max().item() <= 1e-5
    assert [r.label for r in again.predict(val, top_k=1, batch_size=50)] == [r.label for r in results]


def test_default_recipe_learns_small_grayscale_digits_in_two_epochs(
    assets: Path, digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defaults chosen in docs/guides/fine-tuning.md, `full` at 64 px: 0.925 after two epochs on this data
    (seed 0); the previous defaults (AdamW 1e-4, label smoothing 0.1, crops and flips) reached 0.385."""
    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(assets / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = zoo.load("mobilenet_v2:IMAGENET1K_V1", device="cpu")
        model.finetune(digits, epochs=2, image_size=64, seed=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert model.history.best.val_top1 > 0.8
