"""`zoo serve` throughput: dynamic batching against one request per forward, and export parity.

Usage: `python bench/serve.py [--requests 200] [--clients 16] [--max-batch 8] [--no-parity]`.

The same server (mobilenet_v2, real weights, CPU) is started twice on a free port: with `--max-batch 1` (every
request its own forward) and with batching (`--max-batch`, calibrated unless `--no-calibrate`). Each serves the
same `--requests` photos from `--clients` concurrent clients (httpx); the table gives images/s, p50 and p99
latency, and the ratio batched / unbatched (goal >= 1.2 on a CPU, >= 5 on a GPU). The parity table exports
models to ONNX (tracing exporter) and .pt2 and gives each file's max abs difference from the PyTorch model on
the shared photos.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import IMAGES, WEIGHTS, emit, environment, isolate, print_table, verdict

GOAL = 1.2
PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "grace_hopper.jpg", "bus.jpg", "zidane.jpg")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(extra: list[str], requests: int, clients: int) -> dict[str, float]:
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "zoo", "serve", "mobilenet_v2", "--port", str(port), "--device", "cpu", *extra]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    photos = [(IMAGES / name).read_bytes() for name in PHOTOS]
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"zoo serve {' '.join(extra)} did not start") from None
                time.sleep(0.5)
        with httpx.Client(base_url=url, timeout=300) as client:
            cap = client.get("/v1/models").json()["models"][0]["batch_cap"]

            def ask(i: int) -> float:
                t0 = time.perf_counter()
                response = client.post("/v1/models/mobilenet_v2/predict", content=photos[i % len(photos)])
                response.raise_for_status()
                return time.perf_counter() - t0

            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(ask, range(clients)))  # warm up
                start = time.perf_counter()
                latencies = sorted(pool.map(ask, range(requests)))
                elapsed = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(30)
    return {
        "batch_cap": cap,
        "images_per_s": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def _parity() -> list[tuple[str, str, float]]:
    import zoo

    photos = [IMAGES / name for name in PHOTOS]
    rows = []
    out = Path(tempfile.mkdtemp(prefix="zoo-bench-export-"))
    for name in ("mobilenet_v2", "resnet18:none", "lenet5:none"):
        model = zoo.load(name, device="cpu")
        for format, suffix in (("onnx", ".onnx"), ("torch.export", ".pt2")):
            path = model.export(out / f"{name.replace(':', '_')}{suffix}", format, exporter="torchscript")
            parity = zoo.export.check_export(model, path, photos)
            rows.append((model.name, format, parity.max_abs_diff))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--no-parity", action="store_true")
    args = parser.parse_args()
    if not (WEIGHTS / "mobilenet_v2-b0353104.pth").is_file():
        emit("serve", {"skipped": True, "reason": "no shared assets"})
        return
    isolate("serve")
    os.environ["ZOO_WEIGHTS_PATH"] = str(WEIGHTS)
    load_before = os.getloadavg()
    batched_flags = ["--max-batch", str(args.max_batch)] + (["--no-calibrate"] if args.no_calibrate else [])
    one = _serve(["--max-batch", "1", "--no-calibrate"], args.requests, args.clients)
    many = _serve(batched_flags, args.requests, args.clients)
    load_after = os.getloadavg()
    value = round(many["images_per_s"] / one["images_per_s"], 3)
    print_table(
        f"zoo serve mobilenet_v2 on CPU, {args.requests} requests from {args.clients} clients",
        ["server", "batch cap", "images/s", "p50 ms", "p99 ms"],
        [(label, r["batch_cap"], round(r["images_per_s"], 2), round(r["p50_ms"], 1), round(r["p99_ms"], 1))
         for label, r in (("one request per forward", one), ("dynamic batching", many))],
    )  # fmt: skip
    print(f"\n  batched / unbatched = {value} (goal >= {GOAL}) -> {verdict(value, GOAL, at_most=False)}")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    parity = [] if args.no_parity else _parity()
    if parity:
        print_table("export parity on the shared photos", ["model", "format", "max abs diff"],
                    [(m, f, f"{d:.2e}") for m, f, d in parity])  # fmt: skip
    emit("serve", {
        "unbatched": one, "batched": many, "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        "parity": [{"model": m, "format": f, "max_abs_diff": d} for m, f, d in parity],
        "goal": {"batched / unbatched": GOAL, "value": value, "met": value >= GOAL},
        "env": environment(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
