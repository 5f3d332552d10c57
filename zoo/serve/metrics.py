"""Prometheus text metrics of `zoo serve`: requests by model and status, latency and batch-size histograms."""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{_num(b)}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.total}")
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Metrics:
    """Counters and histograms, safe to update from the event loop and worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.batches: dict[str, _Histogram] = {}
        self.queue_depth: dict[str, int] = {}

    def request(self, model: str, status: int, seconds: float | None) -> None:
        """Count a finished request; `seconds` is its latency (None for requests refused before any work)."""
        with self._lock:
            self.requests[(model, status)] += 1
            if seconds is not None:
                self.latency.setdefault(model, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, model: str, size: int) -> None:
        """Record one forward batch of `size` requests."""
        with self._lock:
            self.batches.setdefault(model, _Histogram(BATCH_BUCKETS)).observe(size)

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP zoo_requests_total Prediction requests by model and HTTP status.",
                "# TYPE zoo_requests_total counter",
            ]
            for (model, status), count in sorted(self.requests.items()):
                lines.append(f'zoo_requests_total{{model="{_label(model)}",status="{status}"}} {count}')
            lines += [
                "# HELP zoo_request_seconds Latency of answered prediction requests.",
                "# TYPE zoo_request_seconds histogram",
            ]
            for model, hist in sorted(self.latency.items()):
                lines += hist.lines("zoo_request_seconds", f'model="{_label(model)}"')
            lines += ["# HELP zoo_batch_size Requests per forward batch.", "# TYPE zoo_batch_size histogram"]
            for model, hist in sorted(self.batches.items()):
                lines += hist.lines("zoo_batch_size", f'model="{_label(model)}"')
            lines += ["# HELP zoo_queue_depth Requests waiting for a batch.", "# TYPE zoo_queue_depth gauge"]
            for model, depth in sorted(self.queue_depth.items()):
                lines.append(f'zoo_queue_depth{{model="{_label(model)}"}} {depth}')
            return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
