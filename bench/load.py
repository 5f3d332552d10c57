"""Warm load: `zoo.load` from zoo's cache against `torchvision.models.get_model(weights=...)` from torch's cache.

Both sides read the same bytes: a seeded random-init state_dict saved with `torch.save` as torch's own
cache file (`$TORCH_HOME/hub/checkpoints/resnet50-11ad3fa6.pth`; torchvision does not re-hash a cached
file). zoo finds that file through `ZOO_WEIGHTS_PATH` under an in-script spec whose `Weights` carry the
file's real sha256 (the catalog's hash prefix would rightly refuse these random bytes), converts it to
safetensors once (the excluded first load), and from then on loads warm. Both sides end in an eval-mode
CPU module; the script asserts that the two give identical outputs.
Goal: resnet50 ratio <= 0.35.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from _common import (
    emit,
    environment,
    fail,
    interleaved,
    isolate,
    median,
    print_table,
    ratio,
    register_torchvision,
    verdict,
)

MODELS = ("resnet18", "resnet50")
GOAL = {"resnet50": 0.35}


def write_torch_cache_file(name: str) -> tuple[Any, Path]:
    """Save seeded random weights of `name` as torch's cache file for its default weights.

    Returns:
        `(torchvision weights enum member, path of the file)`.
    """
    import torch
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(get_model(name, weights=None).state_dict(), path)
    return weights, path


def register_same_file(name: str, path: Path) -> tuple[str, str]:
    """Register `name` in-script with the file at `path` as its weights (by its real sha256)."""
    import zoo

    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return register_torchvision(name, weights={"bench": zoo.Weights(filename=path.name, sha256=sha256)})


def check_same_outputs(name: str, zoo_module: Any, tv_module: Any) -> None:
    """Assert that both modules are eval-mode CPU modules giving identical outputs on one random input."""
    import torch

    for side, module in (("zoo", zoo_module), ("torchvision", tv_module)):
        if module.training or next(module.parameters()).device.type != "cpu":
            fail(f"{name}: the {side} module is not an eval-mode CPU module")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = zoo_module(x), tv_module(x)
    if not torch.equal(a, b):
        fail(f"{name}: zoo and torchvision outputs differ (max abs diff {(a - b).abs().max().item():.3g})")


def bench_model(name: str, repeat: int) -> dict[str, Any]:
    """Cold and warm load times of one model on both sides, checked for identical outputs."""
    from torchvision.models import get_model

    import zoo

    weights, path = write_torch_cache_file(name)
    zoo_name, builder = register_same_file(name, path)

    start = time.perf_counter()
    zoo_model = zoo.load(zoo_name, device="cpu")  # converts the pickle to safetensors in zoo's cache
    first = time.perf_counter() - start
    check_same_outputs(name, zoo_model.module, get_model(name, weights=weights).eval())
    del zoo_model

    times = interleaved(
        {
            "zoo": lambda: zoo.load(zoo_name, device="cpu"),
            "torchvision": lambda: get_model(name, weights=weights).eval(),
        },
        repeat,
        warmup=1,
    )
    zoo_s, tv_s = median(times["zoo"]), median(times["torchvision"])
    return {
        "file": path.name,
        "mb": round(path.stat().st_size / 2**20, 1),
        "builder": builder,
        "zoo_first_load_s": round(first, 4),
        "zoo_s": round(zoo_s, 4),
        "torchvision_s": round(tv_s, 4),
        "ratio": ratio(zoo_s, tv_s),
        "repeat": repeat,
    }


def main() -> None:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed rounds (median taken); at least 7")
    args = parser.parse_args()
    isolate("load")
    import torch

    os.environ["ZOO_WEIGHTS_PATH"] = str(Path(torch.hub.get_dir()) / "checkpoints")
    results = {name: bench_model(name, max(args.repeat, 7)) for name in MODELS}

    rows = [
        (name, r["file"], f"{r['mb']:.1f}", r["zoo_first_load_s"], r["zoo_s"], r["torchvision_s"], r["ratio"])
        for name, r in results.items()
    ]
    print_table(
        f"Warm load to an eval-mode CPU module (median of {max(args.repeat, 7)}, interleaved; same bytes both sides)",
        ["model", "file", "MB", "zoo first s", "zoo warm s", "torchvision s", "ratio"],
        rows,
    )
    print("\n  outputs identical (torch.equal) on a random input: yes")
    goals = {}
    for name, goal in GOAL.items():
        value = results[name]["ratio"]
        goals[name] = {"goal": goal, "value": value, "met": value <= goal}
        print(f"  goal: {name} zoo / torchvision <= {goal}: {value} -> {verdict(value, goal)}")
    emit("load", {"models": results, "goals": goals, "env": environment()})


if __name__ == "__main__":
    main()
