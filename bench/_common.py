"""Shared helpers for the benchmarks: an isolated offline environment, interleaved timing, tables, JSON.

Every benchmark measures zoo and its anchors in the same run, interleaved round by round (the order
alternates), and reports medians and the ratio zoo / anchor, so a noisy machine moves both sides alike.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT.parent / "shared" / "assets"
IMAGES = ASSETS / "images"
WEIGHTS = ASSETS / "weights"


def isolate(prefix: str) -> Path:
    """Point zoo, torch and Hugging Face at a fresh temporary folder and switch every network path off.

    Sets the variables in `os.environ`, so subprocesses inherit them. Returns the folder; it is
    removed when the process exits.
    """
    import atexit

    tmp = Path(tempfile.mkdtemp(prefix=f"zoo-bench-{prefix}-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.environ.update(
        {
            "ZOO_HOME": str(tmp / "zoo"),
            "ZOO_CONFIG": str(tmp / "config.toml"),
            "ZOO_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(tmp / "hf"),
            "TORCH_HOME": str(tmp / "torch"),
            "YOLO_OFFLINE": "1",
        }
    )
    for var in ("ZOO_DEVICE", "ZOO_MIRRORS", "ZOO_PLUGINS", "ZOO_WEIGHTS_PATH"):
        os.environ.pop(var, None)
    return tmp


def interleaved(cases: Mapping[str, Callable[[], Any]], repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times (s) of each case, `repeat` rounds after `warmup` untimed ones.

    Each round runs every case once; the order is reversed every other round, so neither side always
    runs first (after the other one warmed the caches) or last.
    """
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeat):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            cases[name]()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                times[name].append(elapsed)
    return times


def median(values: Iterable[float]) -> float:
    """Median of the values."""
    return statistics.median(list(values))


def paired_ratio(times: Mapping[str, Sequence[float]], case: str, anchor: str) -> float:
    """Median of the per-round ratios case / anchor: robust to load that drifts across rounds."""
    return round(median(a / b for a, b in zip(times[case], times[anchor])), 3)


def ratio(value: float, anchor: float) -> float:
    """value / anchor, rounded for printing."""
    return round(value / anchor, 3) if anchor else float("nan")


def verdict(value: float, goal: float, *, at_most: bool = True) -> str:
    """'ok' when `value` meets the goal (≤ goal, or ≥ goal with `at_most=False`), else 'MISSED'."""
    met = value <= goal if at_most else value >= goal
    return "ok" if met else "MISSED"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain, aligned text table."""
    cells = [[str(c) for c in columns]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  " + "  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * width for width in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def emit(bench: str, data: Mapping[str, Any]) -> None:
    """Print the final machine-readable line: `{"bench": ..., ...}`."""
    print(json.dumps({"bench": bench, **data}, sort_keys=False))


def environment() -> dict[str, Any]:
    """Versions and machine facts worth keeping beside the figures."""
    import platform

    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def torchvision_builder(name: str) -> tuple[Callable[..., Any], str]:
    """The builder zoo would use for torchvision model `name`, and where it comes from.

    The `zoo_torchvision` plugin's builder when that plugin is loaded; otherwise an in-script one that
    calls `torchvision.models.get_model(name, weights=None)` (zoo builds it on the meta device).
    """
    import zoo

    try:
        spec = zoo.info(f"torchvision/{name}")
    except zoo.ZooError:
        spec = None
    if spec is not None:
        return spec.builder, "zoo_torchvision plugin"

    def build(**kwargs: Any) -> Any:
        from torchvision.models import get_model

        return get_model(name, weights=None, **kwargs)

    return build, "in-script get_model"


def register_torchvision(
    name: str, *, weights: Mapping[str, Any] | None = None, labels: Sequence[str] | None = None
) -> tuple[str, str]:
    """Register torchvision's `name` in-script (plugin `user`) with torchvision's ImageNet preprocessing.

    Returns:
        `(qualified name to load, builder origin)`; the qualified `user/NAME` never clashes with the
        torchvision plugin's own `NAME`.
    """
    import zoo

    builder, origin = torchvision_builder(name)
    zoo.register(name, task="image-classification", labels=labels, weights=weights, preprocess=zoo.ImagePreprocess())(
        builder
    )
    return f"user/{name}", origin


def photos(folder: Path, count: int, *, jpeg_only: bool = False) -> list[Path]:
    """Fill `folder` with `count` image files copied round-robin from the shared photos.

    With `jpeg_only`, PNG photos are re-encoded as JPEG (quality 90). When the shared photos are
    absent, generated JPEGs (smooth gradients with noise, sizes like camera photos) stand in.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sources = (
        sorted(p for p in IMAGES.glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}) if IMAGES.is_dir() else []
    )
    if not sources:
        sources = _generated(folder.parent / "generated", 7)
    out = []
    for i in range(count):
        src = sources[i % len(sources)]
        if jpeg_only and src.suffix.lower() == ".png":
            target = folder / f"{i:04d}-{src.stem}.jpg"
            _to_jpeg(src, target)
        else:
            target = folder / f"{i:04d}-{src.name}"
            shutil.copyfile(src, target)
        out.append(target)
    return out


def _to_jpeg(src: Path, target: Path) -> None:
    from PIL import Image

    with Image.open(src) as image:
        image.convert("RGB").save(target, quality=90)


def _generated(folder: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [(640, 480), (480, 640), (1280, 720), (512, 512), (800, 600), (1080, 810), (451, 300)]
    out = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        x = np.linspace(0, 255, w)[None, :, None]
        y = np.linspace(0, 255, h)[:, None, None]
        image = (x * (i % 3 == 0) + y * (i % 3 != 0) + rng.normal(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
        path = folder / f"generated-{i}.jpg"
        Image.fromarray(image).save(path, quality=90)
        out.append(path)
    return out


def fail(message: str) -> None:
    """Print `message` to stderr and exit 1 (a correctness check failed: the figures mean nothing)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)
