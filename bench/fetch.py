"""Download and verify speed of the zoo store against curl, torch.hub and sha256sum, in one run.

Download: a 256 MB file of random bytes served from 127.0.0.1 by a separate process (`sendfile`, so the
server costs little CPU); each round fetches it cold with curl (`curl -s -o`), with
`torch.hub.download_url_to_file` (which hashes too, given a hash prefix) and with `Store.fetch` (which
streams, hashes, fsyncs and renames atomically). Verify: re-hashing a cached 100 MB file with
`Store.intact` (what `zoo cache verify` runs) against `sha256sum`, both from the page cache.
Goals: zoo throughput >= 0.8 x curl; zoo verify speed >= 0.8 x sha256sum.

    python bench/fetch.py [--size-mb 256] [--verify-mb 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import emit, fail, interleaved, isolate, median, print_table, verdict

GOAL = 0.8


def serve(folder: str) -> None:
    """Serve `folder` on a free port with sendfile; print the port, then serve until killed."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = Path(folder) / self.path.lstrip("/")
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", f'"{path.stat().st_mtime_ns}"')
            self.end_headers()
            self.wfile.flush()
            with open(path, "rb") as f:
                self.connection.sendfile(f)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


def write_random(path: Path, size_mb: int) -> str:
    """Write `size_mb` MB of random bytes; return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size_mb):
            chunk = os.urandom(1 << 20)
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def download_cases(url: str, sha: str, work: Path) -> dict[str, Any]:
    """The three ways of downloading `url` cold, each writing under `work`."""
    import torch.hub

    import zoo
    from zoo.store import Store

    def fresh(name: str) -> Path:
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def zoo_fetch() -> None:
        path = Store(fresh("zoo")).fetch(zoo.Artifact("big.bin", urls=(url,), sha256=sha))
        if path.stat().st_size == 0:
            fail("zoo fetched nothing")

    def curl() -> None:
        subprocess.run(["curl", "-s", "-f", "-o", str(fresh("curl") / "big.bin"), url], check=True)

    def torch_hub() -> None:
        torch.hub.download_url_to_file(url, str(fresh("torch") / "big.bin"), hash_prefix=sha[:8], progress=False)

    return {"zoo": zoo_fetch, "curl": curl, "torch.hub": torch_hub}


def bench_download(size_mb: int, repeat: int, tmp: Path) -> dict[str, Any]:
    served = tmp / "served"
    served.mkdir()
    sha = write_random(served / "big.bin", size_mb)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(served)], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/big.bin"
        times = interleaved(download_cases(url, sha, tmp / "work"), repeat=repeat)
    finally:
        server.kill()
        server.wait()
    if hashlib.sha256((tmp / "work" / "zoo" / "weights" / "big.bin").read_bytes()).hexdigest() != sha:
        fail("zoo's download differs from the served file")
    med = {k: median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    mbps = {k: round(size_mb / v, 1) for k, v in med.items()}
    vs_curl, vs_torch = round(med["curl"] / med["zoo"], 3), round(med["torch.hub"] / med["zoo"], 3)
    best_vs_curl = round(best["curl"] / best["zoo"], 3)
    rows = [(k, med[k], best[k], mbps[k]) for k in ("curl", "torch.hub", "zoo")]
    title = f"download {size_mb} MB from 127.0.0.1 ({repeat} rounds)"
    print_table(title, ["tool", "median s", "best s", "MB/s (median)"], rows)
    print(f"  zoo throughput / curl: {vs_curl} (best rounds: {best_vs_curl})   zoo / torch.hub: {vs_torch}")
    print(f"  goal: zoo >= {GOAL} x curl (medians): {vs_curl} -> {verdict(vs_curl, GOAL, at_most=False)}")
    return {
        "seconds": med,
        "best_seconds": best,
        "mb_per_s": mbps,
        "zoo_vs_curl": vs_curl,
        "zoo_vs_curl_best": best_vs_curl,
        "zoo_vs_torch_hub": vs_torch,
    }


def bench_verify(size_mb: int, repeat: int, tmp: Path) -> dict[str, Any]:
    import zoo
    from zoo.store import Store

    source = tmp / "verify.bin"
    sha = write_random(source, size_mb)
    store = Store(tmp / "verify-cache")
    store.fetch(zoo.Artifact("verify.bin", urls=(source.as_uri(),), sha256=sha))
    cached = store.weights_dir / "verify.bin"

    def zoo_verify() -> None:
        if not store.intact("verify.bin"):
            fail("zoo found the cached file corrupt")

    def sha256sum() -> None:
        out = subprocess.run(["sha256sum", str(cached)], check=True, capture_output=True, text=True).stdout
        if not out.startswith(sha):
            fail("sha256sum disagrees")

    times = interleaved({"zoo": zoo_verify, "sha256sum": sha256sum}, repeat=repeat)
    med = {k: median(v) for k, v in times.items()}
    speed = round(med["sha256sum"] / med["zoo"], 3)
    rows = [(k, med[k], round(size_mb / med[k], 1)) for k in ("sha256sum", "zoo")]
    print_table(f"verify a cached {size_mb} MB file ({repeat} rounds, medians)", ["tool", "seconds", "MB/s"], rows)
    print(f"  goal: zoo verify speed >= {GOAL} x sha256sum: {speed} -> {verdict(speed, GOAL, at_most=False)}")
    return {"seconds": med, "zoo_vs_sha256sum": speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--verify-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if shutil.which("curl") is None or shutil.which("sha256sum") is None:
        fail("curl and sha256sum are needed as anchors")
    tmp = isolate("fetch")
    os.environ["ZOO_OFFLINE"] = "0"
    start = time.perf_counter()
    download = bench_download(args.size_mb, args.repeat, tmp)
    verify = bench_verify(args.verify_mb, args.repeat, tmp)
    emit("fetch", {"download": download, "verify": verify, "wall_s": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    main()
