"""Image files to top-5 on the CPU: zoo predict on a folder against the PyTorch tutorials' pipeline.

The anchor is the pipeline the PyTorch tutorials teach: `PIL.Image.open(path).convert("RGB")` ->
`transforms.Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(...)])` -> stack a batch ->
model under `torch.no_grad()` -> softmax -> topk. Both sides run the same mobilenet_v2 (torchvision's real
IMAGENET1K_V1 weights when `shared/assets/weights/mobilenet_v2-b0353104.pth` exists, else seeded random
weights in a file both sides read) with the same batch size over the same ~64 JPEG and PNG files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    ASSETS,
    WEIGHTS,
    emit,
    environment,
    fail,
    interleaved,
    isolate,
    median,
    paired_ratio,
    photos,
    print_table,
    ratio,
    register_torchvision,
)

NAME = "mobilenet_v2"
REAL = WEIGHTS / "mobilenet_v2-b0353104.pth"
ZOO = "zoo predict(folder)"
ANCHOR = "tutorial PIL + transforms"


def weights_file(tmp: Path) -> tuple[Path, bool]:
    """The real weights file when present, else seeded random weights written under `tmp`; and which."""
    if REAL.is_file():
        return REAL, True
    import torch
    from torchvision.models import get_model

    torch.manual_seed(0)
    path = tmp / "weights" / "mobilenet_v2-random.pth"
    path.parent.mkdir(parents=True)
    torch.save(get_model(NAME, weights=None).state_dict(), path)
    return path, False


def load_zoo(path: Path, real: bool) -> tuple[Any, str]:
    """The zoo model on the CPU for the weights at `path`, found through `ZOO_WEIGHTS_PATH`; and its name.

    Real weights load through the torchvision plugin's own catalog entry when that plugin is there.
    """
    import zoo

    os.environ["ZOO_WEIGHTS_PATH"] = str(path.parent)
    name = f"torchvision/{NAME}:IMAGENET1K_V1"
    if not (real and _spec(name) is not None):
        from torchvision.models import MobileNet_V2_Weights

        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        labels = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
        qualified, _ = register_torchvision(
            NAME, weights={"bench": zoo.Weights(filename=path.name, sha256=sha256)}, labels=labels
        )
        name = f"{qualified}:bench"
    return zoo.load(name, device="cpu"), name


def _spec(name: str) -> Any:
    import zoo

    try:
        return zoo.info(name)
    except zoo.ZooError:
        return None


def tutorial_module(path: Path) -> Any:
    """torchvision's mobilenet_v2 with the state_dict at `path`, as the tutorials load it."""
    import torch
    from torchvision.models import mobilenet_v2

    module = mobilenet_v2()
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return module.eval()


def tutorial_predict(module: Any, paths: Sequence[Path], batch_size: int) -> list[list[int]]:
    """The tutorials' pipeline: PIL decode, transforms v1, batched forward, softmax, top-5 indices."""
    import torch
    from PIL import Image
    from torchvision import transforms

    preprocess = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    out = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]])
        with torch.no_grad():
            probabilities = torch.nn.functional.softmax(module(batch), dim=1)
        out.extend(torch.topk(probabilities, 5).indices.tolist())
    return out


def check_reference(results: Sequence[Any], files: Sequence[Path]) -> dict[str, Any]:
    """With the real weights, compare zoo's results with the shared reference (torchvision's own pipeline).

    Fails when a top-1 class differs; reports how many top-5 lists are equal and the largest top-1 score gap.
    """
    reference_file = ASSETS / "reference" / "mobilenet_v2.json"
    if not reference_file.is_file():
        return {}
    reference = json.loads(reference_file.read_text())["images"]
    checked = same_top5 = 0
    gap = 0.0
    for result, path in zip(results, files):
        expected = reference.get(path.name.split("-", 1)[1])
        if expected is None:
            continue
        if result.indices[0] != expected[0]["index"]:
            fail(f"{path.name}: zoo's top-1 {result.labels[0]!r} is not the reference's {expected[0]['label']!r}")
        checked += 1
        same_top5 += list(result.indices) == [e["index"] for e in expected]
        gap = max(gap, abs(result.scores[0] - expected[0]["score"]))
    return {"files": checked, "top1_equal": checked, "top5_equal": same_top5, "max_top1_score_gap": round(gap, 5)}


def main() -> None:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="files in the folder")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward, both sides")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (median taken)")
    args = parser.parse_args()
    tmp = isolate("images")
    folder = tmp / "photos"
    files = photos(folder, args.images)
    path, real = weights_file(tmp)
    model, name = load_zoo(path, real)
    module = tutorial_module(path)
    bs = args.batch_size

    zoo_results = model.predict(str(folder), top_k=5, batch_size=bs)
    tutorial_results = tutorial_predict(module, files, bs)
    reference = check_reference(zoo_results, files) if real else {}
    agree = sum(r.indices[0] == t[0] for r, t in zip(zoo_results, tutorial_results))

    times = interleaved(
        {
            ZOO: lambda: model.predict(str(folder), top_k=5, batch_size=bs),
            ANCHOR: lambda: tutorial_predict(module, files, bs),
        },
        args.repeat,
        warmup=0,  # the correctness passes above warmed both sides
    )
    medians = {k: median(v) for k, v in times.items()}
    rate = {k: len(files) / v for k, v in medians.items()}
    speedup = ratio(rate[ZOO], rate[ANCHOR])
    paired = round(1 / paired_ratio(times, ZOO, ANCHOR), 3)
    kinds = sorted({p.suffix.lower() for p in files})
    weights = "real IMAGENET1K_V1" if real else "seeded random"
    print_table(
        f"{NAME} ({weights} weights), {len(files)} files ({', '.join(kinds)}) -> top-5, CPU, batch {bs} "
        f"(median of {args.repeat}, interleaved)",
        ["pipeline", "median s", "images/s", "speed vs tutorial"],
        [(k, medians[k], rate[k], ratio(rate[k], rate[ANCHOR])) for k in medians],
    )
    print(f"\n  median of per-round speed ratios: {paired}")
    print(f"  zoo model: {name}, preprocess resize {model.preprocess.resize} crop {model.preprocess.crop}")
    print(f"  top-1 agreement zoo vs tutorial: {agree}/{len(files)}")
    if reference:
        print(
            f"  vs shared reference: top-1 equal {reference['top1_equal']}/{reference['files']}, top-5 equal "
            f"{reference['top5_equal']}/{reference['files']}, max top-1 score gap {reference['max_top1_score_gap']}"
        )
    emit(
        "images",
        {
            "model": NAME,
            "weights": weights,
            "zoo_name": name,
            "files": len(files),
            "batch_size": bs,
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "images_per_s": {k: round(v, 2) for k, v in rate.items()},
            "speedup_vs_tutorial": speedup,
            "paired_speedup": paired,
            "top1_agreement": agree,
            "reference": reference,
            "repeat": args.repeat,
            "env": environment(),
        },
    )


if __name__ == "__main__":
    main()
