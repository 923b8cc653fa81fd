"""Integrity exporter guards against hostile or mistaken input, on a real PostgreSQL:
absurd numbers, multi-statement SQL, too many checks for the server's connections, and checks
that return millions of rows."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from deletion_monitor.cli import main
from deletion_monitor.integrity.checks import Check, parse_checks
from deletion_monitor.integrity.runner import connect, run_check
from deletion_monitor.integrity.scheduler import Scheduler
from deletion_monitor_demo.services import free_port

BASE: dict[str, Any] = {
    "name": "ok_check",
    "category": "consistency",
    "severity": "warning",
    "sql": "SELECT 0",
    "interval": 60,
    "timeout": 10,
}


def _file(tmp_path: Path, *checks: dict[str, Any]) -> Path:
    path = tmp_path / "checks.yml"
    path.write_text(yaml.safe_dump({"checks": list(checks)}))
    return path


def _check_only(tmp_path: Path, capsys, *checks: dict[str, Any], argv=()) -> tuple[int, str, str]:
    path = _file(tmp_path, *checks)
    try:
        rc = main(["integrity-exporter", "--check-only", "--checks", str(path), *argv])
    except SystemExit as exc:  # argparse errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


# --- B: absurd numbers -------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["interval", "timeout"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e309", "0", "1e9", "-5"])
def test_non_finite_or_absurd_seconds_in_yaml_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, field: str, value: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    path = tmp_path / "checks.yml"
    other = "interval: 86400" if field == "timeout" else "timeout: 1"
    path.write_text(
        "checks:\n  - {name: ok_check, category: consistency, severity: info, sql: SELECT 0, "
        f"{field}: {value}, {other}}}\n"
    )
    rc = main(["integrity-exporter", "--check-only", "--checks", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert f"checks[0] (ok_check).{field}: must be a finite number of seconds" in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--health-interval", "nan"),
        ("--health-interval", "inf"),
        ("--health-interval", "0"),
        ("--health-interval", "-1"),
        ("--health-interval", "1e9"),
        ("--pool-size", "0"),
        ("--pool-size", "1000"),
        ("--pool-size", "two"),
    ],
)
def test_absurd_flags_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, flag: str, value: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, _, err = _check_only(tmp_path, capsys, BASE, argv=(flag, value))
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and flag in err and "Traceback" not in err


# --- C: exactly one statement ------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT; DELETE FROM profiles; SELECT 0",
        "SELECT 0; SELECT 1",
        "COMMIT; SELECT pg_sleep(30)",
        "SELECT 1 /* ; */ ; SET statement_timeout = 0",
        "DELETE FROM profiles",
        "-- only a comment",
    ],
)
def test_multi_statement_or_non_query_sql_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, sql: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, out, err = _check_only(tmp_path, capsys, {**BASE, "sql": sql})
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "checks[0] (ok_check).sql: " in err


def test_semicolons_inside_literals_comments_and_dollar_quotes_are_one_statement() -> None:
    for sql in (
        "SELECT count(*) FROM pg_class WHERE relname <> ';';",
        "SELECT length($$a;b$$) - 3 -- trailing; comment",
        'SELECT 0 AS ";" /* ; */',
        "WITH x AS (SELECT E'\\';' AS v) SELECT count(*) - 1 FROM x",
    ):
        (check,) = parse_checks({"checks": [{**BASE, "sql": sql}]})
        assert check.sql == sql


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


def test_check_only_connects_and_fails_on_a_dead_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    rc, out, err = _check_only(tmp_path, capsys, BASE, argv=("--dsn", dead))
    assert rc == 2 and "valid" not in out
    assert len(err.strip().splitlines()) == 1 and "--dsn: cannot connect" in err


def test_check_only_verifies_every_check_against_the_database(
    app_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    rc, out, _ = _check_only(tmp_path, capsys, BASE, argv=("--dsn", app_dsn))
    assert rc == 0 and "1 checks valid" in out and "database accepted" in out
    missing = {**BASE, "name": "typo", "sql": "SELECT count(*) FROM profile"}
    rc, out, err = _check_only(tmp_path, capsys, BASE, missing, argv=("--dsn", app_dsn))
    assert rc == 2 and out == ""
    assert "checks[1] (typo).sql: rejected by the database" in err and "profile" in err
    # No DSN at all: it says plainly that only the file was checked.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, out, _ = _check_only(tmp_path, capsys, BASE)
    assert rc == 0 and "database was not contacted" in out


# --- E: millions of rows -----------------------------------------------------------------------
TWO_MILLION = "SELECT g::text, ARRAY['sessions'] FROM generate_series(1, 2000000) g"


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


def test_max_rows_is_validated(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for extra, word in (
        ({"max_rows": 0}, "between 1 and"),
        ({"max_rows": 10**9}, "between 1 and"),
        ({"max_rows": "lots"}, "whole number"),
    ):
        check = {**BASE, "kind": "completeness", "sql": TWO_MILLION, **extra}
        rc, _, err = _check_only(tmp_path, capsys, check)
        assert rc == 2 and "(ok_check).max_rows: " in err and word in err
    rc, _, err = _check_only(tmp_path, capsys, {**BASE, "max_rows": 5})
    assert rc == 2 and "only used by kind completeness" in err
