"""`zoo serve`: a real server process on a free port, real HTTP clients, a load test and the page in Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ASSETS

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "grace_hopper.jpg", "bus.jpg", "zidane.jpg")
TOKEN = "s3cret-token"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `zoo serve mobilenet_v2` process (real weights, offline, a token) for the whole module."""
    if not (ASSETS / "MANIFEST.md").is_file():
        pytest.skip("../shared/assets is not present")
    home = tmp_path_factory.mktemp("serve_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_", "HF_"))}
    env.update(
        ZOO_HOME=str(home), ZOO_CONFIG=str(home / "config.toml"), ZOO_WEIGHTS_PATH=str(ASSETS / "weights"),
        ZOO_OFFLINE="1", HF_HUB_OFFLINE="1", ZOO_SERVE_TOKEN=TOKEN, TORCH_HOME=str(home / "torch"),
    )  # fmt: skip
    port = _free_port()
    log = home / "server.log"
    command = [sys.executable, "-m", "zoo", "serve", "mobilenet_v2", "--port", str(port), "--device", "cpu",
               "--max-batch", "8", "--no-calibrate", "--max-mb", "2", "--max-pixels", "2000000"]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"zoo serve exited: {log.read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"zoo serve did not start: {log.read_text()}")
            time.sleep(0.5)
        yield Server(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _one_line_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "\n" not in response.text
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


def test_predict_raw_multipart_and_json(server: Server) -> None:
    import base64

    chelsea = (ASSETS / "images" / "chelsea.png").read_bytes()
    with server.client() as client:
        raw = client.post("/v1/models/mobilenet_v2/predict", content=chelsea, headers={"content-type": "image/png"})
        assert raw.status_code == 200, raw.text
        assert raw.json()["top"][0]["label"] == "Egyptian cat"
        assert raw.json()["source"] is None  # nothing of the server's side leaks into results
        form = client.post("/v1/models/mobilenet_v2/predict", files={"file": ("cat.png", chelsea, "image/png")},
                           params={"top_k": 2})  # fmt: skip
        assert form.json()["source"] == "cat.png"
        assert [t["label"] for t in form.json()["top"]] == ["Egyptian cat", "tiger cat"]
        body = {"image_base64": base64.b64encode(chelsea).decode(), "top_k": 1}
        assert client.post("/v1/models/mobilenet_v2/predict", json=body).json()["top"][0]["label"] == "Egyptian cat"


def test_200_requests_from_16_clients_equal_zoo_predict_json(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    monkeypatch.setenv("ZOO_WEIGHTS_PATH", str(ASSETS / "weights"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    paths = [ASSETS / "images" / name for name in PHOTOS]
    result = CliRunner().invoke(cli, ["predict", "mobilenet_v2", *map(str, paths), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    expected = [r["top"] for r in json.loads(result.output)["results"]]
    photos = [p.read_bytes() for p in paths]

    with server.client() as client:

        def ask(i: int) -> tuple[int, int, dict]:
            response = client.post("/v1/models/mobilenet_v2/predict", content=photos[i % len(photos)])
            return i, response.status_code, response.json()

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(200)))
        metrics = client.get("/metrics").text
    assert [status for _, status, _ in answers] == [200] * 200
    for i, _, body in answers:
        got, want = body["top"], expected[i % len(photos)]
        assert [t["label"] for t in got] == [t["label"] for t in want], PHOTOS[i % len(photos)]
        assert [t["index"] for t in got] == [t["index"] for t in want]
        assert [t["score"] for t in got] == pytest.approx([t["score"] for t in want], abs=1e-6)
    sums = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith("zoo_batch")}
    key = '{model="mobilenet_v2"}'
    assert sums[f"zoo_batch_size_sum{key}"] > sums[f"zoo_batch_size_count{key}"]  # requests were batched
    assert 'zoo_requests_total{model="mobilenet_v2",status="200"}' in metrics
    assert 'zoo_request_seconds_bucket{model="mobilenet_v2",le="+Inf"}' in metrics


def test_a_non_image_gets_400_and_the_server_keeps_serving(server: Server) -> None:
    with server.client() as client:
        bad = client.post("/v1/models/mobilenet_v2/predict", content=b"%PDF-1.4 not an image at all")
        assert "not an image" in _one_line_error(bad, 400)
        truncated = (ASSETS / "images" / "bus.jpg").read_bytes()[:2000]  # a valid header, a cut body
        _one_line_error(client.post("/v1/models/mobilenet_v2/predict", content=truncated), 400)
        ok = client.post("/v1/models/mobilenet_v2/predict", content=(ASSETS / "images" / "coffee.png").read_bytes())
        assert ok.json()["top"][0]["label"] == "espresso"
    assert server.process.poll() is None


def test_errors_and_limits(server: Server) -> None:
    import io

    from PIL import Image

    big = io.BytesIO()
    Image.new("RGB", (2000, 1001)).save(big, format="PNG")  # 2.0 Mpx in a few KB
    with server.client() as client:
        assert "'nope'" in _one_line_error(client.post("/v1/models/nope/predict", content=b"x"), 404)
        _one_line_error(client.post("/v1/models/mobilenet_v2/predict", content=b"\0" * (2 * 2**20 + 1)), 413)
        assert "pixels" in _one_line_error(client.post("/v1/models/mobilenet_v2/predict", content=big.getvalue()), 413)
        cat = (ASSETS / "images" / "chelsea.png").read_bytes()
        bad_option = client.post("/v1/models/mobilenet_v2/predict", content=cat, params={"conf": 0.5})
        assert "conf" in _one_line_error(bad_option, 400)
        _one_line_error(client.post("/v1/models/mobilenet_v2/predict", content=cat, params={"top_k": "x"}), 400)
        _one_line_error(client.post("/v1/models/mobilenet_v2/predict", json={"path": "/etc/passwd"}), 400)
        _one_line_error(client.post("/v1/models/mobilenet_v2/predict", content=b"/etc/passwd"), 400)
        _one_line_error(client.get("/v1/nothing"), 404)


def test_the_token_is_required(server: Server) -> None:
    cat = (ASSETS / "images" / "chelsea.png").read_bytes()
    for token in (None, "wrong"):
        with server.client(token) as client:
            assert "token" in _one_line_error(client.post("/v1/models/mobilenet_v2/predict", content=cat), 401)
            _one_line_error(client.get("/v1/models"), 401)
            _one_line_error(client.get("/metrics"), 401)
            assert client.get("/healthz").json() == {"status": "ok", "models": ["mobilenet_v2"]}
            assert client.get("/").status_code == 200


def test_models_and_openapi(server: Server) -> None:
    with server.client() as client:
        models = client.get("/v1/models").json()["models"]
        assert [(m["name"], m["task"], m["num_labels"]) for m in models] == [
            ("mobilenet_v2", "image-classification", 1000)
        ]
        schema = client.get("/openapi.json").json()
        assert "/v1/models/{name}/predict" in schema["paths"]


def test_the_page_in_headless_chromium(server: Server) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    page_html = httpx.get(server.url + "/").text
    assert "http://" not in page_html.replace(server.url, "") and "https://" not in page_html  # no external assets
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url + "/")
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            page.wait_for_function("document.querySelector('#model').options.length > 0")
            page.set_input_files("#file", str(ASSETS / "images" / "chelsea.png"))
            page.wait_for_selector("body[data-done='1']", timeout=60_000)
            assert "Egyptian cat" in page.inner_text("#result")
            assert page.eval_on_selector("#canvas", "c => c.width") == 451
            page.set_input_files("#file", str(Path(__file__)))  # not an image: the error shows on the page
            page.wait_for_function("document.querySelector('#error').textContent.length > 0")
            assert "not an image" in page.inner_text("#error")
        finally:
            browser.close()
    assert all(url.startswith(server.url) or url.startswith("blob:") for url in requests), requests


# --- the batcher alone (no server) ---------------------------------------------------------------------------


def test_a_full_queue_is_overloaded_and_batches_group_requests() -> None:
    from zoo.serve.batcher import Batcher, Overloaded

    sizes: list[int] = []

    def predict(payloads: list, options: dict) -> list:
        time.sleep(0.05)
        return [{"x": p, **options} for p in payloads]

    async def main() -> None:
        batcher = Batcher("m", predict, batch_cap=4, timeout=0.02, queue_size=6, on_batch=sizes.append)
        tasks = [asyncio.ensure_future(batcher.submit(i, {})) for i in range(6)]
        await asyncio.sleep(0)  # the six wait in the queue (the loop is not started yet)
        with pytest.raises(Overloaded, match="6 requests waiting"):
            await batcher.submit(6, {})
        batcher.start()
        try:
            assert [r["x"] for r in await asyncio.gather(*tasks)] == list(range(6))
            mixed = await asyncio.gather(batcher.submit(1, {"top_k": 1}), batcher.submit(2, {"top_k": 2}))
            assert mixed == [{"x": 1, "top_k": 1}, {"x": 2, "top_k": 2}]  # options never mix in one batch
        finally:
            await batcher.stop()

    asyncio.run(main())
    assert sizes == [4, 2, 1, 1]


def test_calibration_picks_the_fastest_batch_per_image() -> None:
    from zoo.serve.batcher import calibrate

    class Fake:  # 15.5 ms/img at 1, 10.4 at 4, 18.4 at 32: the CPU figures of the issue
        cost = {1: 15.5, 2: 12.0, 4: 10.4, 8: 11.5, 16: 14.0, 32: 18.4}

        def predict(self, items: list) -> None:
            time.sleep(self.cost[len(items)] * len(items) / 1e4)  # scaled down 10x

    best, timings = calibrate(Fake(), 32, sample=object())
    assert best == 4
    assert set(timings) >= {1, 2, 4, 8}
