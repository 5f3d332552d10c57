"""Predict overhead: `model.predict(batch, preprocess=False)` against the raw `module(batch)` it wraps.

A preprocessed float NCHW batch (16 x 3 x 224 x 224) through a random-init resnet18 on the CPU: zoo's
predict (forward in inference mode, softmax, top-5, result objects) against the bare forward in
`torch.inference_mode()`, interleaved. Goal: ratio <= 1.05.
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import (
    emit,
    environment,
    fail,
    interleaved,
    isolate,
    median,
    paired_ratio,
    print_table,
    ratio,
    register_torchvision,
    verdict,
)

GOAL = 1.05
BATCH = 16
ZOO = "zoo predict(preprocess=False)"
ANCHOR = "module(batch) in inference_mode"


def raw_forward(module: Any, batch: Any) -> Any:
    """The anchor: the module's forward in inference mode."""
    import torch

    with torch.inference_mode():
        return module(batch)


def check_same_top5(model: Any, batch: Any) -> None:
    """Assert that predict's top-5 classes are the raw forward's."""
    results = model.predict(batch, preprocess=False, top_k=5)
    expected = raw_forward(model.module, batch).topk(5, dim=-1).indices.tolist()
    if [list(r.indices) for r in results] != expected:
        fail("predict's top-5 differ from the raw forward's")


def main() -> None:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (median taken)")
    args = parser.parse_args()
    isolate("predict")
    import torch

    import zoo

    name, builder = register_torchvision("resnet18")
    model = zoo.load(name, device="cpu")
    batch = torch.randn(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    check_same_top5(model, batch)
    times = interleaved(
        {
            ZOO: lambda: model.predict(batch, preprocess=False),
            ANCHOR: lambda: raw_forward(model.module, batch),
        },
        args.repeat,
        warmup=3,
    )
    medians = {k: median(v) for k, v in times.items()}
    anchor = medians[ANCHOR]
    value = ratio(medians[ZOO], anchor)
    paired = paired_ratio(times, ZOO, ANCHOR)
    print_table(
        f"resnet18 (random init), batch {BATCH}x3x224x224 float, CPU (median of {args.repeat}, interleaved)",
        ["path", "median s", "images/s", "ratio"],
        [(k, v, BATCH / v, ratio(v, anchor)) for k, v in medians.items()],
    )
    print(f"\n  median of per-round ratios: {paired}")
    print(f"  goal: predict / raw forward <= {GOAL}: {value} -> {verdict(value, GOAL)}")
    emit(
        "predict",
        {
            "model": "resnet18:none",
            "builder": builder,
            "batch": BATCH,
            "median_s": {k: round(v, 5) for k, v in medians.items()},
            "ratio": value,
            "paired_ratio": paired,
            "repeat": args.repeat,
            "goal": {"goal": GOAL, "value": value, "met": value <= GOAL},
            "env": environment(),
        },
    )


if __name__ == "__main__":
    main()
