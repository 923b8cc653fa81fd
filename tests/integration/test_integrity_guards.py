"""Integrity exporter guards against hostile or mistaken input, on a real PostgreSQL:
multi-statement SQL that gets past the validator, too many checks for the server's connections, and
checks that return millions of rows. What is refused before any database is contacted (absurd
numbers, SQL that is not one query, max_rows) is tests/unit/test_integrity_checks_file.py."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from support.checks import BASE, TWO_MILLION, _check_only

from deletion_monitor.integrity.checks import Check, parse_checks
from deletion_monitor.integrity.runner import connect, run_check
from deletion_monitor.integrity.scheduler import Scheduler


# --- C: exactly one statement ------------------------------------------------------------------
def _bypass(sql: str, timeout: float = 1.0) -> Check:
    """A check built without the validator, as if the load-time check had a hole."""
    return Check(
        name="bypass",
        category="consistency",
        severity="warning",
        sql=sql,
        interval=60,
        timeout=timeout,
    )


def _profiles(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM profiles").fetchone()[0]


@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT; DELETE FROM profiles; SELECT 0",
        # Shaped to survive the runner's LIMIT wrapper as three valid statements: only the
        # extended protocol stands between it and the table.
        "SELECT 1) q; COMMIT; DELETE FROM profiles; SELECT * FROM (SELECT 1",
    ],
)
def test_runner_cannot_run_a_second_statement_even_past_the_validator(
    app_dsn: str, sql: str
) -> None:
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        for i in range(3):
            conn.execute(
                "INSERT INTO profiles (id, email, type) VALUES (%s, %s, 'CLIENT')",
                (str(uuid.uuid4()), f"u{i}@example.com"),
            )
    conn = connect(app_dsn)
    try:
        result = run_check(conn, _bypass(sql))
    finally:
        conn.close()
    assert result.ok is False and result.error_kind == "sql"
    assert _profiles(app_dsn) == 3  # nothing was deleted


def test_runner_timeout_holds_against_commit_then_sleep(app_dsn: str) -> None:
    sql = "SELECT 1) q; COMMIT; SELECT pg_sleep(20); SELECT * FROM (SELECT 1"
    conn = connect(app_dsn)
    try:
        result = run_check(conn, _bypass(sql, timeout=1))
    finally:
        conn.close()
    assert result.ok is False and result.error_kind == "sql"
    assert "multiple commands" in (result.error or "")
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        sleeping = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert sleeping == 0


# --- D: a bounded pool -------------------------------------------------------------------------
def _connections(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE 'deletion-integrity%'"
        ).fetchone()[0]


def test_200_checks_share_a_small_pool_and_all_run(app_dsn: str) -> None:
    pool_size = 3
    checks = parse_checks(
        {
            "checks": [
                {**BASE, "name": f"c{i}", "sql": f"SELECT {i} - {i}", "interval": 2, "timeout": 2}
                for i in range(200)
            ]
        }
    )
    scheduler = Scheduler(app_dsn, checks, health_interval=0.2, pool_size=pool_size).start()
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _connections(app_dsn))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            snap = scheduler.state.snapshot()
            if all(st.last_success for st in snap.checks):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        sampler.join()
        scheduler.stop()
    snap = scheduler.state.snapshot()
    assert [st.check.name for st in snap.checks if not st.last_success] == []
    assert all(st.violations == 0 and st.errors_total == 0 for st in snap.checks)
    assert 1 <= peak <= pool_size + 1  # the pool plus the health probe's own connection


def test_check_waiting_longer_than_its_timeout_for_the_pool_is_a_failure(app_dsn: str) -> None:
    checks = parse_checks(
        {
            "checks": [
                {**BASE, "name": "slow", "sql": "SELECT count(*) - 1 FROM pg_sleep(1.5)"},
                {**BASE, "name": "impatient", "timeout": 0.3},
            ]
        }
    )
    scheduler = Scheduler(app_dsn, checks, health_interval=0.2, pool_size=1).start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            names = {st.check.name: st for st in scheduler.state.snapshot().checks}
            if names["impatient"].errors_total and names["slow"].last_success:
                break
            time.sleep(0.05)
    finally:
        scheduler.stop()
    names = {st.check.name: st for st in scheduler.state.snapshot().checks}
    assert names["slow"].up is True
    impatient = names["impatient"]
    assert impatient.up is False and "pool" in (impatient.last_error or "")
    assert impatient.queue_wait is not None and impatient.queue_wait > 0.3
    assert scheduler.state.snapshot().db_up is True  # a busy pool is not an outage


def test_check_only_verifies_every_check_against_the_database(
    app_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    rc, out, _ = _check_only(tmp_path, capsys, BASE, argv=("--dsn", app_dsn))
    assert rc == 0 and "1 checks valid" in out and "database accepted" in out
    missing = {**BASE, "name": "typo", "sql": "SELECT count(*) FROM profile"}
    rc, out, err = _check_only(tmp_path, capsys, BASE, missing, argv=("--dsn", app_dsn))
    assert rc == 2 and out == ""
    assert "checks[1] (typo).sql: rejected by the database" in err and "profile" in err
    # No DSN at all: exit 2, unless --file-only asks for the file alone (and it says so).
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, out, err = _check_only(tmp_path, capsys, BASE)
    assert rc == 2 and out == "" and "--dsn: required with --check-only" in err
    rc, out, _ = _check_only(tmp_path, capsys, BASE, argv=("--file-only",))
    assert rc == 0 and "database was not contacted" in out


# --- E: millions of rows -----------------------------------------------------------------------
def test_completeness_check_of_two_million_rows_reads_only_max_rows(app_dsn: str) -> None:
    (check,) = parse_checks(
        {"checks": [{**BASE, "name": "huge", "kind": "completeness", "sql": TWO_MILLION}]}
    )
    conn = connect(app_dsn)
    try:
        result = run_check(conn, check)
    finally:
        conn.close()
    assert result.ok and result.truncated
    assert result.rows_fetched == check.max_rows + 1 == 10_001
    assert result.audited == result.failures == result.violations == check.max_rows


def test_count_check_of_two_million_rows_is_a_shape_error_after_two(app_dsn: str) -> None:
    (check,) = parse_checks(
        {"checks": [{**BASE, "name": "huge", "sql": "SELECT 1 FROM generate_series(1, 2000000)"}]}
    )
    conn = connect(app_dsn)
    try:
        result = run_check(conn, check)
    finally:
        conn.close()
    assert (result.ok, result.error_kind) == (False, "result")
    assert "more than one row" in (result.error or "")


def test_truncation_is_counted_in_a_metric(app_dsn: str) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from deletion_monitor.integrity.collector import IntegrityCollector

    (check,) = parse_checks(
        {
            "checks": [
                {
                    **BASE,
                    "name": "huge",
                    "kind": "completeness",
                    "sql": TWO_MILLION,
                    "max_rows": 100,
                }
            ]
        }
    )
    scheduler = Scheduler(app_dsn, [check], health_interval=0.2, pool_size=1).start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not scheduler.state.snapshot().checks[0].up:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    registry = CollectorRegistry()
    registry.register(IntegrityCollector(scheduler.state))
    text = generate_latest(registry).decode()
    assert 'deletion_integrity_check_rows_truncated_total{check="huge"} 1.0' in text
    assert 'deletion_integrity_check_rows_fetched{check="huge"} 101.0' in text
    assert 'deletion_integrity_violations{category="consistency",check="huge"' in text
