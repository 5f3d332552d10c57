"""`zoo serve`: models over HTTP with dynamic batching (FastAPI + uvicorn), metrics and a browser page.

- `app`: the FastAPI application (routes, errors, token, limits).
- `batcher`: the asyncio dynamic batcher with a bounded queue, and the batch-size calibration.
- `inputs`: request bodies to model inputs, in memory.
- `metrics`: Prometheus text metrics.

Importing this package imports neither torch nor fastapi; `serve` needs `zoo-sdk[serve]`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, UnsupportedError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from zoo.serve.app import Served, ServeLimits

__all__ = ["app_from_env", "load_served", "serve"]

logger = logging.getLogger(__name__)

#: Environment variable carrying the server's settings to uvicorn worker processes (`--workers N`).
CONFIG_ENV = "ZOO_SERVE_CONFIG"
#: The bearer token the API routes require, when set.
TOKEN_ENV = "ZOO_SERVE_TOKEN"


def load_served(
    names: Sequence[str], *, device: str = "auto", max_batch: int = 32, calibrate: bool = True
) -> dict[str, Served]:
    """Load each model once and choose its batch cap (see `zoo.serve.batcher.calibrate`).

    A catalog name is served under its model name (`mobilenet_v2`), a file under its stem (`m.onnx` -> `m`).

    Raises:
        InputError: two models would be served under one name, or `max_batch` is below 1.
    """
    from zoo import api
    from zoo.names import is_path
    from zoo.serve.app import Served
    from zoo.serve.batcher import calibrate as measure

    if max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, not {max_batch}.")
    served: dict[str, Served] = {}
    for name in names:
        model = api.load(name, device=device)
        key = Path(name).stem if is_path(name) else model.spec.name
        if key in served:
            raise InputError(f"Two models would be served as {key!r}: serve one of them, or rename the file.")
        cap = max_batch
        if calibrate and max_batch > 1:
            cap, timings = measure(model, max_batch, _sample(model))
            logger.info("%s: batch cap %d (%s)", key, cap, {k: f"{v * 1e3:.1f} ms/img" for k, v in timings.items()})
        served[key] = Served(key, model, cap)
    return served


def _sample(model: Any) -> Any:
    """A 480x640 RGB test image (numpy), the kind of photo a client sends."""
    import numpy as np

    rng = np.random.default_rng(0)
    channels = model.preprocess.channels if model.preprocess is not None else 3
    return rng.integers(0, 256, size=(480, 640, channels), dtype=np.uint8)


def _limits(settings: dict[str, Any]) -> ServeLimits:
    from zoo.serve.app import ServeLimits

    token = os.environ.get(TOKEN_ENV) or None
    return ServeLimits(
        max_bytes=int(settings.get("max_bytes", 20 * 2**20)),
        max_pixels=int(settings.get("max_pixels", 40_000_000)),
        timeout=float(settings.get("batch_timeout_ms", 10)) / 1000,
        queue_size=int(settings.get("queue_size", 256)),
        token=token,
    )


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process, from the settings `serve` put in `ZOO_SERVE_CONFIG`."""
    from zoo.serve.app import create_app

    settings = json.loads(os.environ[CONFIG_ENV])
    served = load_served(
        settings["names"], device=settings["device"], max_batch=settings["max_batch"],
        calibrate=settings.get("calibrate", True),
    )  # fmt: skip
    return create_app(served, _limits(settings))


def serve(
    names: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 32,
    batch_timeout_ms: float = 10,
    workers: int = 1,
    device: str = "auto",
    queue_size: int = 256,
    max_bytes: int = 20 * 2**20,
    max_pixels: int = 40_000_000,
    calibrate: bool = True,
) -> None:
    """Serve `names` over HTTP until interrupted (see `zoo serve --help`).

    Raises:
        UnsupportedError: fastapi or uvicorn is not installed.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise UnsupportedError(f"zoo serve needs {exc.name}: pip install 'zoo-sdk[serve]'.") from None
    if not names:
        raise InputError("Name at least one model to serve.")
    settings = {
        "names": list(names), "device": device, "max_batch": max_batch, "batch_timeout_ms": batch_timeout_ms,
        "queue_size": queue_size, "max_bytes": max_bytes, "max_pixels": max_pixels, "calibrate": calibrate,
    }  # fmt: skip
    if workers > 1:  # each worker process loads the models itself
        os.environ[CONFIG_ENV] = json.dumps(settings)
        uvicorn.run("zoo.serve:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning")
        return
    from zoo.serve.app import create_app

    app = create_app(load_served(names, device=device, max_batch=max_batch, calibrate=calibrate), _limits(settings))
    uvicorn.run(app, host=host, port=port, log_level="warning")
