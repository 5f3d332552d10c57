"""`make demo`: what zoo does, on models that work offline. Prints each step and what it showed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT.parent / "shared" / "assets"


def step(title: str) -> None:
    print(f"\n== {title}")


def main() -> int:
    os.environ.setdefault("ZOO_OFFLINE", "1")  # the demo never touches the network
    import zoo

    step("Plugins and catalog (no torch imported yet)")
    for plugin in zoo.plugins():
        print(f"  plugin {plugin.name}: {plugin.status}, {plugin.models} models {plugin.reason}".rstrip())
    names = zoo.list_models()
    print(f"  {len(names)} models, e.g. {', '.join(names[:6])} ...")
    print(f"  torch imported: {'torch' in sys.modules}")

    spec = zoo.info("resnet50")
    tags = ", ".join(spec.weights)
    print(f"  resnet50: {spec.description}; weights tags: {tags}; default {spec.default_weights}")

    step("Pretrained weights offline")
    try:
        zoo.load("resnet18")
        print("  resnet18 loaded from the cache")
    except zoo.ZooError as exc:
        print(f"  resnet18: {exc}")

    images = sorted((ASSETS / "images").glob("*")) if ASSETS.is_dir() else []
    weights = ASSETS / "weights"
    if (weights / "mobilenet_v2-b0353104.pth").is_file():
        step("mobilenet_v2 with torchvision's real weights, found through ZOO_WEIGHTS_PATH")
        os.environ["ZOO_WEIGHTS_PATH"] = str(weights)
        start = time.perf_counter()
        model = zoo.load("mobilenet_v2")
        print(f"  {model} loaded in {time.perf_counter() - start:.2f} s")
        for result in model.predict(images, top_k=3):
            top = ", ".join(f"{label} {score:.2f}" for label, score in zip(result.labels, result.scores))
            print(f"  {Path(result.source).name:18s} {top}")
    else:
        step("The same pipeline with random weights (no real weights on this machine)")
        import numpy as np

        model = zoo.load("resnet18:none")
        image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        print(f"  {model}: {model.predict(image, top_k=3)} (random weights: labels are meaningless)")
    shipped_weights(zoo)
    return 0


def shipped_weights(zoo) -> None:
    """The demo weights that ship inside zoo: real predictions with no network and no cache."""
    import numpy as np

    step("Weights shipped inside the package: lenet5:digits and gru_classifier:waveforms")
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = list((digits.images[-8:] * 255 / 16).astype(np.uint8))  # 8x8 digits, bright ink on black
        read = [r.label for r in zoo.load("lenet5:digits").predict(images, top_k=1)]
        print(f"  scikit-learn digits {''.join(map(str, digits.target[-8:]))} read as {''.join(read)}")
    except ImportError:
        print("  (scikit-learn is not installed: skipping the digits)")
    steps = np.arange(40)
    waves = {"sine": np.sin(2 * np.pi * steps / 10), "square": np.where(steps % 12 < 6, 1.0, -1.0)}
    waves["sawtooth"] = (steps[:25] % 9) / 4.5 - 1  # shorter: a list of any lengths is packed, not padded
    results = zoo.load("gru_classifier:waveforms").predict(list(waves.values()), top_k=1)
    for (name, wave), result in zip(waves.items(), results):
        print(f"  a {name} wave of {len(wave)} steps: {result.label} ({result.score:.2f})")


if __name__ == "__main__":
    sys.exit(main())
