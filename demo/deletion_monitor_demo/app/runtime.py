"""Runtime metrics of the demo app that prometheus-client does not provide: the time spent in
garbage collection, the execution time of database statements, the CPU the process may use.

Both timers only count (fixed buckets, plain integers); _AppCollector turns them into histogram
families at scrape time. The GC timer runs inside CPython's collector (gc.callbacks), so it takes
no lock and allocates nothing but a float: a lock held by the thread a collection interrupts
would deadlock it.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import psycopg

# Buckets of deletion_app_db_query_duration_seconds: config dbQueryBuckets (test_demo_app checks
# they agree), so the DeletionDbQueryLatencyHigh threshold (1 s) is a boundary.
DB_QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Buckets of deletion_app_gc_duration_seconds: CPython collections take microseconds (young) to
# tens of milliseconds (full collection of a large heap).
GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class BucketCounts:
    """Observations in fixed buckets (`v <= le`), their sum and count."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """[(le, count of observations <= le)], +Inf last, as HistogramMetricFamily wants."""
        out, running = [], 0
        for le, n in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += n
            out.append((le, float(running)))
        return out


class GcTimer:
    """Wall time of each garbage collection, per generation, from gc.callbacks."""

    def __init__(self) -> None:
        self.generations = {g: BucketCounts(GC_BUCKETS) for g in range(3)}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif phase == "stop" and self._started:
            self.generations[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


class QueryTimer:
    """Execution time of the app's database statements (thread-safe)."""

    def __init__(self) -> None:
        self.counts = BucketCounts(DB_QUERY_BUCKETS)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.counts.observe(seconds)

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        with self._lock:
            return self.counts.cumulative(), self.counts.sum


class TimedConnection(psycopg.Connection):
    """A psycopg connection that reports each execute()'s duration to `query_timer`."""

    query_timer: QueryTimer | None = None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return super().execute(*args, **kwargs)
        finally:
            if self.query_timer is not None:
                self.query_timer.observe(time.perf_counter() - start)


def cpu_limit_cores() -> float:
    """The cores this process may use: the cgroup v2 CPU quota, else the CPUs it may run on."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))
