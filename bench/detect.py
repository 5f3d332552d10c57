"""Detection: zoo's native YOLOv5n on CPU at 640 (latency, images/s, share of letterbox / forward / NMS) against a
reference measured in the same run, interleaved.

The reference is, in order of preference:
1. the ultralytics/yolov5 hub code (AutoShape) on the same checkpoint, when a local clone is given (`--yolov5-repo`);
2. ultralytics' own YOLO built from `yolov5nu.yaml` (YOLOv5n size, anchor-free head; random init), when the
   `ultralytics` package is installed (`pip install 'zoo-sdk[yolo]'`);
3. a straightforward reimplementation: the same network run through the YOLOv5 tutorial pipeline written plainly
   (float bilinear letterbox, per-class NMS loop as in yolov5's `non_max_suppression`).
Goal: native latency <= 1.1 x the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import IMAGES, WEIGHTS, emit, environment, fail, interleaved, isolate, median, print_table, ratio, verdict

GOAL = 1.1
PHOTOS = ("bus.jpg", "zidane.jpg")


def native_model() -> Any:
    """zoo's yolov5n, weights from ../shared/assets (offline)."""
    import zoo

    os.environ["ZOO_WEIGHTS_PATH"] = str(WEIGHTS)
    return zoo.load("yolov5n", device="cpu")


def check_native(model: Any, images: list[Path]) -> int:
    """Boxes found on the photos; fails when bus.jpg does not give 4 persons and a bus."""
    results = model.predict(images)
    labels = sorted(results[0].labels)
    if labels != ["bus", "person", "person", "person", "person"]:
        fail(f"native yolov5n found {labels} on bus.jpg, not 4 persons and a bus: the figures would mean nothing")
    return sum(len(r) for r in results)


def stage_shares(model: Any, images: list[Path], rounds: int) -> dict[str, float]:
    """Median seconds per image of decode + letterbox, forward and NMS + scaling, using the task's own steps."""
    import torch

    from zoo.images import ImageItem, decode
    from zoo.tasks.detection import letterbox, letterbox_shape, non_max_suppression

    module = model.module
    stages: dict[str, list[float]] = {"letterbox": [], "forward": [], "nms": []}
    for _ in range(rounds):
        for path in images:
            t0 = time.perf_counter()
            image = decode(ImageItem(path, str(path)))
            x, box = letterbox(image, letterbox_shape(image.shape[1], image.shape[2], 640, 32))
            batch = x[None].float().div_(255)
            t1 = time.perf_counter()
            with torch.inference_mode():
                out = module(batch)
            t2 = time.perf_counter()
            box.unscale(non_max_suppression(out, 0.25, 0.45)[0])
            t3 = time.perf_counter()
            for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
                stages[name].append(value)
    return {name: median(values) for name, values in stages.items()}


def reference(kind: str, repo: str | None, module: Any) -> tuple[str, Callable[[list[Path]], Any]]:
    """(description, predict function) of the reference pipeline."""
    if kind in ("auto", "yolov5") and repo:
        import torch

        model = torch.hub.load(repo, "custom", path=str(WEIGHTS / "yolov5n.pt"), source="local", trust_repo=True)
        model.conf, model.iou, model.max_det = 0.25, 0.45, 1000
        return "ultralytics/yolov5 hub code (AutoShape), same checkpoint", lambda paths: model([str(p) for p in paths])
    if kind in ("auto", "ultralytics"):
        try:
            from ultralytics import YOLO
        except ImportError:
            if kind == "ultralytics":
                fail("ultralytics is not installed: pip install 'zoo-sdk[yolo]'")
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                yolo = YOLO("yolov5nu.yaml")

            def run(paths: list[Path]) -> Any:
                return yolo.predict(
                    [str(p) for p in paths], imgsz=640, conf=0.25, iou=0.45, device="cpu", verbose=False
                )

            return "ultralytics YOLO('yolov5nu.yaml') (YOLOv5n size, random init)", run
    return "plain reimplementation (float letterbox, yolov5 NMS loop), same network", plain_pipeline(module)


def plain_pipeline(module: Any) -> Callable[[list[Path]], Any]:
    """The tutorial pipeline written plainly around the same network: what a user would write by hand."""
    import torch
    import torch.nn.functional as F
    import torchvision
    from PIL import Image

    def run(paths: list[Path]) -> Any:
        out = []
        for path in paths:
            image = torch.from_numpy(__import__("numpy").asarray(Image.open(path).convert("RGB")).copy())
            h, w = image.shape[:2]
            gain = 640 / max(h, w)
            nh, nw = round(h * gain), round(w * gain)
            shape = [-(-int(v * gain) // 32) * 32 for v in (h, w)]
            x = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(nh, nw), mode="bilinear", align_corners=False)
            top, left = (shape[0] - nh) // 2, (shape[1] - nw) // 2
            x = F.pad(x, (left, shape[1] - nw - left, top, shape[0] - nh - top), value=114.0) / 255
            with torch.inference_mode():
                pred = module(x)[0]
            pred = pred[pred[:, 4] > 0.25]
            pred[:, 5:] *= pred[:, 4:5]
            conf, cls = pred[:, 5:].max(1)
            boxes = torchvision.ops.box_convert(pred[:, :4], "cxcywh", "xyxy")
            keep = conf > 0.25
            boxes, conf, cls = boxes[keep], conf[keep], cls[keep]
            kept = torchvision.ops.nms(boxes + cls[:, None].float() * 7680, conf, 0.45)[:1000]
            out.append((boxes[kept], conf[kept], cls[kept]))
        return out

    return run


def main() -> None:
    """Measure, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (median taken); at least 3")
    parser.add_argument("--batch", type=int, default=8, help="images per call for the images/s figure")
    parser.add_argument("--reference", choices=["auto", "yolov5", "ultralytics", "plain"], default="auto")
    parser.add_argument("--yolov5-repo", help="a local clone of ultralytics/yolov5 to use as the reference")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for both sides (1: steady on shared CPUs)"
    )
    args = parser.parse_args()
    isolate("detect")
    os.environ["YOLO_OFFLINE"] = "1"
    if not (WEIGHTS / "yolov5n.pt").is_file():
        fail(f"{WEIGHTS / 'yolov5n.pt'} is missing: the bench needs ../shared/assets")
    import torch

    images = [IMAGES / name for name in PHOTOS]
    model = native_model()
    boxes = check_native(model, images)  # also fuses conv + batch norm, as the reference pipelines do
    described, ref = reference(args.reference, args.yolov5_repo, model.module)
    torch.set_num_threads(args.threads)  # after the reference is built: ultralytics sets its own
    batch = [images[i % 2] for i in range(args.batch)]
    repeat = max(args.repeat, 3)
    latency = interleaved({"zoo native": lambda: model.predict(images[0]), "reference": lambda: ref([images[0]])},
                          repeat, warmup=2)  # fmt: skip
    throughput = interleaved({"zoo native": lambda: model.predict(batch), "reference": lambda: ref(batch)}, 3, 1)
    shares = stage_shares(model, images, 3)
    lat = {k: median(v) for k, v in latency.items()}
    ips = {k: len(batch) / median(v) for k, v in throughput.items()}
    rows = [(name, lat[name] * 1000, ratio(lat[name], lat["reference"]), ips[name]) for name in lat]
    print_table(f"YOLOv5n on CPU at 640, bus.jpg (median of {repeat}); reference: {described}",
                ["pipeline", "latency ms", "ratio", "images/s"], rows)  # fmt: skip
    total = sum(shares.values())
    print_table("zoo native, time per image by stage", ["stage", "ms", "share"],
                [(k, v * 1000, f"{v / total:.0%}") for k, v in shares.items()])  # fmt: skip
    value = ratio(lat["zoo native"], lat["reference"])
    print(f"\n  native boxes on bus.jpg + zidane.jpg: {boxes}; torch threads: {torch.get_num_threads()}")
    print(f"  goal: native latency <= {GOAL} x reference: {value} -> {verdict(value, GOAL)}")
    emit("detect", {
        "reference": described,
        "latency_ms": {k: round(v * 1000, 2) for k, v in lat.items()},
        "images_per_s": {k: round(v, 2) for k, v in ips.items()},
        "stage_ms": {k: round(v * 1000, 2) for k, v in shares.items()},
        "goal": {"native / reference latency": GOAL, "value": value, "met": value <= GOAL},
        "env": environment(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
