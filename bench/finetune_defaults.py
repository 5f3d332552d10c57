"""Fine-tuning accuracy at equal epochs: zoo's default recipe against the tutorials' plain recipes.

A small grayscale task like the one issue 12 reports: scikit-learn's 8x8 digits upscaled to 28x28 grayscale PNGs,
saved as an ImageFolder (600 train / 300 val, 10 classes). The model is the real ImageNet MobileNetV2 from
`../shared/assets/weights` (skipped when absent). Recipes, each at 1 and 2 epochs, over several seeds:

- `zoo default`: `model.finetune(train, val, epochs=E, seed=S)` and nothing else;
- `SGD 1e-3`: the transfer-learning tutorial's loop: SGD lr 0.001 momentum 0.9, cross-entropy, constant lr;
- `AdamW 1e-4`: the same loop with AdamW lr 1e-4.

The plain loops use the model's predict preprocessing (resize 256, center crop 224, ImageNet normalisation, gray
to RGB) for training and validation, and the same batch size as zoo's default (32). Accuracy is validation top-1.
`--try '{"lr": 1e-3}'` adds another zoo recipe (repeatable); `--recipes` picks the baseline rows; `--size` sets every
recipe's input size (zoo through `image_size`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import WEIGHTS, emit, environment, isolate, print_table

CLASSES = 10
TUTORIALS = {"SGD 1e-3": ("sgd", 1e-3), "AdamW 1e-4": ("adamw", 1e-4)}


def digits_folder(root: Path, side: int = 28, train: int = 600, val: int = 300) -> Path:
    """scikit-learn's digits as `root/{train,val}/<digit>/<i>.png`, `side`x`side` grayscale."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.images))
    for split, indices in (("train", order[:train]), ("val", order[train : train + val])):
        for i in indices:
            folder = root / split / str(data.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (data.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels, "L").resize((side, side), Image.BILINEAR).save(folder / f"{i}.png")
    return root


def zoo_run(data: Path, epochs: int, seed: int, options: dict[str, Any]) -> float:
    """Validation top-1 of zoo's finetune (the model ends with its best epoch's weights)."""
    import zoo

    model = zoo.load("mobilenet_v2:IMAGENET1K_V1", device="cpu")
    options = {"progress": False, **options}
    model.finetune(data / "train", data / "val", epochs=epochs, seed=seed, **options)
    history = model.history
    assert history is not None
    assert history.best is not None
    return float(history.best.val_top1 or 0.0)


def tutorial_run(
    data: Path, epochs: int, seed: int, optimizer: str, lr: float, batch_size: int, size: int
) -> list[float]:
    """Validation top-1 after each epoch of the tutorial loop (constant lr: epoch k of a longer run = a k-epoch run)."""
    import torch
    from torchvision import datasets, models, transforms

    torch.manual_seed(seed)
    transform = transforms.Compose(
        [
            transforms.Grayscale(3),
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    train = datasets.ImageFolder(str(data / "train"), transform)
    val = datasets.ImageFolder(str(data / "val"), transform)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
    val_loader = torch.utils.data.DataLoader(val, batch_size=100)
    model = models.mobilenet_v2()
    model.load_state_dict(torch.load(WEIGHTS / "mobilenet_v2-b0353104.pth", weights_only=True))
    model.classifier[1] = torch.nn.Linear(model.last_channel, CLASSES)
    if optimizer == "sgd":
        opt: Any = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
    criterion = torch.nn.CrossEntropyLoss()
    scores = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            criterion(model(x), y).backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for x, y in val_loader:
                correct += int((model(x).argmax(1) == y).sum())
        scores.append(correct / len(val))
    return scores


def main() -> None:
    """Run every recipe for every seed; print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--recipes", nargs="+", default=["zoo default", *TUTORIALS])
    parser.add_argument(
        "--try", dest="candidates", type=json.loads, action="append", default=[], help="another zoo recipe (JSON)"
    )
    parser.add_argument("--size", type=int, default=64, help="input size of every recipe (zoo: image_size)")
    parser.add_argument("--batch-size", type=int, default=32, help="the tutorial loops' batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, help="an ImageFolder with train/ and val/ instead of the digits")
    args = parser.parse_args()
    if not (WEIGHTS / "mobilenet_v2-b0353104.pth").is_file():
        reason = f"{WEIGHTS} holds no mobilenet_v2 weights: skipped"
        print(reason)
        emit("finetune_defaults", {"skipped": True, "reason": reason})
        return
    tmp = isolate("finetune-defaults")
    os.environ["ZOO_WEIGHTS_PATH"] = str(WEIGHTS)
    import torch

    torch.set_num_threads(args.threads)
    data = args.data or digits_folder(tmp / "digits")
    zoo_recipes = {"zoo default": {}} | {json.dumps(c): c for c in args.candidates}
    recipes = [*args.recipes, *(r for r in zoo_recipes if r != "zoo default")]
    scores: dict[str, dict[int, list[float]]] = {r: {e: [] for e in args.epochs} for r in recipes}
    size = {"image_size": args.size}
    start = time.perf_counter()
    for seed in args.seeds:
        for recipe in recipes:
            if recipe in TUTORIALS:
                per_epoch = tutorial_run(data, max(args.epochs), seed, *TUTORIALS[recipe], args.batch_size, args.size)
                for e in args.epochs:
                    scores[recipe][e].append(per_epoch[e - 1])
            else:
                for e in args.epochs:
                    scores[recipe][e].append(zoo_run(data, e, seed, size | zoo_recipes[recipe]))
            print(f"seed {seed} {recipe}: {[scores[recipe][e][-1] for e in args.epochs]}", file=sys.stderr)
    rows = []
    for recipe in recipes:
        cells = [recipe]
        for e in args.epochs:
            values = scores[recipe][e]
            cells.append(f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        rows.append(tuple(cells))
    title = f"val top-1, mean (min-max) over seeds {args.seeds}, {args.size}px input"
    print_table(title, ["recipe", *(f"{e} epoch(s)" for e in args.epochs)], rows)
    emit(
        "finetune_defaults",
        {
            "scores": scores,
            "size": args.size,
            "seconds": round(time.perf_counter() - start, 1),
            **environment(),
        },
    )


if __name__ == "__main__":
    main()
