"""The integrity exporter against a real PostgreSQL: background scheduling, isolation of broken
and slow checks, server-side cancellation, surviving a database outage, and the HTTP endpoint
compared with database truth."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from deletion_monitor.data import schema_path
from deletion_monitor.integrity.checks import Check, parse_checks
from deletion_monitor.integrity.collector import IntegrityCollector
from deletion_monitor.integrity.scheduler import CheckStatus, Scheduler
from deletion_monitor_demo.pgcluster import REPO_ROOT, PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port, wait_http

ORPHAN_SQL = (
    "SELECT count(*) FROM sessions c WHERE NOT EXISTS "
    '(SELECT 1 FROM profiles p WHERE p.id = c."userId")'
)


def _checks(*entries: dict) -> list[Check]:
    base = {
        "category": "foreign_key",
        "severity": "warning",
        "tables": [],
        "interval": 0.3,
        "timeout": 0.3,
    }
    return parse_checks({"checks": [{**base, **e} for e in entries]})


def _seed_orphan_sessions(dsn: str, n: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for _ in range(n):
            conn.execute(
                'INSERT INTO sessions ("sessionToken", "userId", expires) VALUES (%s, %s, now())',
                (str(uuid.uuid4()), str(uuid.uuid4())),
            )


def _wait(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(scheduler: Scheduler, name: str) -> CheckStatus:
    return next(s for s in scheduler.state.snapshot().checks if s.check.name == name)


def _scrape(scheduler: Scheduler) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(IntegrityCollector(scheduler.state))
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_broken_check_only_raises_its_own_error_counter(
    app_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    _seed_orphan_sessions(app_dsn, 3)
    checks = _checks(
        {"name": "orphans", "sql": ORPHAN_SQL},
        {"name": "broken", "sql": "SELECT count(*) FROM no_such_table"},
    )
    caplog.set_level(logging.INFO, logger="deletion_monitor.integrity")
    scheduler = Scheduler(app_dsn, checks, health_interval=0.2).start()
    try:
        _wait(lambda: _status(scheduler, "broken").errors_total >= 3, what="3 broken runs")
        first_success = _status(scheduler, "orphans").last_success
        _wait(lambda: _status(scheduler, "orphans").last_success > first_success, what="rerun")
        metrics = _scrape(scheduler)
    finally:
        scheduler.stop()
    good, bad = _status(scheduler, "orphans"), _status(scheduler, "broken")
    assert (good.up, good.violations, good.errors_total) == (True, 3, 0)
    assert (bad.up, bad.violations, bad.last_success) == (False, None, None)
    assert (
        metrics[
            (
                "deletion_integrity_violations",
                (("category", "foreign_key"), ("check", "orphans"), ("severity", "warning")),
            )
        ]
        == 3
    )
    assert metrics[("deletion_integrity_check_errors_total", (("check", "orphans"),))] == 0
    assert metrics[("deletion_integrity_check_errors_total", (("check", "broken"),))] >= 3
    assert metrics[("deletion_integrity_check_up", (("check", "broken"),))] == 0
    assert metrics[("deletion_integrity_check_up", (("check", "orphans"),))] == 1
    assert metrics[("deletion_integrity_up", ())] == 1  # an SQL error is not an outage
    # A broken check has no violation value rather than a misleading 0.
    assert not [
        k
        for k in metrics
        if k[0] == "deletion_integrity_violations" and ("check", "broken") in k[1]
    ]
    # One clear line for the broken check, however many times it failed.
    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1
    assert "integrity check broken failed (sql)" in lines[0].getMessage()
    assert 'relation "no_such_table" does not exist' in lines[0].getMessage()


def test_slow_check_is_cancelled_on_the_server_and_never_delays_others(app_dsn: str) -> None:
    checks = _checks(
        # interval 60: exactly one run during the test
        {
            "name": "slow",
            "sql": "SELECT count(*) FROM (SELECT pg_sleep(30)) s",
            "interval": 60,
            "timeout": 1,
        },
        {"name": "fast", "sql": "SELECT 0", "interval": 0.1, "timeout": 0.1},
    )
    scheduler = Scheduler(app_dsn, checks, health_interval=0.2).start()
    try:
        _wait(lambda: (_status(scheduler, "fast").last_success or 0) > 0, what="fast check")
        # While the slow query is still sleeping on the server, a scrape answers from memory:
        # the fast check's result is there, the slow one has no result yet.
        during = _scrape(scheduler)
        assert during[("deletion_integrity_check_up", (("check", "fast"),))] == 1
        assert ("deletion_integrity_check_up", (("check", "slow"),)) not in during
        _wait(lambda: _status(scheduler, "slow").errors_total == 1, what="slow check timeout")
        slow = _status(scheduler, "slow")
        fast = _status(scheduler, "fast")
        with psycopg.connect(app_dsn, autocommit=True) as conn:
            running = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s "
                "AND state = 'active' AND pid <> pg_backend_pid()",
                ("%pg_sleep(30)%",),
            ).fetchone()[0]
    finally:
        scheduler.stop()
    assert running == 0  # the server cancelled it: no backend still sleeps
    assert slow.up is False and "timed out after 1s" in slow.last_error
    assert 0.9 < slow.duration < 5  # ended by the 1 s statement_timeout, not the 30 s sleep
    # The fast check kept its 0.1 s schedule while the slow one was blocked.
    assert fast.errors_total == 0 and fast.up is True
    assert fast.last_success > time.time() - 1.0


def test_database_outage_is_survived(tmp_path: Path) -> None:
    """Its own cluster: stopping the shared one would break every other test."""
    cluster = PgCluster()
    cluster.start()
    try:
        dsn = cluster.create_database("outage")
        apply_sql_file(dsn, schema_path("reference_app.sql"))
        _seed_orphan_sessions(dsn, 2)
        checks = _checks({"name": "orphans", "sql": ORPHAN_SQL})
        scheduler = Scheduler(dsn, checks, health_interval=0.2).start()
        try:
            _wait(lambda: _status(scheduler, "orphans").violations == 2, what="first result")
            assert scheduler.state.snapshot().db_up is True
            cluster.stop()
            _wait(lambda: scheduler.state.snapshot().db_up is False, what="db down")
            _wait(lambda: _status(scheduler, "orphans").up is False, what="check down")
            down = _status(scheduler, "orphans")
            # The last known value stays exported; freshness shows in last_success.
            assert down.violations == 2 and down.errors_total >= 1
            metrics = _scrape(scheduler)
            assert metrics[("deletion_integrity_up", ())] == 0
            assert metrics[("deletion_integrity_check_up", (("check", "orphans"),))] == 0

            cluster.start()
            _wait(lambda: scheduler.state.snapshot().db_up is True, what="db back")
            _wait(
                lambda: (_status(scheduler, "orphans").last_success or 0) > down.last_success,
                timeout=20,
                what="check succeeding again",
            )
            back = _status(scheduler, "orphans")
            assert back.up is True and back.violations == 2
        finally:
            scheduler.stop()
    finally:
        cluster.destroy()


# A fast orphan check (0.5 s interval) for the exporter-as-a-process tests.
ORPHAN_CHECK: dict[str, Any] = {
    "name": "orphaned_sessions",
    "category": "foreign_key",
    "severity": "critical",
    "tables": ["sessions", "profiles"],
    "sql": ORPHAN_SQL,
    "interval": 0.5,
    "timeout": 0.5,
}


def _checks_file(tmp_path: Path, *checks: dict[str, Any]) -> Path:
    path = tmp_path / "checks.yml"
    path.write_text(yaml.safe_dump({"checks": list(checks)}))
    return path


def _exporter(dsn: str, checks_file: Path, port: int, log: Path) -> ManagedProcess:
    return ManagedProcess(
        [
            sys.executable,
            "-m",
            "deletion_monitor",
            "integrity-exporter",
            "--dsn",
            dsn,
            "--checks",
            str(checks_file),
            "--listen",
            f"127.0.0.1:{port}",
            "--health-interval",
            "0.2",
            "--log-level",
            "debug",
        ],
        log,
        env={"PYTHONPATH": str(REPO_ROOT / "exporters")},
    )


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_exporter_http_matches_database_truth_and_hides_the_password(
    app_dsn: str, tmp_path: Path
) -> None:
    _seed_orphan_sessions(app_dsn, 4)
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        truth = conn.execute(ORPHAN_SQL).fetchone()[0]
        orphan_user = conn.execute('SELECT "userId"::text FROM sessions LIMIT 1').fetchone()[0]
    checks_file = _checks_file(
        tmp_path,
        ORPHAN_CHECK,
        {
            "name": "deletion_completeness_audit",
            "category": "cascade",
            "severity": "critical",
            "kind": "completeness",
            "tables": ["deletion_audit"],
            "interval": 0.5,
            "timeout": 0.5,
            "sql": "SELECT target_user_id, ARRAY['sessions'] FROM deletion_audit "
            "WHERE outcome = %(outcome)s",
            "params": {"outcome": "success"},
        },
    )
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        for _ in range(2):
            conn.execute(
                "INSERT INTO deletion_audit (outcome, duration_seconds, target_user_id) "
                "VALUES ('success', 0.1, %s)",
                (str(uuid.uuid4()),),
            )
    # Trust auth accepts any password: the DSN carries one so we can look for it in the log.
    secret = "Pa55wordNeverLogged"
    dsn = app_dsn.replace("postgres@", f"postgres:{secret}@")
    port = free_port()
    log = tmp_path / "exporter.log"
    with _exporter(dsn, checks_file, port, log) as proc:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        _wait(
            lambda: (_value(_metrics(port), "deletion_completeness_audited_total") or 0) >= 4,
            what="two completeness runs",
        )
        text = _metrics(port)
        proc.signal(signal.SIGTERM)
        assert proc.proc.wait(10) == 0
    assert (
        _value(
            text,
            "deletion_integrity_violations",
            check="orphaned_sessions",
            category="foreign_key",
            severity="critical",
        )
        == truth
        == 4
    )
    audited = _value(text, "deletion_completeness_audited_total")
    assert audited % 2 == 0 and _value(text, "deletion_completeness_failures_total") == audited
    assert _value(text, "deletion_integrity_up") == 1
    assert _value(text, "deletion_integrity_check_up", check="orphaned_sessions") == 1
    assert _value(text, "deletion_integrity_check_errors_total", check="orphaned_sessions") == 0
    assert _value(text, "deletion_integrity_check_duration_seconds", check="orphaned_sessions") > 0
    assert (
        abs(
            _value(
                text,
                "deletion_integrity_check_last_success_timestamp_seconds",
                check="orphaned_sessions",
            )
            - time.time()
        )
        < 30
    )
    assert _value(text, "deletion_integrity_exporter_info", version="0.1.0") == 1
    assert orphan_user not in text  # sample keys never become labels
    logged = log.read_text()
    assert secret not in logged
    entries = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any("listening" in e["msg"] and "***" in e.get("dsn", "") for e in entries)


def test_exporter_starts_with_database_down_and_reports_it(tmp_path: Path) -> None:
    secret = "An0therSecret"
    dsn = f"postgresql://postgres:{secret}@127.0.0.1:{free_port()}/app"
    checks_file = _checks_file(tmp_path, ORPHAN_CHECK)
    port = free_port()
    log = tmp_path / "exporter.log"
    with _exporter(dsn, checks_file, port, log):
        wait_http(f"http://127.0.0.1:{port}/metrics")
        _wait(
            lambda: (
                _value(
                    _metrics(port),
                    "deletion_integrity_check_errors_total",
                    check="orphaned_sessions",
                )
                >= 1
            ),
            what="a failed run",
        )
        text = _metrics(port)
    assert _value(text, "deletion_integrity_up") == 0
    assert _value(text, "deletion_integrity_check_up", check="orphaned_sessions") == 0
    assert _value(text, "deletion_integrity_violations", check="orphaned_sessions") is None
    logged = log.read_text()
    assert "cannot connect" in logged and secret not in logged


def test_exporter_bad_flags_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "exporters")}
    for argv, field in (
        (["--listen", "nope"], "--listen"),
        (["--dsn", "nonsense", "--listen", f"127.0.0.1:{free_port()}"], "--dsn"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "deletion_monitor", "integrity-exporter", *argv],
            capture_output=True,
            text=True,
            env={**env, "DATABASE_URL": "postgresql://x@h/db"},
            timeout=30,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and field in proc.stderr
