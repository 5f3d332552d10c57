"""Shared fixtures: an isolated zoo environment for every test, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT.parent / "shared" / "assets"


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache root and config, the libraries' offline switches, and a fresh registry."""
    home = tmp_path_factory.mktemp("zoo_home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("ZOO_CONFIG", str(home / "config.toml"))
    for var in ("ZOO_OFFLINE", "ZOO_DEVICE", "ZOO_MIRRORS", "ZOO_PLUGINS", "ZOO_WEIGHTS_PATH", "ZOO_TRUST"):
        monkeypatch.delenv(var, raising=False)
    for var in ("ZOO_RETRIES", "ZOO_TIMEOUT", "ZOO_LOCK_TIMEOUT", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ZOO_BACKOFF", "0.01")  # retries stay real but quick
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(home / "ultralytics"))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from zoo.registry import reset_registry

    reset_registry()
    yield home
    reset_registry()


@pytest.fixture
def assets() -> Path:
    """The shared real weights and photos; the test is skipped when they are absent."""
    if not (ASSETS / "MANIFEST.md").is_file():
        pytest.skip("../shared/assets is not present")
    return ASSETS


@dataclass
class FileServer:
    """A real HTTP server on 127.0.0.1 serving `root`, counting requests.

    Attributes:
        root: folder served.
        url: base URL, without a trailing slash.
        requests: (method, path, headers) of every request received.
        truncate: path -> bytes after which the body stops (Content-Length still promises the whole file).
        corrupt: paths whose bytes are served flipped.
        ignore_range: paths served whole (200) even when a Range is asked for.
        etags: path -> ETag to send instead of the default one (change it to simulate a new file version).
        throttle: path -> seconds slept after each 64 KiB of body (a slow server).
        failures: path -> HTTP statuses answered, one per request, before the file is served.
        no_length: paths served without Content-Length (the body ends when the connection closes).
        delay: path -> seconds slept before the response headers (to trip client timeouts).
    """

    root: Path
    url: str = ""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    truncate: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    ignore_range: set[str] = field(default_factory=set)
    etags: dict[str, str] = field(default_factory=dict)
    throttle: dict[str, float] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)
    no_length: set[str] = field(default_factory=set)
    delay: dict[str, float] = field(default_factory=dict)

    def paths(self) -> list[str]:
        """Paths of the requests received so far."""
        return [path for _, path, _ in self.requests]


def _handler(server: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append(("GET", self.path, dict(self.headers)))
            path = server.root / self.path.split("?")[0].lstrip("/")
            if not path.is_file() or ".." in self.path:
                self.send_error(404)
                return
            if server.failures.get(self.path):
                self.send_response(server.failures[self.path].pop(0))
                self.send_header("Content-Length", "0")
                self.send_header("Retry-After", "0")
                self.end_headers()
                return
            time.sleep(server.delay.get(self.path, 0.0))
            data = path.read_bytes()
            if self.path in server.corrupt:
                data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
            etag = server.etags.get(self.path, f'"{hashlib.md5(data).hexdigest()}"')
            start = self._range_start(etag, len(data))
            self.send_response(200 if start is None else 206)
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            if start is not None:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            if self.path in server.no_length:
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(data) - (start or 0)))
            self.end_headers()
            cut = server.truncate.get(self.path)
            self._send(data[start or 0 : cut], server.throttle.get(self.path, 0.0))
            if cut is not None:
                self.close_connection = True

        def _range_start(self, etag: str, size: int) -> int | None:
            asked = self.headers.get("Range", "")
            if not asked.startswith("bytes=") or self.path in server.ignore_range:
                return None
            if self.headers.get("If-Range") not in (None, etag):
                return None  # the file changed since: the whole new file
            first = asked[6:].split("-", 1)[0]
            return int(first) if first.isdigit() and int(first) < size else None

        def _send(self, body: bytes, pause: float) -> None:
            step = 1 << 16 if pause else len(body) or 1
            try:
                for i in range(0, len(body), step):
                    self.wfile.write(body[i : i + step])
                    if pause:
                        self.wfile.flush()
                        time.sleep(pause)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """A `FileServer` on a free port of 127.0.0.1, stopped after the test."""
    root = tmp_path / "served"
    root.mkdir()
    state = FileServer(root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_state_dict_file(tmp_path: Path) -> Path:
    """A tiny real CNN state_dict pickled with torch.save (a few KB)."""
    import torch

    torch.manual_seed(0)
    module = tiny_cnn()
    path = tmp_path / "tiny-0000.pth"
    torch.save(module.state_dict(), path)
    return path


def tiny_cnn(num_classes: int = 3):
    """A few-KB CNN classifier used as a real model in plumbing tests."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


def pytest_report_header() -> str:
    return (
        f"zoo tests; shared assets: {'present' if (ASSETS / 'MANIFEST.md').is_file() else 'absent'}; pid {os.getpid()}"
    )
