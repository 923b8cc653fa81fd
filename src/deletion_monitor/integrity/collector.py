"""Prometheus collector for the integrity exporter: reads the scheduler's latest results.

collect() only copies in-memory state, so a scrape is instant and never touches the database,
however slow the checks are. Sample keys are deliberately absent: they are user ids and row ids,
unbounded and personal, and belong in the check-integrity report only.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deletion_monitor import __version__
from deletion_monitor.integrity.scheduler import IntegrityState


class IntegrityCollector(Collector):
    def __init__(self, state: IntegrityState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot()
        created = snap.started_at
        violations = GaugeMetricFamily(
            "deletion_integrity_violations",
            "Violations found by the last successful run of each integrity check.",
            labels=["check", "category", "severity"],
        )
        duration = GaugeMetricFamily(
            "deletion_integrity_check_duration_seconds",
            "Wall time of the last run of each check (successful or not).",
            labels=["check"],
        )
        last_success = GaugeMetricFamily(
            "deletion_integrity_check_last_success_timestamp_seconds",
            "Unix time of the last successful run of each check.",
            labels=["check"],
        )
        errors = CounterMetricFamily(
            "deletion_integrity_check_errors",
            "Failed runs of each check (SQL error, timeout, lost connection, bad result).",
            labels=["check"],
            created=created,
        )
        up = GaugeMetricFamily(
            "deletion_integrity_check_up",
            "1 if the last run of the check succeeded (also when it found the check not "
            "applicable), 0 if it failed.",
            labels=["check"],
        )
        applicable = GaugeMetricFamily(
            "deletion_integrity_check_applicable",
            "1 if every table the check reads exists (it ran), 0 if not: not applicable here, "
            "no violations series, neither clean nor failing.",
            labels=["check"],
        )
        truncated = CounterMetricFamily(
            "deletion_integrity_check_rows_truncated",
            "Runs whose result had more rows than the check's max_rows (only those were read).",
            labels=["check"],
            created=created,
        )
        fetched = GaugeMetricFamily(
            "deletion_integrity_check_rows_fetched",
            "Rows the last successful run read from the database (bounded by the check).",
            labels=["check"],
        )
        queue_wait = GaugeMetricFamily(
            "deletion_integrity_check_queue_wait_seconds",
            "How long the last run waited, once due, for a free pool connection.",
            labels=["check"],
        )
        for st in snap.checks:
            c = st.check
            # A check that has never succeeded has no violation value: absent, not a fake 0.
            if st.violations is not None:
                violations.add_metric([c.name, c.category, c.severity], st.violations)
            if st.duration is not None:
                duration.add_metric([c.name], st.duration)
            if st.last_success is not None:
                last_success.add_metric([c.name], st.last_success)
            errors.add_metric([c.name], st.errors_total, created=created)
            if st.up is not None:
                up.add_metric([c.name], 1.0 if st.up else 0.0)
            if st.applicable is not None:
                applicable.add_metric([c.name], 1.0 if st.applicable else 0.0)
            truncated.add_metric([c.name], st.truncated_total, created=created)
            if st.rows_fetched is not None:
                fetched.add_metric([c.name], st.rows_fetched)
            if st.queue_wait is not None:
                queue_wait.add_metric([c.name], st.queue_wait)
        yield from (violations, duration, last_success, errors, up, applicable)
        yield from (truncated, fetched, queue_wait)
        yield GaugeMetricFamily(
            "deletion_integrity_pool_size",
            "Database connections the checks share at most (--pool-size).",
            value=snap.pool_size,
        )

        yield CounterMetricFamily(
            "deletion_completeness_audited",
            "Successful deletions re-verified by the completeness audit.",
            value=snap.completeness_audited_total,
            created=created,
        )
        yield CounterMetricFamily(
            "deletion_completeness_failures",
            "Audited deletions that still had rows referencing the deleted user.",
            value=snap.completeness_failures_total,
            created=created,
        )
        db_up = GaugeMetricFamily(
            "deletion_integrity_up",
            "1 if the exporter reached the database on its last attempt, 0 if not.",
        )
        # Unknown until the first attempt: report 0 rather than claim a healthy database.
        db_up.add_metric([], 1.0 if snap.db_up else 0.0)
        yield db_up
        info = GaugeMetricFamily(
            "deletion_integrity_exporter_info",
            "Version of the integrity exporter (always 1).",
            labels=["version"],
        )
        info.add_metric([__version__], 1.0)
        yield info
