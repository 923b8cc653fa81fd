"""Chunks aggregated on several connections read one snapshot and give the sequential result.

audit/parallel.py: the poller's transaction exports its snapshot and helper connections import
it, so a chunk run on a helper reads exactly what it would on the poller's connection, even
while a retention purge deletes the rows and a writer commits new ones. Against real
PostgreSQL: the snapshot property itself, that the work really spreads over backends, the
fallback when no helper can connect, and an exporter with 2 connections against one with 1
(start-up and a burst, the table cap across chunk boundaries).
"""

# ruff: noqa: F811  (run_exporter is a fixture imported from test_audit_exporter)
from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest
from test_audit_exporter import (  # noqa: F401
    assert_exact,
    count_rows,
    ingested,
    run_exporter,
    truth,
    wait_for,
)
from test_audit_tail_chunks import series

from deletion_monitor.audit.exporter import ExporterConfig, connect
from deletion_monitor.audit.parallel import SnapshotHelpers
from deletion_monitor_demo import workload


def _count_in(conn: psycopg.Connection[Any], bounds: tuple[int, int]) -> tuple[int, int]:
    lo, hi = bounds
    row = conn.execute(
        "SELECT count(*) AS n, pg_backend_pid() AS pid FROM deletion_audit "
        "WHERE id > %s AND id <= %s",
        (lo, hi),
    ).fetchone()
    assert row is not None
    return int(row["n"]), int(row["pid"])


def _slow_count(conn: psycopg.Connection[Any], bounds: tuple[int, int]) -> tuple[int, int]:
    conn.execute("SELECT pg_sleep(0.3)")  # long enough that every worker takes a job
    return _count_in(conn, bounds)


def test_helpers_read_the_exported_snapshot(audit_dsn: str) -> None:
    workload.insert_rows(audit_dsn, 400, seed=1)
    cfg = ExporterConfig(dsn=audit_dsn)
    helpers = SnapshotHelpers(lambda: connect(cfg), size=3)
    jobs = [(0, 100), (100, 200), (200, 300), (300, 400)]
    conn = connect(cfg)
    try:
        with conn.transaction():
            conn.execute("SELECT 1")  # the snapshot is fixed by the first statement
            # After the snapshot: a retention purge and new rows, both committed.
            with psycopg.connect(audit_dsn, autocommit=True) as other:
                other.execute("DELETE FROM deletion_audit WHERE id <= 250")
                workload.insert_rows(audit_dsn, 50, seed=2)
            results = list(helpers.run(conn, jobs, _slow_count))
        assert [n for n, _pid in results] == [100, 100, 100, 100]  # the snapshot's rows
        assert len({pid for _n, pid in results}) == 3  # the poller's backend and two helpers
        # The same helpers serve the next range on that range's snapshot (the purge shows).
        with conn.transaction():
            conn.execute("SELECT 1")
            again = list(helpers.run(conn, jobs, _slow_count))
        assert [n for n, _pid in again] == [0, 0, 50, 100]
    finally:
        helpers.close()
        conn.close()


def test_no_helper_falls_back_to_one_connection(
    audit_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    workload.insert_rows(audit_dsn, 300, seed=3)
    cfg = ExporterConfig(dsn=audit_dsn)

    def refused() -> psycopg.Connection[Any]:
        raise psycopg.OperationalError("too many connections")

    helpers = SnapshotHelpers(refused, size=2)
    conn = connect(cfg)
    try:
        with caplog.at_level(logging.WARNING, logger="deletion_monitor.audit.exporter"):
            for _ in range(2):
                with conn.transaction():
                    conn.execute("SELECT 1")
                    results = list(helpers.run(conn, [(0, 150), (150, 300)], _count_in))
                assert [n for n, _pid in results] == [150, 150]
                assert len({pid for _n, pid in results}) == 1
        falls = [r for r in caplog.records if "one connection" in r.getMessage()]
        assert len(falls) == 1, "the fallback is logged once, not per range"
    finally:
        conn.close()


def test_two_connections_equal_one_at_startup_and_on_a_burst(audit_dsn: str, run_exporter) -> None:
    j = psycopg.types.json.Jsonb
    workload.insert_rows(audit_dsn, 900, seed=4, invalid_rate=0.02, forbidden_rate=0.01)
    with psycopg.connect(audit_dsn) as conn:  # more table names than --max-tables keeps
        for i in range(12):
            conn.execute(
                "INSERT INTO deletion_audit (outcome, duration_seconds, rows_deleted) "
                "VALUES ('success', 1, %s)",
                (j({f"extra_{i}": i + 1}),),
            )
    opts = {"initial_chunk_rows": 97, "max_tables": 8}
    _, parallel = run_exporter(audit_dsn, aggregate_connections=2, **opts)
    _, sequential = run_exporter(audit_dsn, aggregate_connections=1, **opts)
    rows = count_rows(audit_dsn)
    first = wait_for(parallel, ingested(rows))
    # Equal series, the capped table names included (the sequential path is checked against
    # the GROUP BY truth and the cap by test_audit_tail_chunks).
    assert series(first) == series(wait_for(sequential, ingested(rows)))
    assert sum(1 for key in first if key[0] == "deletion_rows_deleted_total") == 9  # 8 + other
    # A burst of ~10 chunks reaches one poll of each: still equal, and still the truth.
    workload.insert_rows(audit_dsn, 1000, seed=5)
    rows = count_rows(audit_dsn)
    tailed = wait_for(parallel, ingested(rows))
    assert series(tailed) == series(wait_for(sequential, ingested(rows)))


def test_default_exporter_is_exact_on_a_burst(audit_dsn: str, run_exporter) -> None:
    """The default (2 connections) against the GROUP BY truth, start-up and tail in chunks."""
    workload.insert_rows(audit_dsn, 500, seed=6, invalid_rate=0.02)
    _, port = run_exporter(audit_dsn, initial_chunk_rows=64)
    assert_exact(wait_for(port, ingested(count_rows(audit_dsn))), truth(audit_dsn))
    workload.insert_rows(audit_dsn, 700, seed=7, invalid_rate=0.02)
    assert_exact(wait_for(port, ingested(count_rows(audit_dsn))), truth(audit_dsn))
