"""`deletion-monitor audit-exporter` as a real subprocess: restart stability and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from test_audit_exporter import Key, assert_exact, k, truth

from deletion_monitor.audit.exporter import scrape_values
from deletion_monitor.data import schema_path
from deletion_monitor_demo import workload
from deletion_monitor_demo.services import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "deletion_monitor", "audit-exporter"]
PASSWORD = "s3cr3t-Pa55"
# Series that belong to one process (they legitimately differ after a restart).
PROCESS_LOCAL = (
    "process_",
    "deletion_audit_poll_",
    "deletion_audit_last_poll_success",
    "deletion_audit_initial_load",
    "deletion_audit_up",
    "deletion_audit_cursor_lag",
    # How this process started and its checkpoint writes (tests/integration/test_audit_checkpoint).
    "deletion_audit_startup_info",
    "deletion_audit_checkpoint_",
)


def with_password(dsn: str) -> str:
    # Trust authentication ignores the password, so the exporter really runs with it.
    return dsn.replace("postgres@", f"postgres:{PASSWORD}@")


def start(dsn: str, tmp_path: Path, name: str, avoid: int = 0) -> tuple[ManagedProcess, int]:
    port = free_port()
    while port == avoid:  # a port picked but not yet bound can be handed out twice
        port = free_port()
    proc = ManagedProcess(
        [*CLI, "--dsn", dsn, "--listen", f"127.0.0.1:{port}", "--poll-interval", "0.2"],
        tmp_path / f"{name}.log",
    )
    return proc, port


def scrape_when_loaded(proc: ManagedProcess, port: int, rows: int) -> dict[Key, float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.alive(), proc.log_tail()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                values = dict(scrape_values(r.read().decode()))
            if values.get(k("deletion_audit_rows_ingested_total")) == rows:
                return values
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"exporter did not ingest {rows} rows: {proc.log_tail()}")


def stable(values: dict[Key, float]) -> dict[Key, float]:
    return {key: v for key, v in values.items() if not key[0].startswith(PROCESS_LOCAL)}


def test_restart_keeps_every_counter_and_created_time(audit_dsn: str, tmp_path: Path) -> None:
    workload.insert_rows(audit_dsn, 400, seed=11, invalid_rate=0.02, forbidden_rate=0.01)
    dsn = with_password(audit_dsn)
    first, port = start(dsn, tmp_path, "first")
    with first:
        before = scrape_when_loaded(first, port, 400)
        first.signal(signal.SIGTERM)
        assert first.proc.wait(15) == 0
    assert any(name.endswith("_created") for name, _ in before)
    assert (
        before[k("deletion_requests_created", user_type="CLIENT")]
        == (before[k("deletion_duration_seconds_created", outcome="success", user_type="CLIENT")])
    )

    second, port = start(dsn, tmp_path, "second")
    with second:
        after = scrape_when_loaded(second, port, 400)
        assert stable(after) == stable(before)  # values AND _created: no reset, no jump
        # Rows written while the exporter was down or after the restart: exact again.
        workload.insert_rows(audit_dsn, 150, seed=12)
        assert_exact(scrape_when_loaded(second, port, 550), truth(audit_dsn))
        with psycopg.connect(audit_dsn, autocommit=True) as conn:
            # Kill the exporter's connection: a poll error is logged; it reconnects by itself.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'deletion-audit-exporter'"
            )
        workload.insert_rows(audit_dsn, 10, seed=13)
        scrape_when_loaded(second, port, 560)
    logs = [(tmp_path / f"{n}.log").read_text() for n in ("first", "second")]
    for text in logs:
        assert PASSWORD not in text
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines and all(json.loads(line)["msg"] for line in lines)  # JSON lines only
    assert "initial load done" in logs[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert PASSWORD not in result.stderr + result.stdout


def test_wrong_dsn_exits_2_without_leaking_the_password(pg_cluster) -> None:
    # The server answers but rejects the DSN: retrying cannot help, so fail at once.
    no_db = with_password(pg_cluster.dsn("no_such_database"))
    assert_one_line_error(run_cli("--dsn", no_db), "--dsn", "cannot connect", "no_such_database")
    no_host = f"postgresql://postgres:{PASSWORD}@no-such-host.invalid:5432/app"
    assert_one_line_error(run_cli("--dsn", no_host), "--dsn", "cannot connect")
    # --check-only never waits for a database that does not answer.
    dead = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/app"
    assert_one_line_error(run_cli("--dsn", dead, "--check-only"), "--dsn", "cannot connect")
    assert_one_line_error(run_cli("--dsn", f"host=127.0.0.1 password={PASSWORD} port=x"), "--dsn")
    assert_one_line_error(run_cli(), "DATABASE_URL")


def test_missing_table_or_column_exits_2(audit_dsn: str) -> None:
    missing = run_cli("--dsn", audit_dsn, "--table", "nope", "--check-only")
    assert_one_line_error(missing, "nope", "does not exist")
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE broken (LIKE deletion_audit)")
        conn.execute("ALTER TABLE broken DROP COLUMN tx")
    assert_one_line_error(run_cli("--dsn", audit_dsn, "--table", "broken"), "column tx")
    assert_one_line_error(run_cli("--dsn", audit_dsn, "--table", "x; DROP TABLE y"), "--table")
    ok = run_cli("--dsn", audit_dsn, "--check-only")
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == "deletion-monitor audit-exporter: deletion_audit: ok\n"
    ok = run_cli("--check-only", env={"DATABASE_URL": audit_dsn})
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    "args, word",
    [
        (["--no-such-flag"], "--no-such-flag"),
        (["--poll-interval", "-1"], "--poll-interval"),
        (["--listen", "nohost"], "--listen"),
        (["--large-cascade-rows", "0"], "--large-cascade-rows"),
    ],
)
def test_bad_flags_exit_2(args: list[str], word: str) -> None:
    assert_one_line_error(run_cli("--dsn", "postgresql://x@127.0.0.1:1/x", *args), word)


def test_database_down_at_start_up_is_an_outage_not_a_crash(tmp_path: Path) -> None:
    """Started while PostgreSQL is down, the exporter serves up=0, then catches up exactly."""
    from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file

    cluster = PgCluster()
    # The schema exists before the exporter starts, so that once the server is back the only
    # thing the exporter waits for is its own reconnect backoff.
    cluster.start()
    apply_sql_file(cluster.dsn(), schema_path("deletion_audit.sql"))
    cluster.stop()
    dsn = with_password(cluster.dsn())
    proc, port = start(dsn, tmp_path, "down-at-start", avoid=cluster.port)
    try:
        deadline = time.monotonic() + 20
        values: dict[Key, float] = {}
        while time.monotonic() < deadline and not values.get(k("deletion_audit_poll_errors_total")):
            assert proc.alive(), proc.log_tail()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    values = dict(scrape_values(r.read().decode()))
            except OSError:
                pass
            time.sleep(0.1)
        assert values.get(k("deletion_audit_up")) == 0, proc.log_tail()
        assert values[k("deletion_audit_poll_errors_total")] >= 1, proc.log_tail()
        assert k("deletion_requests_total", user_type="CLIENT") not in values  # nothing invented

        cluster.start()
        workload.insert_rows(cluster.dsn(), 40, seed=3)
        values = scrape_when_loaded(proc, port, 40)
        assert values[k("deletion_audit_up")] == 1, proc.log_tail()
        assert_exact(values, truth(cluster.dsn()))
        assert PASSWORD not in proc.log_tail(200)
    finally:
        proc.stop()
        cluster.destroy()


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--poll-interval", "inf"),
        ("--poll-interval", "1e10"),
        ("--poll-interval", "nan"),
        ("--poll-interval", "3601"),
        ("--poll-interval", "0"),
        ("--large-cascade-rows", "1e400"),
        ("--large-cascade-rows", "1" + "0" * 30),
        ("--batch-size", "99999999999"),
        ("--max-tables", "10001"),
        ("--max-tables", "١٢"),  # other scripts' digits pass str.isdigit()
        ("--initial-chunk-rows", "0"),
        ("--reconcile-interval", "inf"),
        ("--reconcile-interval", "-1"),
    ],
)
def test_absurd_numbers_exit_2_with_one_line(audit_dsn: str, flag: str, value: str) -> None:
    """Non-finite or absurdly large values are refused before anything runs (--check-only
    would otherwise connect and exit 0: a poller told to wait forever still reports up 1)."""
    result = run_cli("--dsn", audit_dsn, "--check-only", flag, value)
    assert_one_line_error(result, flag)
    assert "Traceback" not in result.stderr


def test_largest_allowed_numbers_are_accepted(audit_dsn: str) -> None:
    ok = run_cli(
        "--dsn",
        audit_dsn,
        "--check-only",
        "--poll-interval",
        "3600",
        "--max-tables",
        "10000",
        "--batch-size",
        "10000000",
        "--reconcile-interval",
        "0",
    )
    assert (ok.returncode, ok.stderr) == (0, "")


def test_check_only_shows_the_table_warnings(audit_dsn: str) -> None:
    """A cursor without an index works but scans the table on every poll: the pre-deploy check
    says so (exit 0, the warning on stderr), not only the running exporter's log."""
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE unindexed (LIKE deletion_audit INCLUDING DEFAULTS)")
    result = run_cli("--dsn", audit_dsn, "--table", "unindexed", "--check-only")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "deletion-monitor audit-exporter: warning: table unindexed has no index on (tx, id): "
        "every poll will scan it"
    ]
    assert result.stdout == "deletion-monitor audit-exporter: unindexed: ok\n"
