"""The demo app's runtime metrics the strategy's alerts read: GC time, DB statement time, CPU limit.

DeletionAppGcTimeHigh / DeletionAppFullGcFrequent, DeletionDbQueryLatencyHigh and
DeletionAppCpuHigh need series prometheus-client does not provide; the demo app exports them
under the names src/deletion_monitor/data/config.libsonnet configures (appGcDurationMetric,
appDbQueryDurationMetric, appCpuLimitMetric).
"""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from deletion_monitor_demo.app.faults import Faults
from deletion_monitor_demo.app.runtime import (
    GcTimer,
    QueryTimer,
    TimedConnection,
    cpu_limit_cores,
)
from deletion_monitor_demo.app.server import _AppCollector
from deletion_monitor_demo.app.service import DeletionService


def test_timed_connection_observes_each_statement(pg_dsn: str) -> None:
    timer = QueryTimer()

    class Conn(TimedConnection):
        query_timer = timer

    with Conn.connect(pg_dsn) as conn:
        conn.execute("SELECT 1")
        conn.execute("SELECT pg_sleep(0.3)")
    buckets, total = timer.snapshot()
    counts = dict(buckets)
    assert counts["+Inf"] == 2
    assert counts["0.25"] == 1 and counts["0.5"] == 2  # the sleep lands in (0.25, 0.5]
    assert 0.3 <= total < 2


def test_app_collector_exports_the_families(app_dsn: str) -> None:
    svc = DeletionService(app_dsn, "s", Faults(256 * 1024 * 1024), pool_min=1, pool_max=2)
    svc.open()
    timer = GcTimer()
    try:
        with svc.connection() as conn:
            conn.execute("SELECT 1")
        registry = CollectorRegistry()
        registry.register(_AppCollector(svc, svc.faults, timer))
        timer.install()
        gc.collect()
        text = generate_latest(registry).decode()
    finally:
        timer.uninstall()
        svc.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    cpu = families["deletion_app_cpu_limit_cores"].samples[0].value
    assert cpu == cpu_limit_cores() and cpu > 0
    query = {s.name: s.value for s in families["deletion_app_db_query_duration_seconds"].samples}
    assert query["deletion_app_db_query_duration_seconds_count"] >= 2  # open() and SELECT 1
    gens = {
        s.labels["generation"]
        for s in families["deletion_app_gc_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert gens == {"0", "1", "2"}
