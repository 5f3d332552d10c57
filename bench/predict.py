"""Predict overhead: `model.predict(batch, preprocess=False)` against the raw `module(batch)` it wraps.

A preprocessed float NCHW batch (16 x 3 x 224 x 224) through a random-init resnet18 on the CPU: zoo's
predict (forward in inference mode, softmax, top-5, result objects) against the bare forward in
`torch.inference_mode()`, interleaved. Goal: ratio <= 1.05.

The forward dominates both sides, so on a busy machine that ratio is mostly noise; the script therefore
also measures zoo's fixed cost per call directly, as the time difference on a tiny linear model whose
forward costs microseconds.
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
CALLS = 200


def tiny_overhead(repeat: int) -> dict[str, float]:
    """zoo's fixed cost per predict call (µs): predict minus the raw forward on a microsecond-scale model.

    Runs on one thread: on a busy machine, multi-threaded tiny ops wait on each other for milliseconds,
    which would hide the Python overhead this is about.
    """
    import torch

    import zoo

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    @zoo.register("bench-tiny", task="image-classification")
    def tiny() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1000))

    model = zoo.load("user/bench-tiny", device="cpu")
    batch = torch.randn(BATCH, 3, 8, 8)

    def calls(fn: Any) -> Any:
        return lambda: [fn() for _ in range(CALLS)]

    try:
        times = interleaved(
            {
                "predict": calls(lambda: model.predict(batch, preprocess=False)),
                "forward": calls(lambda: raw_forward(model.module, batch)),
            },
            repeat,
            warmup=1,
        )
    finally:
        torch.set_num_threads(threads)
    predict_us, forward_us = (median(times[k]) / CALLS * 1e6 for k in ("predict", "forward"))
    return {
        "predict_us": round(predict_us, 1),
        "forward_us": round(forward_us, 1),
        "overhead_us": round(predict_us - forward_us, 1),
    }


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
    tiny = tiny_overhead(9)
    print(f"\n  median of per-round ratios: {paired}")
    print(
        f"  zoo's fixed cost per predict call (tiny linear model, batch {BATCH}, 1 thread): {tiny['overhead_us']} µs "
        f"({tiny['predict_us']} µs predict vs {tiny['forward_us']} µs forward), "
        f"{tiny['overhead_us'] / 1e4 / anchor:.3f}% of one resnet18 forward here"
    )
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
            "fixed_cost": tiny,
            "repeat": args.repeat,
            "goal": {"goal": GOAL, "value": value, "met": value <= GOAL},
            "env": environment(),
        },
    )


if __name__ == "__main__":
    main()
