"""Ray Data batch inference with zoo models: `Predictor` for `Dataset.map_batches`, `predict` for a whole run.

```python
import ray, zoo.ray
ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
out = ds.map_batches(zoo.ray.Predictor, fn_constructor_kwargs={"model": "resnet18", "top_k": 1},
                     batch_size=64, compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)
out.write_json("s3://bucket/predictions/")
```

Each actor loads the model once, from the zoo cache of its node (fetched there on first use, or brought with
`zoo cache import` for an offline cluster), and turns batches of images (a `path` column, a `bytes` column as
`read_binary_files` gives, or an `image` column of arrays) into columns of results: `input` (the path, or
`<row N>`), `result` (the result's `to_dict()` as JSON text, without its source) and `error` (the one-line reason
an input could not be read, else null). Needs `zoo-sdk[ray]`; `import zoo` never imports ray.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError

if TYPE_CHECKING:
    import ray.data

__all__ = ["Predictor", "actor_room", "connect", "predict", "require_ray"]

#: Environment variables the driver's zoo settings travel in, to every actor.
_SETTINGS = ("TORCH_HOME", "HF_HOME", "HF_HUB_OFFLINE", "YOLO_CONFIG_DIR")


def require_ray() -> Any:
    """The `ray` module, or an `InputError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise InputError("The Ray engine needs Ray: pip install 'zoo-sdk[ray]'.") from exc
    return ray


class Predictor:
    """A callable class for `ray.data.Dataset.map_batches`: one model per actor, batches of images in, results out.

    Args:
        model: a model name (`resnet18`, `yolov5n:v7.0`, `hf:org/repo`, a checkpoint path on the nodes).
        device: where the model runs on the actor ("auto": the GPU Ray gave it, else the CPU).
        **predict_options: options of the model's `predict` (`top_k`, `conf`, ...); each must be one the
            task takes.

    Raises:
        InputError: an option the model's task does not take.
    """

    def __init__(self, model: str, *, device: str = "auto", **predict_options: Any) -> None:
        from zoo import api

        self.model = api.load(model, device=device)
        task = self.model.task
        for option in predict_options:
            if not task.accepts(option):
                raise InputError(f"{option}= is not an option of {self.model.name} ({self.model.spec.task}).")
        self.options = dict(predict_options)
        if task.accepts("on_error"):
            self.options["on_error"] = "skip"
        self.stream = task.accepts("stream")
        if self.stream:
            self.options["stream"] = True
        if task.accepts("num_workers"):
            self.options.setdefault("num_workers", 0)  # Ray runs decoding and the model in parallel itself

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """Results for one batch: columns `input`, `result` (JSON text or null) and `error` (text or null)."""
        data, names = _inputs(batch)
        events = self._events(data)
        inputs, results, errors = [], [], []
        for name, event in zip(names, events):
            record = _record(event)
            inputs.append(name)
            error = record.pop("error", None)
            errors.append(error)
            results.append(None if error is not None else json.dumps(record, ensure_ascii=False))
        return {"input": inputs, "result": results, "error": errors}

    def _events(self, data: list[Any]) -> list[Any]:
        """One event (result or `SkippedInput`) per input, in order."""
        found = self.model.predict(data, **self.options)
        if self.stream:
            return [event for batch in found.batches() for event in batch]
        return [*found, *getattr(found, "skipped", ())]


def _inputs(batch: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The images of a batch and their names, from its `bytes`, `image` or `path` column."""
    paths = batch.get("path")
    names = [str(p) for p in paths] if paths is not None else None
    for column in ("bytes", "image"):
        if column in batch:
            values = list(batch[column])
            data = [bytes(v) for v in values] if column == "bytes" else values
            return data, names or [f"<row {i}>" for i in range(len(values))]
    if names is None:
        raise InputError(f"A batch needs a 'path', 'bytes' or 'image' column, not {sorted(batch)}.")
    return names, names


def _record(event: Any) -> dict[str, Any]:
    from zoo.outputs import record_of

    record = record_of(event)
    record.pop("input", None)
    return record


def predict(
    inputs: Any,
    model: str,
    *,
    batch_size: int = 32,
    num_workers: int | None = None,
    address: str | None = None,
    num_gpus: float = 0,
    **predict_options: Any,
) -> ray.data.Dataset:
    """Run `model` over `inputs` on a Ray cluster; returns a (lazy) `ray.data.Dataset` of results.

    Args:
        inputs: paths, folders, globs (a list of them), or a `ray.data.Dataset` with a `path`, `bytes` or
            `image` column.
        model: the model name each actor loads.
        batch_size: images per `map_batches` batch (and forward pass).
        num_workers: actors (model copies). Default: as many as the cluster has room for, one per CPU (or
            per `num_gpus` of its GPUs); over a dataset you pass, an autoscaling pool from 1 up to that, so the
            dataset's own read tasks keep CPUs to run on.
        address: the cluster to connect to when Ray is not initialized yet (None: `RAY_ADDRESS`, else start a
            local one).
        num_gpus: GPUs per actor.
        **predict_options: the model's `predict` options (`top_k`, `conf`, ...).

    Returns:
        A dataset with columns `input`, `result` (JSON text of the result's fields) and `error`.
    """
    ray = require_ray()
    if batch_size < 1 or (num_workers is not None and num_workers < 1):
        raise InputError(f"batch_size and num_workers must be at least 1, not {batch_size} and {num_workers}.")
    connect(address)
    given = isinstance(inputs, ray.data.Dataset)
    dataset = inputs if given else _paths_dataset(ray, inputs)
    room = actor_room(num_gpus)
    pool = {"size": num_workers} if num_workers else {"min_size": 1, "max_size": room} if given else {"size": room}
    env = {k: v for k, v in os.environ.items() if k.startswith("ZOO_") or k in _SETTINGS}
    return dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": model, **predict_options},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(**pool),  # Ray 2.51 deprecates concurrency= for this
        num_gpus=num_gpus,
        runtime_env={"env_vars": env},
    )


def actor_room(num_gpus: float = 0) -> int:
    """How many predictor actors the connected cluster holds at once: its CPUs, or GPUs / `num_gpus` (at least 1)."""
    ray = require_ray()
    resources = ray.cluster_resources()
    if num_gpus > 0:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    return max(1, int(resources.get("CPU", 1)))


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address` (None: `RAY_ADDRESS`, else start a local one), unless Ray is initialized.

    A `host:port` (or `ray://host:port`) address is tried with a plain TCP connection first: Ray itself keeps
    retrying an unreachable address for minutes before it gives up.

    Raises:
        InputError: Ray is not installed, or no cluster answers at the address (one line, in seconds).
    """
    ray = require_ray()
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target and target not in ("auto", "local"):
        _check_reachable(target)
    try:
        ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"No Ray cluster at {target or 'this machine'}: {reason} Start one with `ray start --head`, or leave "
            "out the address to start a local one."
        ) from exc


def _check_reachable(target: str) -> None:
    """Raise `InputError` unless something listens at the `host:port` of a Ray address (5 s at most)."""
    import socket

    host, sep, port = target.removeprefix("ray://").rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise InputError(f"Ray address {target!r} is not host:port, ray://host:port or auto.")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(
            f"No Ray cluster at {target} ({exc.strerror or exc}): check the address, or start one there with "
            "`ray start --head`."
        ) from exc


def _paths_dataset(ray: Any, inputs: Any) -> Any:
    from zoo.images import collect_images

    items, _ = collect_images(list(inputs) if isinstance(inputs, Iterable) and not isinstance(inputs, str) else inputs)
    paths = [str(item.data) for item in items if not isinstance(item.data, (bytes, bytearray))]
    if len(paths) != len(items):
        raise InputError("zoo.ray.predict takes paths, folders or globs, or a ray.data.Dataset of images.")
    return ray.data.from_items([{"path": p} for p in paths])
