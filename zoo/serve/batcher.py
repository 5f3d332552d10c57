"""`Batcher`: dynamic batching of concurrent requests for one model, with a bounded queue.

Requests wait in an `asyncio.Queue` of bounded size (a full queue is `Overloaded`, HTTP 503). One loop per
model takes the first waiting request, gathers more for up to `timeout` seconds or until `batch_cap`, and
runs them as one `predict` on a worker thread; while that runs, new requests queue up for the next batch.
`batch_cap` comes from `calibrate`: the batch size with the best measured time per image on this device (on a
CPU that is a small batch; on a GPU a large one), never above `max_batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import InputError, ZooError

__all__ = ["Batcher", "Overloaded", "calibrate"]

logger = logging.getLogger(__name__)

#: Batch sizes up to this one are always measured (a busy machine can make one measure look slow).
_ALWAYS_TRIED = 8


class Overloaded(ZooError):
    """The model's queue is full: the server is overloaded (HTTP 503)."""


@dataclass
class _Item:
    payload: Any
    options: tuple[tuple[str, Any], ...]
    future: asyncio.Future[Any]
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Batches concurrent `submit` calls into `predict` calls of one model.

    Args:
        name: the model's served name (for metrics).
        predict: `predict(payloads, **options) -> list of dicts or exceptions`, run on a worker thread.
        batch_cap: most requests in one batch.
        timeout: seconds to wait for more requests once one is waiting.
        queue_size: most requests waiting; beyond it `submit` raises `Overloaded`.
        on_batch: called with each batch's size (metrics).
    """

    def __init__(
        self,
        name: str,
        predict: Callable[..., list[Any]],
        *,
        batch_cap: int,
        timeout: float,
        queue_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.batch_cap = max(1, batch_cap)
        self.timeout = max(0.0, timeout)
        self._predict = predict
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"zoo-serve-{name}")
        self._on_batch = on_batch
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Requests waiting."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"zoo-batcher-{self.name}")

    async def stop(self) -> None:
        """Stop the loop and the worker thread; waiting requests get `Overloaded`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Overloaded("The server is shutting down."))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, payload: Any, options: dict[str, Any]) -> Any:
        """Queue one input and wait for its result.

        Raises:
            Overloaded: the queue is full.
            ZooError: the input is bad (`InputError`) or the model failed on it.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(payload, tuple(sorted(options.items())), future))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.name} has {self._queue.maxsize} requests waiting: retry later.") from None
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.timeout
            while len(batch) < self.batch_cap:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except (asyncio.TimeoutError, TimeoutError):
                    break
            for group in _by_options(batch):
                await self._run_group(loop, group)

    async def _run_group(self, loop: asyncio.AbstractEventLoop, group: list[_Item]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(group))
        options = dict(group[0].options)
        try:
            results = await loop.run_in_executor(self._executor, self._predict, [i.payload for i in group], options)
        except Exception as exc:  # the whole batch failed: every request gets the error
            results = [exc] * len(group)
        for item, result in zip(group, results):
            if item.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)


def _by_options(batch: list[_Item]) -> list[list[_Item]]:
    groups: dict[tuple[tuple[str, Any], ...], list[_Item]] = {}
    for item in batch:
        groups.setdefault(item.options, []).append(item)
    return list(groups.values())


def predict_each(model: Any, payloads: Sequence[Any], options: dict[str, Any]) -> list[Any]:
    """`model.predict` on a batch; when the batch fails on a bad input, each input alone (so only it fails)."""
    try:
        results = model.predict(list(payloads), **options)
        return [r.to_dict() for r in results]
    except InputError:
        if len(payloads) == 1:
            raise
    out: list[Any] = []
    for payload in payloads:
        try:
            out.append(model.predict([payload], **options)[0].to_dict())
        except ZooError as exc:
            out.append(exc)
    return out


def calibrate(model: Any, max_batch: int, sample: Any, *, budget_s: float = 3.0) -> tuple[int, dict[int, float]]:
    """The batch size (a power of two up to `max_batch`) with the least measured seconds per image.

    Sizes are tried in increasing order; past 8 the search stops once a size is 25% slower per image than the
    best so far, or the time budget is spent. Returns `(best, {size: seconds per image})`.
    """
    timings: dict[int, float] = {}
    started = time.perf_counter()
    model.predict([sample])  # warm up
    size = 1
    while size <= max_batch:
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            model.predict([sample] * size)
            runs.append((time.perf_counter() - t0) / size)
        timings[size] = min(runs)
        best = min(timings.values())
        slower = timings[size] > 1.25 * best
        if size >= _ALWAYS_TRIED and (slower or time.perf_counter() - started > budget_s):
            break
        size *= 2
    best_size = min(timings, key=lambda s: (timings[s], s))
    logger.info("batch calibration: %s -> %d", {s: round(t * 1e3, 2) for s, t in timings.items()}, best_size)
    return best_size, timings
