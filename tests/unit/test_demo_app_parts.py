"""Parts of the demo app that need no database: the fault payload's validation, and the runtime
metrics' configured names and buckets, cumulative bucket counts and the GC timer. The app on a
real PostgreSQL is tests/integration/test_demo_app.py and test_demo_app_runtime.py."""

from __future__ import annotations

import gc

import pytest

from deletion_monitor.common.config import load_config
from deletion_monitor_demo.app.faults import parse_faults
from deletion_monitor_demo.app.runtime import DB_QUERY_BUCKETS, BucketCounts, GcTimer


def test_fault_payload_is_validated() -> None:
    assert parse_faults({"error_rate": 0.5}).error_rate == 0.5
    for bad, field in (
        ({"error_rate": 2}, "error_rate"),
        ({"nope": 1}, "nope"),
        ({"skip_cleanup": "yes"}, "skip_cleanup"),
        ([], "object"),
    ):
        with pytest.raises(ValueError, match=field):
            parse_faults(bad)


def test_names_and_buckets_are_the_configured_ones() -> None:
    cfg = load_config(env={})
    assert list(DB_QUERY_BUCKETS) == cfg["dbQueryBuckets"]
    assert cfg["dbQuery"]["p95Warning"] in DB_QUERY_BUCKETS  # "above 1 s" is exact
    assert cfg["appDbQueryDurationMetric"] == "deletion_app_db_query_duration_seconds"
    assert cfg["appGcDurationMetric"] == "deletion_app_gc_duration_seconds"
    assert cfg["appCpuLimitMetric"] == "deletion_app_cpu_limit_cores"


def test_bucket_counts_are_cumulative_with_le_inclusive() -> None:
    counts = BucketCounts([0.1, 1])
    for v in (0.05, 0.1, 0.5, 1, 3):
        counts.observe(v)
    assert counts.cumulative() == [("0.1", 2.0), ("1", 4.0), ("+Inf", 5.0)]
    assert counts.sum == 4.65


def test_gc_timer_times_each_collection_by_generation() -> None:
    timer = GcTimer()
    timer.install()
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        timer.uninstall()
    assert timer not in gc.callbacks
    full, young = timer.generations[2].cumulative(), timer.generations[0].cumulative()
    assert full[-1][1] >= 1 and young[-1][1] >= 1
    assert 0 < timer.generations[2].sum < 5
