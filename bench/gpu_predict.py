"""JPEG files to top-5 on CUDA: zoo predict against the tutorials' pipeline and a hand-written GPU pipeline.

resnet50 (seeded random weights, the same file on every side) over 256 photos of mixed sizes, all JPEG
(the shared PNGs are re-encoded), one batch size for all three:

- zoo: `model.predict(folder)`: nvjpeg batch decode, resize/crop/normalize on the GPU, bf16 autocast,
  channels_last (see `zoo/tasks/classification.py`).
- tutorial: PIL decode + transforms v1 on the CPU, fp32 forward on the GPU, softmax, topk.
- hand-written: `torchvision.io.decode_jpeg(device="cuda")` on each batch, transforms v2 on GPU uint8
  tensors, bf16 autocast, channels_last: what an expert would write by hand.

Every timed call starts and ends with `torch.cuda.synchronize()`, and results are copied to the CPU inside
it. Goals: zoo >= 0.8 x hand-written, >= 10 x tutorial (images/s). On a machine without CUDA it prints
"CUDA not available: skipped" and exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import (
    emit,
    environment,
    interleaved,
    isolate,
    median,
    paired_ratio,
    photos,
    print_table,
    ratio,
    register_torchvision,
    verdict,
)

NAME = "resnet50"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
ZOO, HAND, TUTORIAL = "zoo predict(folder)", "hand-written nvjpeg+bf16", "tutorial PIL + transforms"
GOALS = {HAND: 0.8, TUTORIAL: 10.0}


def weights_file(tmp: Path) -> Path:
    """Seeded random resnet50 weights saved with `torch.save` (every side loads this file)."""
    import torch
    from torchvision.models import get_model

    torch.manual_seed(0)
    path = tmp / "weights" / "resnet50-random.pth"
    path.parent.mkdir(parents=True)
    torch.save(get_model(NAME, weights=None).state_dict(), path)
    return path


def load_zoo(path: Path) -> Any:
    """The zoo model for the file at `path` (found through `ZOO_WEIGHTS_PATH`), on CUDA."""
    import zoo

    os.environ["ZOO_WEIGHTS_PATH"] = str(path.parent)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    name, _ = register_torchvision(NAME, weights={"bench": zoo.Weights(filename=path.name, sha256=sha256)})
    return zoo.load(f"{name}:bench", device="cuda")


def plain_module(path: Path, *, channels_last: bool) -> Any:
    """torchvision's resnet50 with the weights at `path`, eval mode, on CUDA."""
    import torch
    from torchvision.models import get_model

    module = get_model(NAME, weights=None)
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    module = module.eval().cuda()
    return module.to(memory_format=torch.channels_last) if channels_last else module


def tutorial(module: Any, paths: Sequence[Path], batch_size: int) -> list[list[int]]:
    """PIL decode and transforms v1 on the CPU, fp32 forward on the GPU, softmax, top-5 indices."""
    import torch
    from PIL import Image
    from torchvision import transforms

    preprocess = transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    )
    out = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]])
        with torch.no_grad():
            probabilities = torch.nn.functional.softmax(module(batch.cuda()), dim=1)
        out.extend(torch.topk(probabilities, 5).indices.tolist())
    return out


def hand_written(module: Any, paths: Sequence[Path], batch_size: int) -> list[list[int]]:
    """nvjpeg batch decode, GPU resize/crop/normalize, bf16 autocast, channels_last, top-5 indices."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms.v2 import functional as F

    out = []
    for start in range(0, len(paths), batch_size):
        data = [read_file(str(p)) for p in paths[start : start + batch_size]]
        torch.cuda.current_stream().synchronize()  # pytorch/vision#9606: nvjpeg may reuse memory still in use
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device="cuda")
        crops = [F.center_crop(F.resize(image, [256], antialias=True), [224]) for image in images]
        batch = F.normalize(F.to_dtype(torch.stack(crops), torch.float32, scale=True), MEAN, STD)
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            logits = module(batch)
        out.extend(logits.float().softmax(dim=-1).topk(5, dim=-1).indices.tolist())
    return out


def synchronized(fn: Callable[[], Any]) -> Callable[[], Any]:
    """`fn` between two `torch.cuda.synchronize()` calls, so the timer sees all of its GPU work."""
    import torch

    def run() -> Any:
        torch.cuda.synchronize()
        result = fn()
        torch.cuda.synchronize()
        return result

    return run


def agreement(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> int:
    """How many top-1 classes two pipelines share."""
    return sum(x[0] == y[0] for x, y in zip(a, b))


def skip(reason: str) -> None:
    """Print why the benchmark did not run, the JSON line, and exit 0."""
    print(reason)
    emit("gpu_predict", {"skipped": True, "reason": reason})


def main() -> None:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="JPEG files in the folder")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward, every side")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (median taken)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        skip("CUDA not available: skipped")
        return
    tmp = isolate("gpu")
    folder = tmp / "photos"
    files = photos(folder, args.images, jpeg_only=True)
    path = weights_file(tmp)
    model = load_zoo(path)
    plain, fast = plain_module(path, channels_last=False), plain_module(path, channels_last=True)
    bs = args.batch_size
    cases = {
        ZOO: synchronized(lambda: [list(r.indices) for r in model.predict(str(folder), top_k=5, batch_size=bs)]),
        HAND: synchronized(lambda: hand_written(fast, files, bs)),
        TUTORIAL: synchronized(lambda: tutorial(plain, files, bs)),
    }
    first = {name: case() for name, case in cases.items()}  # also warms nvjpeg, cuDNN and the allocator
    times = interleaved(cases, args.repeat, warmup=1)
    report(times, first, len(files), bs, args.repeat)


def report(times: dict[str, list[float]], first: dict[str, Any], n: int, bs: int, repeat: int) -> None:
    """Print the table, the goals and the JSON line."""
    import torch

    medians = {k: median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in medians.items()}
    speed = {k: ratio(rate[ZOO], rate[k]) for k in (HAND, TUTORIAL)}
    paired = {k: round(1 / paired_ratio(times, ZOO, k), 3) for k in (HAND, TUTORIAL)}
    device = torch.cuda.get_device_name()
    print_table(
        f"{NAME} (random weights), {n} JPEGs of mixed sizes -> top-5 on {device}, batch {bs} (median of {repeat})",
        ["pipeline", "median s", "images/s", "zoo speed / this"],
        [(k, medians[k], rate[k], ratio(rate[ZOO], rate[k])) for k in medians],
    )
    goals = {}
    for k, goal in GOALS.items():
        goals[k] = {"goal": goal, "value": speed[k], "paired": paired[k], "met": speed[k] >= goal}
        print(
            f"  goal: zoo >= {goal} x {k}: {speed[k]} (paired {paired[k]}) -> {verdict(speed[k], goal, at_most=False)}"
        )
    agree = {k: agreement(first[ZOO], first[k]) for k in (HAND, TUTORIAL)}
    print(f"  top-1 agreement with zoo: hand-written {agree[HAND]}/{n}, tutorial {agree[TUTORIAL]}/{n}")
    emit(
        "gpu_predict",
        {
            "skipped": False,
            "device": device,
            "model": NAME,
            "files": n,
            "batch_size": bs,
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "images_per_s": {k: round(v, 1) for k, v in rate.items()},
            "goals": goals,
            "top1_agreement": agree,
            "repeat": repeat,
            "env": environment(),
        },
    )


if __name__ == "__main__":
    main()
