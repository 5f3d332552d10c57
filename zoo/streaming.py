"""Streaming predictions: results one batch at a time, in input order, with memory bounded by the batch.

A task's `predict(..., stream=True)` returns a `ResultStream`: an iterator that decodes, batches and runs
the model lazily, so what is held at any time is a few batches (the one in the forward pass and the ones
being decoded ahead of it), never every input. `prefetch` is the overlap: the next batches are decoded and
preprocessed by worker threads while the current one runs (torchvision's decoders, resizes and the forward
pass all release the GIL).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

from zoo.errors import InputError
from zoo.results.batch import SkippedInput

__all__ = ["ResultStream", "batched", "collect", "in_input_order", "prefetch", "worker_count"]

T = TypeVar("T")
R = TypeVar("R")


class ResultStream(Iterator[Any]):
    """The results of `predict(..., stream=True)`: an iterator of results in input order.

    Nothing runs until the stream is iterated; each batch is decoded, run and dropped in turn. Unreadable
    inputs that `on_error` lets go are not yielded: they are added to `skipped` as the stream reaches
    them. `batches()` yields each batch's results and `SkippedInput`s together, in input order, as soon
    as the batch is done (what `zoo predict --out` writes and flushes).

    Attributes:
        skipped: the `SkippedInput`s met so far.
        total: the number of inputs, when known (None for a lazy input).
    """

    def __init__(self, batches: Iterator[list[Any]], total: int | None = None) -> None:
        self._batches = batches
        self._ready: deque[Any] = deque()
        self.skipped: list[SkippedInput] = []
        self.total = total

    def __iter__(self) -> ResultStream:
        return self

    def __next__(self) -> Any:
        while True:
            while not self._ready:
                self._ready.extend(next(self._batches))
            event = self._ready.popleft()
            if isinstance(event, SkippedInput):
                self.skipped.append(event)
                continue
            return event

    def batches(self) -> Iterator[list[Any]]:
        """Each batch's results and `SkippedInput`s, in input order (skipped ones are also added to `skipped`)."""
        if self._ready:
            yield self._take(list(self._ready))
            self._ready.clear()
        for batch in self._batches:
            yield self._take(batch)

    def _take(self, batch: list[Any]) -> list[Any]:
        self.skipped.extend(event for event in batch if isinstance(event, SkippedInput))
        return batch

    def close(self) -> None:
        """Stop early: worker threads still decoding ahead are waited for and their batches dropped."""
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"ResultStream(total={self.total}, skipped={len(self.skipped)})"


def collect(batches: Iterable[list[Any]]) -> tuple[list[Any], list[SkippedInput]]:
    """Split batches of events into results and skipped inputs (what a non-streaming `predict` returns)."""
    results: list[Any] = []
    skipped: list[SkippedInput] = []
    for batch in batches:
        for event in batch:
            (skipped if isinstance(event, SkippedInput) else results).append(event)
    return results, skipped


def in_input_order(
    chunk: Iterable[Any], kept: Iterable[Any], results: Iterable[Any], skipped: Iterable[Any]
) -> Iterator[Any]:
    """A chunk's results and skipped inputs merged back into the chunk's order.

    Args:
        chunk: the chunk's items, in input order.
        kept: the items that were decoded (a subsequence of `chunk`), one per result.
        results: their results, in the same order.
        skipped: a `SkippedInput` per item of `chunk` that is not in `kept`, in order.
    """
    done = {id(item) for item in kept}
    results, skipped = iter(results), iter(skipped)
    for item in chunk:
        yield next(results) if id(item) in done else next(skipped)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` consecutive items (the last one shorter), taken lazily from `items`."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def worker_count(value: int | str | None) -> int:
    """The decoding threads for `num_workers=`: an int >= 0 (0: decode in the calling thread), or "auto".

    "auto" (and None) is `ZOO_NUM_WORKERS` when set, else 2 on a machine with at least 2 cores, else 0:
    decoding one batch ahead of the forward pass on one thread hides it when the model is the slow part,
    and a second thread covers a slow disk or a decode-heavy model.

    Raises:
        InputError: a negative number or another string.
    """
    if value is None or value == "auto":
        env = os.environ.get("ZOO_NUM_WORKERS", "").strip()
        if env:
            return worker_count(int(env) if env.isdigit() else env)
        return 2 if (os.cpu_count() or 1) >= 2 else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"num_workers={value!r} is not valid: use a number of threads (0 or more) or 'auto'.")
    return value


def prefetch(chunks: Iterable[T], work: Callable[[T], R], workers: int) -> Iterator[R]:
    """`work(chunk)` for each chunk, in order, computed up to `workers` chunks ahead by a thread pool.

    With `workers=0` everything runs in the calling thread, one chunk at a time. At most `workers + 1`
    chunks are in flight, so memory stays bounded by the batch size whatever the number of inputs. An
    exception raised by `work` is raised here, at that chunk's turn.
    """
    if workers <= 0:
        yield from (work(chunk) for chunk in chunks)
        return
    from concurrent.futures import Future, ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-decode")
    pending: deque[Future[R]] = deque()
    try:
        iterator = iter(chunks)
        for chunk in iterator:
            pending.append(pool.submit(work, chunk))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
