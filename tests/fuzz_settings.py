"""Shared settings of the hypothesis fuzz tests (`tests/test_fuzz_*.py`) and the checks every fuzz body makes.

`make test` runs each fuzz test with a small, fixed number of examples (derandomized, so a run is repeatable
and the whole harness stays well under a minute). `ZOO_FUZZ_EXAMPLES=N` runs N random examples per test
instead, for a longer hunt:

    ZOO_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_pickle.py -p no:cacheprovider

A failing example is printed by hypothesis (and can be replayed with `@example(...)`).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from zoo.errors import ZooError

__all__ = ["MEMORY_BUDGET", "expect_zoo_errors", "fuzz", "memory_peak"]

F = TypeVar("F", bound=Callable[..., Any])
#: Python-level allocation (tracemalloc peak) one fuzz example may reach: the inputs are a few KB.
MEMORY_BUDGET = 48 << 20


def fuzz(default_examples: int) -> Callable[[F], F]:
    """Hypothesis settings for a fuzz test: `default_examples` (or `ZOO_FUZZ_EXAMPLES`), no deadline."""
    knob = os.environ.get("ZOO_FUZZ_EXAMPLES")
    return settings(
        max_examples=int(knob) if knob else default_examples,
        deadline=None,
        derandomize=not knob,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,  # tmp_path: each example overwrites its one file
        ],
    )


@contextmanager
def memory_peak(budget: int = MEMORY_BUDGET) -> Iterator[None]:
    """Fail when the body allocates more than `budget` bytes at its peak (Python allocations, tracemalloc)."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= budget, f"allocated {peak} bytes at the peak, more than the budget of {budget}"


def expect_zoo_errors(call: Callable[[], Any]) -> Any:
    """Run `call`: a result, or a typed `ZooError` with a one-line message; anything else fails the test.

    Returns:
        The result, or None when a `ZooError` was raised.
    """
    try:
        return call()
    except ZooError as exc:
        error: ZooError | None = exc
    message = str(error)
    assert message and "\n" not in message, f"{type(error).__name__} message is not one line: {message!r}"
    return None
