"""Predict at scale: (a) peak RSS over few vs many inputs, (b) files -> top-5 vs the PyTorch tutorial's PIL
pipeline, (c) the Ray engine vs the local engine. Load average is printed with every figure (shared machines).

Usage: `python bench/scale.py [--rss-few 10 --rss-many 1000 --rss-side 4000] [--images 64] [--ray-images 64]
[--only a,b,c]`. Correctness checks (identical top-5, same records) fail the run; timing goals are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import IMAGES, WEIGHTS, isolate

PHOTOS = ("bus.jpg", "zidane.jpg", "grace_hopper.jpg", "rocket.jpg")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def photos(folder: Path, count: int, side: int | None) -> list[str]:
    """`count` JPEG paths in `folder`: the shared photos as they are, or, with `side`, synthesised large photos.

    With `side` (4000: 12 Mpx), each shared photo is scaled and centre-cropped to a 4:3 frame whose longer side
    is `side` (portrait photos stay portrait), like a phone photo, and saved at quality 90; the `count` files
    are distinct copies (no links), so the page cache and the decoder see as many files as a real folder.
    """
    import shutil

    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name in PHOTOS:
        image = Image.open(IMAGES / name).convert("RGB")
        if side:
            short = side * 3 // 4
            frame = (short, side) if image.height > image.width else (side, short)
            image = ImageOps.fit(image, frame, Image.Resampling.BICUBIC)
        made.append(folder / f"src-{Path(name).stem}.jpg")
        image.save(made[-1], quality=90)
    out = []
    for i in range(count):
        copy = folder / f"{i:05d}.jpg"
        if not copy.exists():
            shutil.copyfile(made[i % len(made)], copy)
        out.append(str(copy))
    return out


def peak_rss(args: list[str]) -> int:
    """Peak RSS (bytes) of `zoo predict ARGS` in a fresh child (RUSAGE_CHILDREN of a new parent)."""
    code = (
        "import resource, subprocess, sys; "
        "p = subprocess.run([sys.executable, '-m', 'zoo', 'predict', *sys.argv[1:]], stdout=subprocess.DEVNULL); "
        "assert p.returncode == 0; print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) * 1024


def bench_rss(few: int, many: int, side: int, batch: int | None, tmp: Path) -> dict[str, object]:
    """Peak RSS of `zoo predict yolov5n PHOTOS --device cpu` (real weights, offline) over `few` and `many` photos."""
    paths = photos(tmp / "rss", many, side)
    common = ["--device", "cpu", *(["-b", str(batch)] if batch else [])]
    t0 = time.perf_counter()
    a = peak_rss(["yolov5n", *paths[:few], *common])
    few_s = time.perf_counter() - t0
    b = peak_rss(["yolov5n", *paths, *common])
    from PIL import Image

    width, height = Image.open(paths[0]).size
    return {"command": f"zoo predict yolov5n <N photos> {' '.join(common)}", "few": few, "many": many,
            "megapixels": round(width * height / 1e6, 1), "peak_few_mb": round(a / 2**20, 1),
            "peak_many_mb": round(b / 2**20, 1), "ratio": round(b / a, 3), "goal": 1.5, "ok": b / a <= 1.5,
            "few_s": round(few_s, 1), "many_s": round(time.perf_counter() - t0 - few_s, 1), "load": load()}  # fmt: skip


def tutorial_top5(paths: list[str], batch: int) -> list[list[int]]:
    """The PyTorch tutorial's pipeline: PIL open, Resize(256), CenterCrop(224), ToTensor, Normalize, forward."""
    import torch
    from PIL import Image
    from torchvision import models, transforms

    global _tutorial_model
    if "_tutorial_model" not in globals():
        module = models.mobilenet_v2()
        module.load_state_dict(torch.load(WEIGHTS / "mobilenet_v2-b0353104.pth", weights_only=True))
        _tutorial_model = module.eval()
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])  # fmt: skip
    out: list[list[int]] = []
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i : i + batch]])
            out.extend(_tutorial_model(x).softmax(-1).topk(5).indices.tolist())
    return out


def bench_files(count: int, tmp: Path) -> dict[str, object]:
    import zoo

    paths = photos(tmp / "files", count, None)
    model = zoo.load("mobilenet_v2", device="cpu")
    zoo_top = [list(r.indices) for r in model.predict(paths[:32], top_k=5, stream=True)]  # warm up
    tutorial_top5(paths[:32], 32)
    times: dict[str, list[float]] = {"zoo": [], "tutorial": []}
    for round_ in range(2):
        for name in ("zoo", "tutorial") if round_ % 2 == 0 else ("tutorial", "zoo"):
            start = time.perf_counter()
            if name == "zoo":
                zoo_top = [list(r.indices) for r in model.predict(paths, top_k=5, batch_size=32, stream=True)]
            else:
                tut_top = tutorial_top5(paths, 32)
            times[name].append(time.perf_counter() - start)
    same = sum(a == b for a, b in zip(zoo_top, tut_top))
    zoo_s, tut_s = min(times["zoo"]), min(times["tutorial"])
    return {"images": count, "zoo_img_s": count / zoo_s, "tutorial_img_s": count / tut_s,
            "ratio": tut_s / zoo_s, "goal": 1.5, "identical_top5": f"{same}/{count}", "ok": same == count,
            "load": load()}  # fmt: skip


def bench_ray(count: int, tmp: Path) -> dict[str, object]:
    import ray

    import zoo
    from zoo import ray as zoo_ray

    paths = photos(tmp / "ray", count, None)
    model = zoo.load("mobilenet_v2", device="cpu")
    start = time.perf_counter()
    local = {r.source: r.indices[0] for r in model.predict(paths, top_k=1, batch_size=16, stream=True)}
    local_s = time.perf_counter() - start
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    result: dict[str, object] = {"images": count, "local_img_s": count / local_s, "ray_start_s": start_s}
    for workers in (1, 2):
        start = time.perf_counter()
        rows = zoo_ray.predict(paths, "mobilenet_v2", batch_size=16, num_workers=workers, top_k=1).take_all()
        took = time.perf_counter() - start
        same = all(json.loads(r["result"])["top"][0]["index"] == local[r["input"]] for r in rows)
        result[f"ray{workers}_img_s"] = count / took
        result[f"ray{workers}_vs_local"] = local_s / took
        result[f"ray{workers}_same_top1"] = same and len(rows) == count
    ray.shutdown()
    result["goal_ray2_vs_local"] = 0.7
    result["load"] = load()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--rss-few", type=int, default=10)
    parser.add_argument("--rss-many", type=int, default=200)
    parser.add_argument("--rss-side", type=int, default=4000, help="longer side of the 4:3 photos (4000: 12 Mpx)")
    parser.add_argument("--rss-batch", type=int, default=None, help="-b for zoo predict (default: the CLI's)")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--ray-images", type=int, default=128)
    args = parser.parse_args()
    isolate("scale")
    os.environ["ZOO_WEIGHTS_PATH"] = str(WEIGHTS)
    results: dict[str, object] = {"cpus": os.cpu_count(), "load_start": load()}
    with tempfile.TemporaryDirectory(prefix="zoo-bench-scale-") as tmp:
        only = set(args.only.split(","))
        if "a" in only:
            results["a_peak_rss"] = bench_rss(args.rss_few, args.rss_many, args.rss_side, args.rss_batch, Path(tmp))
            print(json.dumps({"a_peak_rss": results["a_peak_rss"]}), flush=True)
        if "b" in only:
            results["b_files_top5"] = bench_files(args.images, Path(tmp))
            print(json.dumps({"b_files_top5": results["b_files_top5"]}), flush=True)
        if "c" in only:
            results["c_ray"] = bench_ray(args.ray_images, Path(tmp))
            print(json.dumps({"c_ray": results["c_ray"]}), flush=True)
    print(json.dumps(results))
    checks = [results.get("b_files_top5", {}).get("ok", True)]  # type: ignore[union-attr]
    checks.append(results.get("a_peak_rss", {}).get("ok", True))  # type: ignore[union-attr]
    return 0 if all(checks) else 1


if __name__ == "__main__":
    _ = resource  # RUSAGE_CHILDREN is read in the child measured
    sys.exit(main())
