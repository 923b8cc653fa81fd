"""A tail range longer than --initial-chunk-rows is aggregated in chunks, with the same result.

A burst committed at once, or a backlog after an outage, reaches one poll as one (tx, id) range.
The poller cuts it into chunks of --initial-chunk-rows in that poll's snapshot (each statement's
temp space stays that of one chunk) and stores the merged chunks in one step. The counters must
be those of one aggregate over the range: the GROUP BY truth, the same series as a fresh
exporter's start-up, and the same table names kept under --max-tables whatever the chunks were.
"""

# ruff: noqa: F811  (run_exporter is a fixture imported from test_audit_exporter)
from __future__ import annotations

import threading
from typing import Any

import psycopg
from test_audit_exporter import (  # noqa: F401
    assert_exact,
    count_rows,
    edge_rows,
    ingested,
    insert,
    run_exporter,
    truth,
    wait_for,
)

from deletion_monitor.audit.exporter import ExporterConfig
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor_demo import workload


class CountingExporter(AuditExporter):
    """Counts the aggregate statements of the tail (after the start-up aggregate), on any of
    the connections that run them (audit/parallel.py)."""

    tail_aggregates = 0
    _count_lock = threading.Lock()

    def _aggregate_rows(self, conn: Any, bounds: Any) -> Any:
        if self._cursor is not None:
            with self._count_lock:
                self.tail_aggregates += 1
        return super()._aggregate_rows(conn, bounds)


def series(values: dict) -> dict:
    """The deletion_* series (not the process's own deletion_audit_* self-metrics)."""
    return {
        key: v
        for key, v in values.items()
        if key[0].startswith("deletion_") and not key[0].startswith("deletion_audit_")
    }


def test_burst_longer_than_a_chunk_is_exact_and_equals_a_startup(
    audit_dsn: str, run_exporter
) -> None:
    exporter = CountingExporter(
        ExporterConfig(dsn=audit_dsn, poll_interval=0.1, initial_chunk_rows=100)
    )
    try:
        port = exporter.serve("127.0.0.1", 0)
        wait_for(port, ingested(0))
        # One transaction each: every row reaches a single poll as one range of ~1000 rows.
        workload.insert_rows(audit_dsn, 1000, seed=5, invalid_rate=0.02, forbidden_rate=0.01)
        insert(audit_dsn, edge_rows())
        tailed = wait_for(port, ingested(count_rows(audit_dsn)))
        assert exporter.tail_aggregates >= 10  # the range really was cut into chunks
        assert_exact(tailed, truth(audit_dsn))
    finally:
        exporter.stop()
    # A fresh exporter aggregates the same rows at start-up in one chunk: identical series,
    # histogram sums and _created included.
    _, port2 = run_exporter(audit_dsn)
    started = wait_for(port2, ingested(count_rows(audit_dsn)))
    assert series(started) == series(tailed)


def test_table_cap_is_the_same_whatever_the_chunks(audit_dsn: str, run_exporter) -> None:
    """--max-tables keeps the first tables by (tx, id) appearance across chunk boundaries."""
    j = psycopg.types.json.Jsonb
    insert(audit_dsn, [{"rows_deleted": j({"known": 1})}])
    _, port = run_exporter(audit_dsn, max_tables=4, initial_chunk_rows=3)
    wait_for(port, ingested(1))
    # One transaction: 12 new tables, three per row, spread over four chunks of three rows; the
    # known table reappears in the last row.
    rows = [
        {"rows_deleted": j({f"t{3 * i + c:02d}": 10 + i for c in range(3)})} for i in range(4)
    ] + [{"rows_deleted": j({"known": 2, "t00": 5})}] * 8
    insert(audit_dsn, rows)
    tailed = wait_for(port, ingested(1 + len(rows)))
    tables = {
        dict(lbl)["table"]: v
        for (name, lbl), v in tailed.items()
        if name == "deletion_rows_deleted_total"
    }
    # known + the first three new tables in (tx, id) order (t00, t01, t02: row 1), the rest other
    assert tables == {"known": 1 + 16, "t00": 10 + 40, "t01": 10, "t02": 10, "other": 3 * 36}
    _, port2 = run_exporter(audit_dsn, max_tables=4)
    assert series(wait_for(port2, ingested(1 + len(rows)))) == series(tailed)
