"""The audit exporter against a real PostgreSQL: exact, lossless, bounded, survives the database.

The exporter runs in-process here (its real HTTP server on a free port, its real poller thread);
tests/integration/test_audit_exporter_cli.py runs it as a subprocess. Every comparison is between a
scrape parsed with prometheus_client's parser and an independent SQL GROUP BY over the table
(written differently from the exporter's own SQL: per-bound FILTER counts instead of width_bucket).
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from deletion_monitor.audit.exporter import ExporterConfig, scrape_values
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor.audit.state import (
    CASCADE_BUCKETS,
    DEFAULT_DURATION_BUCKETS,
    ERROR_TYPES,
    USER_TYPES,
)
from deletion_monitor_demo import workload

Key = tuple[str, tuple[tuple[str, str], ...]]

# An independent definition of "valid row" and of the label mapping, for the truth queries.
TRUTH_VIEW = r"""
CREATE OR REPLACE VIEW truth_rows AS
SELECT a.*,
       CASE WHEN target_user_type IN ('VENDOR','CLIENT','DRIVER','ADMIN','HELPDESK','SUPER_ADMIN')
            THEN target_user_type ELSE 'other' END AS ut,
       CASE WHEN error_type IN ('timeout','authorization','not_found','business_logic',
                                'constraint','database') THEN error_type ELSE 'unknown' END AS et,
       CASE WHEN jsonb_typeof(rows_deleted) = 'object'
            THEN (SELECT coalesce(sum(value::numeric), 0) FROM jsonb_each(rows_deleted)) END
           AS cascade
FROM {table} a
WHERE outcome IN ('success', 'failure')
  AND duration_seconds >= 0 AND duration_seconds <= 1e6  -- NaN is above every number in SQL
  AND occurred_at >= '0001-01-01 00:00:00+00' AND occurred_at < '10000-01-01 00:00:00+00'
  AND (rows_deleted IS NULL OR jsonb_typeof(rows_deleted) = 'null'
       OR (jsonb_typeof(rows_deleted) = 'object'
           AND NOT EXISTS (SELECT 1 FROM jsonb_each(rows_deleted) e
                           WHERE jsonb_typeof(e.value) <> 'number'
                              OR e.value::text !~ '^[0-9]{{1,15}}$')))
"""


def k(name: str, **labels: str) -> Key:
    return (name, tuple(sorted(labels.items())))


def _hist(out: dict[Key, float], name: str, bounds, rows, **labels: str) -> None:
    """rows: list of observed values -> cumulative buckets, count, sum."""
    for b in bounds:
        out[k(f"{name}_bucket", le=repr(float(b)), **labels)] = sum(1 for v in rows if v <= b)
    out[k(f"{name}_bucket", le="+Inf", **labels)] = len(rows)
    out[k(f"{name}_count", **labels)] = len(rows)
    out[k(f"{name}_sum", **labels)] = math.fsum(rows)


def truth(dsn: str, table: str = "deletion_audit", large: int = 100) -> dict[Key, float]:
    """Expected samples from GROUP BY queries over the table."""
    out: dict[Key, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TRUTH_VIEW.format(table=table))
        q = conn.execute
        for ut, n in q("SELECT ut, count(*) FROM truth_rows GROUP BY ut"):
            out[k("deletion_requests_total", user_type=ut)] = n
        for ut, et, n in q(
            "SELECT ut, et, count(*) FROM truth_rows WHERE outcome='failure' GROUP BY 1, 2"
        ):
            out[k("deletion_failures_total", user_type=ut, error_type=et)] = n
        for outcome, ut, ds in q(
            "SELECT outcome, ut, array_agg(duration_seconds) FROM truth_rows GROUP BY 1, 2"
        ):
            _hist(
                out,
                "deletion_duration_seconds",
                DEFAULT_DURATION_BUCKETS,
                ds,
                outcome=outcome,
                user_type=ut,
            )
        (ds,) = q(
            "SELECT coalesce(array_agg(duration_seconds), '{}') FROM truth_rows "
            "WHERE outcome = 'success' AND cascade >= %s",
            (large,),
        ).fetchone()
        _hist(out, "deletion_large_cascade_duration_seconds", DEFAULT_DURATION_BUCKETS, ds)
        (cs,) = q(
            "SELECT coalesce(array_agg(cascade), '{}') FROM truth_rows "
            "WHERE outcome = 'success' AND cascade IS NOT NULL"
        ).fetchone()
        _hist(out, "deletion_cascade_rows", CASCADE_BUCKETS, [float(c) for c in cs])
        for table_name, n in q(
            "SELECT e.key, sum(e.value::numeric) FROM truth_rows, jsonb_each(rows_deleted) e "
            "WHERE outcome = 'success' AND jsonb_typeof(rows_deleted) = 'object' GROUP BY 1"
        ):
            out[k("deletion_rows_deleted_total", table=table_name)] = float(n)
        for hour, n in q(
            "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'HH24'), count(*) FROM truth_rows "
            "GROUP BY 1"
        ):
            out[k("deletion_requests_by_hour_total", hour=hour)] = n
        for day, n in q(
            "SELECT lower(to_char(occurred_at AT TIME ZONE 'UTC', 'Dy')), count(*) "
            "FROM truth_rows GROUP BY 1"
        ):
            out[k("deletion_requests_by_weekday_total", weekday=day)] = n
        self_del, super_admin = q(
            "SELECT count(*) FILTER (WHERE performed_by = target_user_id), "
            "count(*) FILTER (WHERE target_user_type = 'SUPER_ADMIN') "
            "FROM truth_rows WHERE outcome = 'success'"
        ).fetchone()
        out[k("deletion_forbidden_successes_total", kind="self_deletion")] = self_del
        out[k("deletion_forbidden_successes_total", kind="super_admin")] = super_admin
        (total,) = q(f"SELECT count(*) FROM {table}").fetchone()
        out[k("deletion_audit_rows_ingested_total")] = total
        (valid,) = q("SELECT count(*) FROM truth_rows").fetchone()
        out[("invalid_total", ())] = total - valid
    return out


def assert_exact(scraped: dict[Key, float], expected: dict[Key, float]) -> None:
    """Every expected sample matches (sums to 1e-9 relative); no unexpected non-zero series."""
    invalid = sum(v for (n, _), v in scraped.items() if n == "deletion_audit_invalid_rows_total")
    assert invalid == expected[("invalid_total", ())]
    mismatches = []
    for key, want in expected.items():
        if key[0] == "invalid_total":
            continue
        got = scraped.get(key, 0.0 if not key[0].endswith("_sum") else None)
        ok = got is not None and (
            math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
            if key[0].endswith("_sum")
            else got == want
        )
        if not ok:
            mismatches.append((key, got, want))
    families = {n for n, _ in expected}
    for key, value in scraped.items():
        if key[0] in families and key not in expected and value != 0:
            mismatches.append((key, value, "absent"))
    assert not mismatches, mismatches[:10]


def scrape(port: int) -> dict[Key, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return dict(scrape_values(resp.read().decode()))


def wait_for(
    port: int, predicate: Callable[[dict[Key, float]], bool], timeout: float = 20.0
) -> dict[Key, float]:
    deadline = time.monotonic() + timeout
    while True:
        values = scrape(port)
        if predicate(values):
            return values
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(0.05)


def ingested(n: int) -> Callable[[dict[Key, float]], bool]:
    return lambda v: v.get(k("deletion_audit_rows_ingested_total")) == n


def count_rows(dsn: str, table: str = "deletion_audit") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def run_exporter() -> Iterator[Callable[..., tuple[AuditExporter, int]]]:
    started: list[AuditExporter] = []

    def start(dsn: str, **kwargs) -> tuple[AuditExporter, int]:
        cfg = ExporterConfig(dsn=dsn, poll_interval=kwargs.pop("poll_interval", 0.1), **kwargs)
        exporter = AuditExporter(cfg)
        started.append(exporter)
        return exporter, exporter.serve("127.0.0.1", 0)

    yield start
    for exporter in started:
        exporter.stop()


def insert(dsn: str, rows: list[dict], table: str = "deletion_audit") -> None:
    """Insert hand-written rows (each dict: column -> value), one transaction."""
    with psycopg.connect(dsn) as conn:
        for row in rows:
            row = {"outcome": "success", "duration_seconds": 1.0, **row}
            cols = ", ".join(row)
            marks = ", ".join(["%s"] * len(row))
            conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))


def edge_rows() -> list[dict]:
    """Boundaries and oddities: exact bucket bounds, unknown labels, forbidden, malformed."""
    j = psycopg.types.json.Jsonb
    return [
        {"duration_seconds": 0.05, "target_user_type": "CLIENT"},  # exactly le=0.05
        {"duration_seconds": 5.0, "target_user_type": "DRIVER", "rows_deleted": j({"x": 100})},
        {"duration_seconds": 30.0, "target_user_type": "VENDOR", "rows_deleted": j({})},
        {"duration_seconds": 31.0, "target_user_type": "VENDOR", "rows_deleted": j({"a": 5000})},
        {"duration_seconds": 0.0, "target_user_type": "ADMIN", "rows_deleted": j({"a": 5})},
        {"target_user_type": "lowercase_client"},  # -> other
        {"target_user_type": None},  # -> other
        {"outcome": "failure", "error_type": "timeout", "duration_seconds": 12.5},
        {"outcome": "failure", "error_type": "P2025 weird", "target_user_type": "CLIENT"},
        {"outcome": "failure", "error_type": None, "target_user_type": "HELPDESK"},
        {"target_user_type": "SUPER_ADMIN"},  # forbidden success
        {"performed_by": "u1", "target_user_id": "u1", "target_user_type": "CLIENT"},  # self
        {"occurred_at": datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)},  # a Sunday, hour 23
        # malformed: each counted once in invalid_rows_total and nowhere else
        {"outcome": "partial"},
        {"duration_seconds": -0.5},
        {"duration_seconds": float("nan")},
        {"duration_seconds": float("inf")},
        {"rows_deleted": j({"sessions": -1})},
        {"rows_deleted": j({"sessions": "3"})},
        {"rows_deleted": j({"sessions": 1.5})},
        {"rows_deleted": j({"sessions": 2.0})},  # counts are integers, written as such
        {"rows_deleted": j({"a": 1, "b": {"c": 2}})},
        {"rows_deleted": j({"a": None})},
        {"rows_deleted": j([1, 2])},
    ]


def test_startup_and_tail_are_exact(audit_dsn: str, run_exporter) -> None:
    """Start-up aggregate and tailed batches both equal the GROUP BY truth, edge rows included."""
    workload.insert_rows(audit_dsn, 1500, seed=1, invalid_rate=0.01, forbidden_rate=0.01)
    insert(audit_dsn, edge_rows())
    _, port = run_exporter(audit_dsn, batch_size=300)
    values = wait_for(port, ingested(count_rows(audit_dsn)))
    assert_exact(values, truth(audit_dsn))
    assert values[k("deletion_audit_invalid_rows_total", reason="bad_rows_deleted")] >= 4
    assert values[k("deletion_requests_total", user_type="other")] == 4  # 2 odd + 2 unset

    # Tail: more rows in several transactions and batches (batch_size 300 < 1200 new rows).
    workload.insert_rows(audit_dsn, 700, seed=2, invalid_rate=0.02)
    insert(audit_dsn, edge_rows())
    now = datetime.now(UTC)  # a deploy after everything above: the newest first appearance
    workload.insert_rows(
        audit_dsn, 500, seed=3, app_versions=("2.5.0",), start=now, end=now + timedelta(minutes=5)
    )
    values = wait_for(port, ingested(count_rows(audit_dsn)))
    assert_exact(values, truth(audit_dsn))
    assert values[k("deletion_app_version_info", app_version="2.5.0")] == 1
    assert values[k("deletion_audit_up")] == 1


def test_transaction_open_across_startup_is_neither_lost_nor_double_counted(
    audit_dsn: str, run_exporter
) -> None:
    """A writer that took a lower id and commits after start-up and after later rows."""
    workload.insert_rows(audit_dsn, 50, seed=4)
    slow = psycopg.connect(audit_dsn)
    slow.execute(
        "INSERT INTO deletion_audit (outcome, duration_seconds, target_user_type) "
        "VALUES ('failure', 2.0, 'DRIVER')"
    )  # not committed: holds a lower id and the xmin horizon
    insert(audit_dsn, [{"target_user_type": "VENDOR"}] * 3)  # higher ids, committed
    try:
        _, port = run_exporter(audit_dsn)
        values = wait_for(port, lambda v: k("deletion_requests_total", user_type="VENDOR") in v)
        # Start-up took only rows below the open transaction: the 50, not the 3 behind it.
        assert values[k("deletion_audit_rows_ingested_total")] == 50
        time.sleep(0.5)
        insert(audit_dsn, [{"target_user_type": "ADMIN"}])
        values = wait_for(port, lambda v: v[k("deletion_audit_cursor_lag_seconds")] > 0.2)
        assert values[k("deletion_audit_rows_ingested_total")] == 50  # held back, not skipped
        slow.commit()
    finally:
        slow.close()
    values = wait_for(port, ingested(55))
    assert_exact(values, truth(audit_dsn))
    assert values[k("deletion_audit_cursor_lag_seconds")] == 0
    assert values[k("deletion_failures_total", user_type="DRIVER", error_type="unknown")] >= 1


def test_late_commit_after_later_rows_were_read(audit_dsn: str, run_exporter) -> None:
    """Rows read, then a lower-id transaction commits: counted exactly once, nothing skipped."""
    _, port = run_exporter(audit_dsn)
    wait_for(port, ingested(0))
    slow = psycopg.connect(audit_dsn)
    slow.execute(
        "INSERT INTO deletion_audit (outcome, duration_seconds, target_user_type) "
        "VALUES ('success', 0.3, 'HELPDESK')"
    )
    (slow_id,) = slow.execute("SELECT max(id) FROM deletion_audit").fetchone()
    # Later transactions commit first; they are held back behind the open one, not passed.
    insert(audit_dsn, [{"target_user_type": "CLIENT"}] * 2)
    workload.insert_rows(audit_dsn, 200, seed=5)
    time.sleep(0.4)  # several polls while the slow transaction is open
    values = scrape(port)
    assert values[k("deletion_audit_rows_ingested_total")] == 0
    slow.commit()
    slow.close()
    with psycopg.connect(audit_dsn) as conn:
        assert conn.execute("SELECT min(id) FROM deletion_audit").fetchone()[0] == slow_id
    values = wait_for(port, ingested(203))
    assert_exact(values, truth(audit_dsn))
    # A committed writer ahead of a still-running one: stream concurrently while checking.
    workload.stream_rows(audit_dsn, rate=400, duration=0.5, seed=6)
    values = wait_for(port, ingested(count_rows(audit_dsn)))
    assert_exact(values, truth(audit_dsn))


def test_database_outage_serves_last_values_and_catches_up(
    pg_cluster, audit_dsn: str, run_exporter
) -> None:
    workload.insert_rows(audit_dsn, 300, seed=7)
    _, port = run_exporter(audit_dsn, poll_interval=0.1, max_backoff=0.5)
    before = wait_for(port, ingested(300))
    pg_cluster.stop()
    try:
        down = wait_for(
            port,
            lambda v: (
                v[k("deletion_audit_up")] == 0 and v[k("deletion_audit_poll_errors_total")] >= 2
            ),
        )
        # Last values still served; a scrape does not need the database.
        for key, value in before.items():
            if key[0].startswith("deletion_") and not key[0].startswith("deletion_audit"):
                assert down[key] == value, key
    finally:
        pg_cluster.start()
    workload.insert_rows(audit_dsn, 250, seed=8)
    values = wait_for(port, ingested(550))
    assert values[k("deletion_audit_up")] == 1
    assert_exact(values, truth(audit_dsn))


def test_label_values_stay_bounded(audit_dsn: str, run_exporter) -> None:
    """Tables capped (first N by (tx, id) appearance keep their name), app versions last 5."""
    j = psycopg.types.json.Jsonb
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "rows_deleted": j({f"t{i:02d}": 1}),
            "app_version": f"1.{i}",
            "occurred_at": t0 + timedelta(hours=i),
        }
        for i in range(8)
    ]
    insert(audit_dsn, rows[:4])
    _, port = run_exporter(audit_dsn, max_tables=3)
    wait_for(port, ingested(4))
    insert(audit_dsn, rows[4:])
    insert(audit_dsn, [{"rows_deleted": j({"t01": 2, "zz": 7})}])
    values = wait_for(port, ingested(9))
    tables = {
        dict(lbl)["table"]: v
        for (n, lbl), v in values.items()
        if n == "deletion_rows_deleted_total"
    }
    assert tables == {"t00": 1, "t01": 3, "t02": 1, "other": 5 + 7}
    versions = {
        dict(lbl)["app_version"]
        for (n, lbl), _ in values.items()
        if n == "deletion_app_version_first_seen_timestamp_seconds"
    }
    assert versions == {f"1.{i}" for i in range(3, 8)}
    assert values[k("deletion_app_version_info", app_version="1.7")] == 1
    assert values[k("deletion_app_version_first_seen_timestamp_seconds", app_version="1.7")] == (
        (t0 + timedelta(hours=7)).timestamp()
    )
    # A fresh exporter (restart) computes the same cap from the table alone.
    _, port2 = run_exporter(audit_dsn, max_tables=3)
    again = wait_for(port2, ingested(9))
    tables2 = {
        dict(lbl)["table"]: v for (n, lbl), v in again.items() if n == "deletion_rows_deleted_total"
    }
    assert tables2 == tables


def test_permissive_table_null_duration_counted_without_latency(pg_dsn: str, run_exporter) -> None:
    """--table pointing at a table without NOT NULL: a NULL duration is a call whose latency was
    never recorded (the legacy audit_logs): counted as a call, observed in no histogram."""
    from test_audit_exporter_schema import SCHEMA

    from deletion_monitor_demo.pgcluster import apply_sql_file

    apply_sql_file(pg_dsn, SCHEMA)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA legacy")
        conn.execute("CREATE TABLE legacy.audit (LIKE deletion_audit INCLUDING ALL)")
        conn.execute("ALTER TABLE legacy.audit ALTER duration_seconds DROP NOT NULL")
    insert(pg_dsn, [{"duration_seconds": None}, {"duration_seconds": 1.5}], table="legacy.audit")
    _, port = run_exporter(pg_dsn, table="legacy.audit")
    values = wait_for(port, ingested(2))
    assert not any(v for (n, _), v in values.items() if n == "deletion_audit_invalid_rows_total")
    assert values[k("deletion_requests_total", user_type="other")] == 2
    labels = {"outcome": "success", "user_type": "other"}
    assert values[k("deletion_requests_without_duration_total", **labels)] == 1
    assert values[k("deletion_duration_seconds_count", **labels)] == 1
    assert values[k("deletion_duration_seconds_sum", **labels)] == 1.5


def test_every_failure_series_exists_before_the_first_failure(
    audit_dsn: str, run_exporter: Callable[..., tuple[AuditExporter, int]]
) -> None:
    """rate()/increase() need a sample before the first failure, or that failure is lost."""
    workload.insert_rows(audit_dsn, 20, seed=1, error_rate=0.0)
    _, port = run_exporter(audit_dsn)
    values = wait_for(port, lambda v: v.get(k("deletion_audit_rows_ingested_total")) == 20)
    for ut in USER_TYPES:
        for et in ERROR_TYPES:
            assert values[k("deletion_failures_total", user_type=ut, error_type=et)] == 0
