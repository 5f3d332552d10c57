"""The `zoo serve` HTTP application (FastAPI): predict, model list, health, metrics and a browser page.

Routes: `POST /v1/models/{name}/predict` (raw image bytes, a multipart upload, or JSON) returns the result's
`to_dict()`; `GET /v1/models`; `GET /healthz`; `GET /metrics` (Prometheus text); `GET /` (the page);
`/docs` and `/openapi.json`. Every error is one line of JSON, `{"error": "..."}`, with its status: 400 bad
input, 401 missing token, 404 unknown model, 413 too large, 503 overloaded. With `token` set
(`ZOO_SERVE_TOKEN`), every route but `/`, `/healthz` and the docs needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request  # this module is imported only to serve (zoo-sdk[serve])

from zoo.errors import InputError, UnknownModelError, ZooError
from zoo.serve.batcher import Batcher, Overloaded, predict_each
from zoo.serve.inputs import TooLarge, check_image, parse_body
from zoo.serve.metrics import Metrics

if TYPE_CHECKING:
    from zoo.model import Model

__all__ = ["Served", "ServeLimits", "create_app"]

#: Query parameters a request may set, with their types (each only if the model's task takes it).
OPTIONS = {"top_k": int, "conf": float, "iou": float, "max_det": int}


@dataclass(frozen=True)
class ServeLimits:
    """Limits of `zoo serve`.

    Attributes:
        max_bytes: largest request body.
        max_pixels: largest image (width x height), checked from its header before decoding.
        timeout: seconds a batch waits for more requests.
        queue_size: requests waiting per model before 503.
        token: bearer token required by the API routes, or None.
    """

    max_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    timeout: float = 0.01
    queue_size: int = 256
    token: str | None = None


@dataclass
class Served:
    """One served model: its name in URLs, the model, and the batch cap chosen for it."""

    name: str
    model: Model
    batch_cap: int


def create_app(served: Mapping[str, Served], limits: ServeLimits) -> FastAPI:
    """The FastAPI app serving `served` (models already loaded) within `limits`."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException

    metrics = Metrics()
    batchers: dict[str, Batcher] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for name, entry in served.items():
            batcher = Batcher(
                name, functools.partial(predict_each, entry.model),
                batch_cap=entry.batch_cap, timeout=limits.timeout, queue_size=limits.queue_size,
                on_batch=functools.partial(metrics.batch, name),
            )  # fmt: skip
            batcher.start()
            batchers[name] = batcher
        yield
        for batcher in batchers.values():
            await batcher.stop()

    from zoo._version import __version__

    app = FastAPI(title="zoo serve", version=__version__, lifespan=lifespan)

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(exc).__name__}")

    def authorized(request: Request) -> bool:
        if limits.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {limits.token}".encode())

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        open_paths = ("/", "/healthz", "/docs", "/openapi.json", "/docs/oauth2-redirect")
        if request.url.path not in open_paths and not authorized(request):
            return error(401, "This server needs a token: send 'Authorization: Bearer <ZOO_SERVE_TOKEN>'.",
                         {"WWW-Authenticate": "Bearer"})  # fmt: skip
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: 200 with the served model names once they are loaded."""
        return {"status": "ok", "models": sorted(served)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        """The served models: name, task, labels count, batch cap, queue depth."""
        return {
            "models": [
                {
                    "name": name,
                    "model": entry.model.name,
                    "task": entry.model.spec.task,
                    "num_labels": len(entry.model.labels) if entry.model.labels else None,
                    "batch_cap": entry.batch_cap,
                    "queue_depth": batchers[name].depth if name in batchers else 0,
                    "device": str(entry.model.device),
                }
                for name, entry in sorted(served.items())
            ]
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text() -> str:
        """Prometheus text: requests by model and status, latency and batch-size histograms, queue depth."""
        for name, batcher in batchers.items():
            metrics.queue_depth[name] = batcher.depth
        return metrics.render()

    @app.post(
        "/v1/models/{name}/predict",
        openapi_extra={
            "requestBody": {
                "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                    },
                    "application/json": {
                        "schema": {"type": "object", "properties": {"image_base64": {"type": "string"}}}
                    },
                },
                "required": True,
            }
        },
    )
    async def predict(name: str, request: Request) -> Any:
        """Predict one image: raw bytes, a multipart `file`, or JSON `{"image_base64"}` / `{"array"}`.

        Query parameters set options the model's task takes (`top_k`, `conf`, `iou`, `max_det`).
        Returns the result's `to_dict()`.
        """
        started = time.perf_counter()
        entry = served.get(name)
        if entry is None:
            metrics.request("<unknown>", 404, None)
            return error(404, f"Unknown model {name!r}: this server serves {', '.join(sorted(served))}.")
        try:
            body = await _read_body(request, limits.max_bytes)
            payload = parse_body(body, request.headers.get("content-type", ""))
            check_image(payload, limits.max_pixels)
            options = _options(entry.model, {**request.query_params, **(payload.options or {})})
            result = await batchers[name].submit(payload.data, options)
        except TooLarge as exc:
            return _finish(metrics, name, 413, started, error(413, str(exc)))
        except Overloaded as exc:
            return _finish(metrics, name, 503, started, error(503, str(exc), {"Retry-After": "1"}))
        except (InputError, UnknownModelError) as exc:
            return _finish(metrics, name, 400, started, error(400, str(exc)))
        except ZooError as exc:
            return _finish(metrics, name, 500, started, error(500, str(exc)))
        result = dict(result)
        if "source" in result:
            result["source"] = payload.source
        return _finish(metrics, name, 200, started, JSONResponse(result))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        """A self-contained page to drop an image and see the annotated result."""
        return resources.files("zoo.serve").joinpath("page.html").read_text(encoding="utf-8")

    return app


def _finish(metrics: Metrics, name: str, status: int, started: float, response: Any) -> Any:
    metrics.request(name, status, time.perf_counter() - started)
    return response


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (TooLarge) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"The request body has {int(declared)} bytes, more than this server's limit of {limit}.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"The request body is larger than this server's limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _options(model: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """Prediction options from query parameters or JSON: known names, the right type, taken by the task."""
    options: dict[str, Any] = {}
    for key, value in given.items():
        kind = OPTIONS.get(key)
        if kind is None or not model.task.accepts(key):
            accepted = sorted(k for k in OPTIONS if model.task.accepts(k))
            raise InputError(f"Unknown option {key!r} for this model: use {', '.join(accepted) or 'none'}.")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise InputError(f"Option {key}={value!r} is not a {kind.__name__}.") from None
        if kind is int and not 1 <= number <= 1000:
            raise InputError(f"Option {key}={number} is outside 1 to 1000.")
        if kind is float and not 0.0 <= number <= 1.0:
            raise InputError(f"Option {key}={number} is outside 0 to 1.")
        options[key] = number
    return options
