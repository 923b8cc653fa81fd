"""The audit exporter's start-up and its long-running poller, on a real PostgreSQL.

- a long start-up load is not an outage: up=1, ready=0, progress gauges moving, no deletion series,
  then ready=1 with exact totals;
- capped labels (--max-tables, the last app versions) are the same whether the rows arrived in
  tail batches or in one start-up aggregate;
- the poller outlives any number of consecutive failures and recovers.
"""

# ruff: noqa: F811  (run_exporter is a fixture imported from test_audit_exporter)
from __future__ import annotations

import logging
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from test_audit_exporter import (  # noqa: F401
    Key,
    assert_exact,
    ingested,
    insert,
    k,
    run_exporter,
    scrape,
    truth,
    wait_for,
)
from test_audit_exporter_cli import PROCESS_LOCAL

from deletion_monitor.audit import poller as audit_poller
from deletion_monitor.audit.exporter import ExporterConfig, scrape_values
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor_demo import workload

READY = k("deletion_audit_ready")
UP = k("deletion_audit_up")
DONE = k("deletion_audit_initial_load_rows_done")
ESTIMATED = k("deletion_audit_initial_load_rows_estimated")


class SlowLoad(AuditExporter):
    """Sleeps after every start-up chunk: a load over millions of rows, in a test's time."""

    def _load_chunk_done(self, rows_done: int) -> None:
        time.sleep(0.05)


def test_long_start_up_is_alive_not_ready_and_then_exact(
    audit_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(audit_poller, "LOAD_PROGRESS_LOG_SECONDS", 0.2)
    workload.insert_rows(audit_dsn, 3000, seed=31, invalid_rate=0.02)
    exporter = SlowLoad(ExporterConfig(dsn=audit_dsn, poll_interval=0.1, initial_chunk_rows=100))
    caplog.set_level(logging.INFO, logger="deletion_monitor.audit.exporter")
    port = exporter.serve("127.0.0.1", 0)
    try:
        during: list[dict[Key, float]] = []
        deadline = time.monotonic() + 30
        while True:
            values = scrape(port)
            if values[READY] == 1:
                break
            assert time.monotonic() < deadline, "start-up load did not finish"
            # No deletion series before the totals are complete (a 0 -> total jump is a burst).
            assert not any(name.startswith("deletion_requests") for name, _ in values)
            assert k("deletion_audit_rows_ingested_total") not in values
            if values[DONE] > 0:
                during.append(values)
            time.sleep(0.05)
        assert len(during) >= 5, "the load was not observed in progress"
        for sample in during:
            assert sample[UP] == 1  # the database answers: not DeletionAuditDatabaseDown
            assert 0 < sample[DONE] <= 3000
            assert sample[ESTIMATED] >= sample[DONE]
        done = [v[DONE] for v in during]
        assert done == sorted(done) and len(set(done)) >= 3  # moves, never backwards
        assert values[DONE] == values[ESTIMATED] == 3000
        assert values[UP] == 1
        assert values[k("deletion_audit_initial_load_duration_seconds")] >= 1.0
        assert_exact(values, truth(audit_dsn))
    finally:
        exporter.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert "initial load started" in messages
    assert "initial load progress" in messages
    assert "initial load done" in messages


def test_load_interrupted_by_an_outage_starts_over_exactly(audit_dsn: str, run_exporter) -> None:
    """A connection lost mid-load: nothing half-loaded is published, the retry is exact."""
    workload.insert_rows(audit_dsn, 2000, seed=32)
    exporter = SlowLoad(
        ExporterConfig(dsn=audit_dsn, poll_interval=0.1, initial_chunk_rows=100, max_backoff=0.2)
    )
    port = exporter.serve("127.0.0.1", 0)
    try:
        wait_for(port, lambda v: v[DONE] >= 500)
        with psycopg.connect(audit_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'deletion-audit-exporter'"
            )
        seen_errors = False
        deadline = time.monotonic() + 30
        while True:
            values = scrape(port)
            seen_errors = seen_errors or values[k("deletion_audit_poll_errors_total")] >= 1
            if values[READY] == 1:
                break
            assert k("deletion_requests_total", user_type="CLIENT") not in values
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert seen_errors
        assert values[k("deletion_audit_rows_ingested_total")] == 2000
        assert_exact(values, truth(audit_dsn))
    finally:
        exporter.stop()


def _stable(values: dict[Key, float]) -> dict[Key, float]:
    return {key: v for key, v in values.items() if not key[0].startswith(PROCESS_LOCAL)}


def test_capped_labels_are_the_same_after_a_restart(audit_dsn: str, run_exporter) -> None:
    """Tables beyond --max-tables and the last app versions: tail batches == one start-up."""
    j = psycopg.types.json.Jsonb
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    insert(audit_dsn, [{"rows_deleted": j({"a": 1}), "app_version": "1.0", "occurred_at": t0}])
    tail, port = run_exporter(audit_dsn, max_tables=2, batch_size=2)
    wait_for(port, ingested(1))
    # Two writers. X takes the lower tx, Y the higher one but the lower id:
    #   (x, id+1) {"p"}, (x, id+2) {"q"}, (y, id) {"q"}.
    # "p" appears first in (tx, id) order, so "p" takes the last free table label. A first
    # appearance built from min(tx) and min(id) of different rows would make it "q" in the
    # one start-up aggregate, while the tail, whose batch of 2 holds only X's rows, says "p".
    x, y = psycopg.connect(audit_dsn), psycopg.connect(audit_dsn)
    try:
        x.execute("SELECT pg_current_xact_id()")
        y.execute("SELECT pg_current_xact_id()")
        row = (
            "INSERT INTO deletion_audit (outcome, duration_seconds, rows_deleted, app_version, "
            "occurred_at) VALUES ('success', 1, %s, %s, %s)"
        )
        y.execute(row, (j({"q": 1}), "1.9", t0 + timedelta(hours=1)))
        x.execute(row, (j({"p": 1}), "2.0", t0 + timedelta(hours=3)))
        x.execute(row, (j({"q": 2}), "2.0", t0 + timedelta(hours=2)))
        x.commit()
        y.commit()
    finally:
        x.close()
        y.close()
    # More tables and versions in later batches, and a row naming two new tables at once.
    for i in range(6):
        insert(
            audit_dsn,
            [
                {
                    "rows_deleted": j({f"t{i}": 1, f"u{i}": 2, "a": 1}),
                    "app_version": f"3.{i}",
                    "occurred_at": t0 + timedelta(hours=10 - i),
                }
            ],
        )
    before = wait_for(port, ingested(10))
    tables = {
        dict(lbl)["table"]: v
        for (name, lbl), v in before.items()
        if name == "deletion_rows_deleted_total"
    }
    assert tables == {"a": 7, "p": 1, "other": 3 + 6 * 3}
    tail.stop()

    _, port2 = run_exporter(audit_dsn, max_tables=2)
    after = wait_for(port2, ingested(10))
    assert _stable(after) == _stable(before)  # every series, labels and values


def test_poller_survives_more_than_a_thousand_failures(
    audit_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 ** failures once overflowed after ~1025 failed connects and ended the poller thread."""
    real_connect = audit_poller.connect
    failing = threading.Event()
    failing.set()
    attempts = [0]

    def connect(cfg: ExporterConfig) -> psycopg.Connection:
        attempts[0] += 1
        if failing.is_set():
            raise psycopg.OperationalError("connection refused (injected)")
        return real_connect(cfg)

    monkeypatch.setattr(audit_poller, "connect", connect)
    # The poller logs one warning per failure: keep 1100 of them out of the test output.
    monkeypatch.setattr(audit_poller.log, "disabled", True)
    workload.insert_rows(audit_dsn, 40, seed=33)
    exporter = AuditExporter(ExporterConfig(dsn=audit_dsn, poll_interval=1e-4, max_backoff=1e-3))
    port = exporter.serve("127.0.0.1", 0)
    try:
        deadline = time.monotonic() + 60
        while attempts[0] < 1100:
            assert time.monotonic() < deadline, f"only {attempts[0]} attempts"
            time.sleep(0.05)
        assert exporter._thread is not None and exporter._thread.is_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            values = dict(scrape_values(resp.read().decode()))
        assert values[UP] == 0 and values[k("deletion_audit_poll_errors_total")] >= 1100
        failing.clear()  # the database is back
        values = wait_for(port, ingested(40))
        assert values[UP] == 1
        assert exporter._thread.is_alive()
        assert_exact(values, truth(audit_dsn))
    finally:
        exporter.stop()


def test_poller_survives_an_error_in_its_own_error_handling(
    audit_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception, even one raised while handling a failed poll, keeps the poller alive."""
    real_connect, real_safe_error = audit_poller.connect, audit_poller.safe_error
    broken = threading.Event()
    broken.set()

    def connect(cfg: ExporterConfig) -> psycopg.Connection:
        if broken.is_set():
            raise psycopg.OperationalError("connection refused (injected)")
        return real_connect(cfg)

    def safe_error(exc: BaseException, dsn: str) -> str:
        if broken.is_set():
            raise RuntimeError("bug in the error path (injected)")
        return real_safe_error(exc, dsn)

    monkeypatch.setattr(audit_poller, "connect", connect)
    monkeypatch.setattr(audit_poller, "safe_error", safe_error)
    monkeypatch.setattr(audit_poller.log, "disabled", True)
    workload.insert_rows(audit_dsn, 10, seed=34)
    exporter = AuditExporter(ExporterConfig(dsn=audit_dsn, poll_interval=0.01, max_backoff=0.05))
    port = exporter.serve("127.0.0.1", 0)
    try:
        wait_for(port, lambda v: v[k("deletion_audit_poll_errors_total")] >= 5)
        assert exporter._thread is not None and exporter._thread.is_alive()
        broken.clear()
        values = wait_for(port, ingested(10))
        assert values[UP] == 1 and exporter._thread.is_alive()
    finally:
        exporter.stop()
