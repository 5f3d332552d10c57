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
    return 0


if __name__ == "__main__":
    sys.exit(main())
