"""Checkpointed audit-exporter state on a real PostgreSQL (issue 13).

- a restart from a checkpoint serves exactly what a full aggregation would (same series, same
  `_created`), in both stores (a local file, a table of the monitored database);
- after a retention purge a restart lowers nothing: the checkpoint remembers the purged rows;
- a checkpoint from another table, database, cluster, configuration, a restored-older database or
  a rewritten table is refused with one log line and the full aggregation takes over;
- kill -9 at random moments between checkpoints, with a writer running: nothing lost, nothing
  counted twice, and no scrape across the restarts ever sees a counter go down;
- two replicas keep their own checkpoint rows and serve identical values.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.partitions import create_partitioned_table, drop_oldest_partition
from test_audit_exporter import (  # noqa: F401
    Key,
    assert_exact,
    ingested,
    k,
    run_exporter,
    scrape,
    truth,
    wait_for,
)
from test_audit_exporter_cli import PROCESS_LOCAL

from deletion_monitor.audit import checkpoint as ckpt
from deletion_monitor.audit.exporter import ExporterConfig, scrape_values
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor.data import schema_path
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port

STARTUP = "deletion_audit_startup_info"
LOGGER = "deletion_monitor.audit.exporter"
# Series describing this process (PROCESS_LOCAL: its start-up and checkpoint writes included).
# The reconciliation count is absent after a resume until its first run (it scans the table).
PROCESS_SERIES = (*PROCESS_LOCAL, "deletion_audit_rows_behind_cursor_unaccounted")


def rows_only(values: dict[Key, float]) -> dict[Key, float]:
    """The series that are a function of the audit rows (what a restart must reproduce)."""
    return {key: v for key, v in values.items() if not key[0].startswith(PROCESS_SERIES)}


def startup(values: dict[Key, float]) -> tuple[str, str]:
    [(source, reason)] = [
        (dict(labels)["source"], dict(labels)["reason"])
        for (name, labels), v in values.items()
        if name == STARTUP and v == 1
    ]
    return source, reason


def start(
    dsn: str,
    store: ckpt.CheckpointStore | None,
    started: list[AuditExporter],
    cls: type[AuditExporter] = AuditExporter,
    **kwargs: Any,
) -> tuple[AuditExporter, int]:
    cfg = ExporterConfig(dsn=dsn, poll_interval=kwargs.pop("poll_interval", 0.1), **kwargs)
    exporter = cls(cfg, checkpoints=store, checkpoint_interval=3600)
    started.append(exporter)
    return exporter, exporter.serve("127.0.0.1", 0)


@pytest.fixture
def exporters() -> Any:
    started: list[AuditExporter] = []
    yield started
    for exporter in started:
        exporter.stop()


def loaded(n: int) -> Callable[[dict[Key, float]], bool]:
    return lambda v: v.get(k("deletion_audit_ready")) == 1 and ingested(n)(v)


def table_store(dsn: str, exporter_id: str = "replica-a") -> ckpt.TableCheckpointStore:
    return ckpt.TableCheckpointStore(
        lambda: psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row),
        exporter_id=exporter_id,
        audit_table="deletion_audit",
    )


@pytest.fixture
def ckpt_dsn(audit_dsn: str) -> str:
    apply_sql_file(audit_dsn, schema_path("deletion_audit_checkpoint"))
    return audit_dsn


@pytest.mark.parametrize("kind", ["file", "table"])
def test_restart_from_checkpoint_serves_what_a_full_aggregation_serves(
    ckpt_dsn: str, tmp_path: Path, exporters: list[AuditExporter], kind: str
) -> None:
    dsn = ckpt_dsn

    def store() -> ckpt.CheckpointStore:
        return (
            ckpt.FileCheckpointStore(tmp_path / "state.json")
            if kind == "file"
            else (table_store(dsn))
        )

    workload.insert_rows(dsn, 3000, seed=5, invalid_rate=0.02, forbidden_rate=0.01)
    first, port = start(dsn, store(), exporters)
    before = wait_for(port, loaded(3000))
    assert startup(before) == ("full_aggregation", "no_checkpoint")
    first.stop()  # writes the shutdown checkpoint
    # Rows newer than every earlier one (an older occurred_at would move `_created` for anyone).
    now = datetime.now(UTC)
    workload.insert_rows(
        dsn, 500, seed=6, invalid_rate=0.02, start=now - timedelta(minutes=1), end=now
    )

    _, resumed_port = start(dsn, store(), exporters)
    resumed = wait_for(resumed_port, loaded(3500))
    assert startup(resumed) == ("checkpoint", "restored")
    _, full_port = start(dsn, None, exporters)
    full = wait_for(full_port, loaded(3500))
    assert startup(full) == ("full_aggregation", "not_configured")

    assert rows_only(resumed) == rows_only(full)  # every series, `_created` included
    assert_exact(resumed, truth(dsn))
    created = {key: v for key, v in rows_only(resumed).items() if key[0].endswith("_created")}
    changed = {key: (before[key], v) for key, v in created.items() if before.get(key, v) != v}
    assert created and not changed, list(changed.items())[:3]


def test_purge_then_restart_lowers_nothing(
    ckpt_dsn: str, tmp_path: Path, exporters: list[AuditExporter]
) -> None:
    dsn = ckpt_dsn
    state = tmp_path / "state.json"
    workload.insert_rows(dsn, 2000, seed=7, invalid_rate=0.02)
    first, port = start(dsn, ckpt.FileCheckpointStore(state), exporters)
    before = wait_for(port, loaded(2000))
    first.stop()
    with psycopg.connect(dsn) as conn:  # the retention job: the oldest 15 % go
        purged = conn.execute(
            "DELETE FROM deletion_audit WHERE id IN "
            "(SELECT id FROM deletion_audit ORDER BY occurred_at LIMIT 300)"
        ).rowcount
    assert purged == 300

    _, port = start(dsn, ckpt.FileCheckpointStore(state), exporters)
    after = wait_for(port, loaded(2000))
    assert rows_only(after) == rows_only(before)  # nothing lower, `_created` unchanged

    # Without the checkpoint the same restart lowers counters (what the test guards against).
    _, port = start(dsn, None, exporters)
    full = wait_for(port, loaded(1700))
    lower = [key for key, v in rows_only(full).items() if v < before.get(key, 0)]
    assert len(lower) > 10


@pytest.mark.parametrize("store_kind", ["file", "table"])
def test_drop_a_partition_then_restart_lowers_nothing(
    pg_dsn: str, tmp_path: Path, exporters: list[AuditExporter], store_kind: str
) -> None:
    """Monthly partitions, the oldest dropped by the retention path, then a restart: every
    counter and `_created` as before (the checkpoint remembers the dropped month's rows)."""
    dsn = pg_dsn
    months = create_partitioned_table(dsn, months=4, rows_per_month=300, seed=21)
    apply_sql_file(dsn, schema_path("deletion_audit_checkpoint"))
    total = sum(m.rows for m in months)

    def store() -> ckpt.CheckpointStore:
        return (
            ckpt.FileCheckpointStore(tmp_path / "s.json")
            if store_kind == "file"
            else (table_store(dsn))
        )

    first, port = start(dsn, store(), exporters)
    before = wait_for(port, loaded(total))
    first.stop()
    dropped = drop_oldest_partition(dsn)
    assert dropped.rows == 300
    _, port = start(dsn, store(), exporters)
    after = wait_for(port, loaded(total))
    assert startup(after) == ("checkpoint", "restored")
    assert rows_only(after) == rows_only(before)


def _checkpoint_doc(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _refused(
    caplog: pytest.LogCaptureFixture, dsn: str, state: Path, exporters: list, rows: int
) -> tuple[str, list[str]]:
    caplog.clear()
    _, port = start(dsn, ckpt.FileCheckpointStore(state), exporters)
    values = wait_for(port, loaded(rows))
    source, reason = startup(values)
    assert source == "full_aggregation"
    assert_exact(values, truth(dsn))
    lines = [r.getMessage() for r in caplog.records if "checkpoint not used" in r.getMessage()]
    return reason, lines


def test_foreign_stale_and_corrupt_checkpoints_are_refused(
    pg_cluster: PgCluster,
    ckpt_dsn: str,
    tmp_path: Path,
    exporters: list[AuditExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    dsn = ckpt_dsn
    state = tmp_path / "state.json"
    workload.insert_rows(dsn, 400, seed=8)
    first, port = start(dsn, ckpt.FileCheckpointStore(state), exporters)
    wait_for(port, loaded(400))
    first.stop()
    good = _checkpoint_doc(state)

    def attempt(doc: dict[str, Any] | str, on: str = dsn, rows: int = 400) -> str:
        state.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        reason, lines = _refused(caplog, on, state, exporters, rows)
        assert len(lines) == 1, lines  # one line saying why
        return reason

    # Another configuration: other duration buckets.
    caplog.clear()
    state.write_text(json.dumps(good))
    _, port = start(
        dsn, ckpt.FileCheckpointStore(state), exporters, duration_buckets=(0.1, 1.0, 10.0)
    )
    values = wait_for(port, loaded(400))
    assert startup(values) == ("full_aggregation", "config_changed")

    # Another database of the same cluster, with the same table name.
    other = pg_cluster.create_database("ckpt_other")
    apply_sql_file(other, schema_path("deletion_audit"))
    workload.insert_rows(other, 50, seed=9)
    assert attempt(good, on=other, rows=50) == "other_table"

    # The same table dropped and recreated (a new oid), with its rows reloaded.
    with psycopg.connect(dsn) as conn:
        conn.execute("ALTER TABLE deletion_audit RENAME TO deletion_audit_old")
    apply_sql_file(dsn, schema_path("deletion_audit"))
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO deletion_audit (occurred_at, outcome, error_type, duration_seconds, "
            "target_user_id, target_user_type, performed_by, performed_by_type, rows_deleted, "
            "http_status, app_version) SELECT occurred_at, outcome, error_type, "
            "duration_seconds, target_user_id, target_user_type, performed_by, "
            "performed_by_type, rows_deleted, http_status, app_version FROM deletion_audit_old"
        )
    assert attempt(good) == "other_table"
    fresh, port = start(dsn, ckpt.FileCheckpointStore(state), exporters)
    wait_for(port, loaded(400))
    fresh.stop()
    good = _checkpoint_doc(state)  # a valid checkpoint of the new table

    # Restored from an older backup: the cursor's transaction id was never handed out here.
    ahead = json.loads(json.dumps(good))
    ahead["state"]["cursor"][0] = str(int(good["state"]["cursor"][0]) + 10**6)
    assert attempt(ahead) == "cursor_ahead"

    # Another cluster (its system identifier), same database and table names.
    second = PgCluster()
    second.start()
    try:
        name = dsn.rsplit("/", 1)[1].split("?")[0]
        other_cluster = second.create_database(name)
        apply_sql_file(other_cluster, schema_path("deletion_audit"))
        workload.insert_rows(other_cluster, 30, seed=10)
        # Same oid and names are likely on fresh clusters: only the cluster identity differs.
        doc = json.loads(json.dumps(good))
        with psycopg.connect(other_cluster) as conn:
            doc["identity"]["table_oid"] = conn.execute(
                "SELECT 'deletion_audit'::regclass::oid::bigint"
            ).fetchone()[0]
            doc["state"]["cursor"][0] = "3"
        assert attempt(doc, on=other_cluster, rows=30) == "other_cluster"
    finally:
        second.destroy()

    # Corrupt, truncated, or of another format.
    assert attempt("{not json") == "unreadable"
    assert attempt(json.dumps(good)[:100]) == "unreadable"
    assert attempt({**good, "format": 99}) == "format_changed"
    broken = json.loads(json.dumps(good))
    broken["state"]["requests"] = {"CLIENT": -5}
    assert attempt(broken) == "unreadable"

    # The table reloaded with its ids restarted: the row at the cursor's id has another tx.
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE deletion_audit RESTART IDENTITY")
    workload.insert_rows(dsn, 450, seed=12)
    assert attempt(good, rows=450) == "cursor_row_rewritten"


def test_two_replicas_keep_their_own_checkpoints_and_serve_identical_values(
    ckpt_dsn: str, exporters: list[AuditExporter]
) -> None:
    dsn = ckpt_dsn
    workload.insert_rows(dsn, 1500, seed=13, invalid_rate=0.01)
    a, port_a = start(dsn, table_store(dsn, "replica-a"), exporters)
    b, port_b = start(dsn, table_store(dsn, "replica-b"), exporters)
    wait_for(port_a, loaded(1500))
    wait_for(port_b, loaded(1500))
    a.stop()
    b.stop()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT exporter_id, (checkpoint->'state'->>'ingested')::int "
            "FROM deletion_audit_checkpoint ORDER BY 1"
        ).fetchall()
    assert rows == [("replica-a", 1500), ("replica-b", 1500)]
    workload.insert_rows(dsn, 100, seed=14)
    _, port_a = start(dsn, table_store(dsn, "replica-a"), exporters)
    _, port_b = start(dsn, table_store(dsn, "replica-b"), exporters)
    va, vb = wait_for(port_a, loaded(1600)), wait_for(port_b, loaded(1600))
    assert startup(va) == startup(vb) == ("checkpoint", "restored")
    assert rows_only(va) == rows_only(vb)
    assert_exact(va, truth(dsn))


def test_catch_up_happens_before_the_restored_counters_are_served(
    ckpt_dsn: str, tmp_path: Path, exporters: list[AuditExporter]
) -> None:
    """A checkpoint is older than what the previous process served: serving it before the tail
    caught up would show counters going down. Scrapes during the catch-up see ready=0 and no
    deletion series; the first served values already include every row since the checkpoint."""
    dsn = ckpt_dsn
    state = tmp_path / "state.json"
    workload.insert_rows(dsn, 1000, seed=15)
    first, port = start(dsn, ckpt.FileCheckpointStore(state), exporters)
    wait_for(port, loaded(1000))
    first.write_checkpoint()
    workload.insert_rows(dsn, 700, seed=16)  # served by the old process, not in the checkpoint
    wait_for(port, loaded(1700))
    first._stop.set()  # die without the shutdown checkpoint (as kill -9 would)
    first._thread.join(5)  # type: ignore[union-attr]
    first._server.shutdown()
    first._server.server_close()

    gate = threading.Event()

    class SlowCatchUp(AuditExporter):
        def poll_once(self) -> int:
            gate.wait(10)
            return super().poll_once()

    _, port = start(dsn, ckpt.FileCheckpointStore(state), exporters, cls=SlowCatchUp)
    during = wait_for(port, lambda v: v.get(k(STARTUP, source="checkpoint", reason="restored")))
    assert during[k("deletion_audit_ready")] == 0
    assert not any(name.startswith("deletion_requests") for name, _ in during)
    gate.set()
    after = wait_for(port, loaded(1700))
    assert_exact(after, truth(dsn))


# --- kill -9 at random moments, with a writer running -------------------------------------

CLI = [sys.executable, "-m", "deletion_monitor", "audit-exporter"]


def _cli(dsn: str, port: int, state: Path, log: Path) -> ManagedProcess:
    return ManagedProcess(
        [
            *CLI,
            "--dsn",
            dsn,
            "--listen",
            f"127.0.0.1:{port}",
            "--poll-interval",
            "0.1",
            "--state-file",
            str(state),
            "--checkpoint-interval",
            "1",
        ],
        log,
    )


def _try_scrape(port: int) -> dict[Key, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return dict(scrape_values(resp.read().decode()))
    except OSError:
        return None


@pytest.mark.slow
def test_kill_9_between_checkpoints_loses_and_double_counts_nothing(
    ckpt_dsn: str, tmp_path: Path
) -> None:
    dsn = ckpt_dsn
    workload.insert_rows(dsn, 2000, seed=17, invalid_rate=0.01)
    state = tmp_path / "state.json"
    port = free_port()
    stop = threading.Event()
    writer = threading.Thread(
        target=workload.stream_rows, args=(dsn, 150.0), kwargs={"stop": stop, "seed": 18}
    )
    writer.start()
    rng = random.Random(19)
    seen: dict[Key, float] = {}  # what Prometheus would have: the last value of each counter
    went_down: list[tuple[Key, float, float]] = []
    sources = []

    def observe(values: dict[Key, float]) -> None:
        if values.get(k("deletion_audit_ready")) != 1:
            return
        for key, v in rows_only(values).items():
            if key[0].endswith(("_total", "_bucket", "_count", "_sum")) and v < seen.get(key, 0):
                went_down.append((key, seen[key], v))
            seen[key] = v

    try:
        for round_ in range(4):
            proc = _cli(dsn, port, state, tmp_path / f"exporter{round_}.log")
            with proc:
                deadline = time.monotonic() + 30
                values = None
                while time.monotonic() < deadline:
                    values = _try_scrape(port)
                    if values and values.get(k("deletion_audit_ready")) == 1:
                        break
                    time.sleep(0.05)
                assert values and values.get(k("deletion_audit_ready")) == 1, proc.log_tail()
                sources.append(startup(values)[0])
                until = time.monotonic() + rng.uniform(1.2, 3.5)  # across 1-3 checkpoints
                while time.monotonic() < until:
                    if (v := _try_scrape(port)) is not None:
                        observe(v)
                    time.sleep(0.1)
                proc.proc.send_signal(signal.SIGKILL)
                proc.proc.wait(5)
    finally:
        stop.set()
        writer.join()
    # A last run after the writer stopped: the totals must equal the table.
    proc = _cli(dsn, port, state, tmp_path / "final.log")
    with proc:
        total = psycopg.connect(dsn).execute("SELECT count(*) FROM deletion_audit").fetchone()[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            values = _try_scrape(port)
            if values and ingested(total)(values):
                break
            time.sleep(0.05)
        assert values and ingested(total)(values), proc.log_tail()
        observe(values)
        assert startup(values)[0] == "checkpoint"
        assert_exact(values, truth(dsn))
    assert sources[0] == "full_aggregation" and set(sources[1:]) == {"checkpoint"}
    assert not went_down, went_down[:5]


def test_check_only_verifies_the_checkpoint_store(ckpt_dsn: str, tmp_path: Path) -> None:
    def check(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "--dsn", ckpt_dsn, "--check-only", *flags],
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert check("--state-file", str(tmp_path / "s.json")).returncode == 0
    bad = check("--state-file", str(tmp_path / "missing" / "s.json"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--state-file" in bad.stderr and "does not exist" in bad.stderr
    assert check("--checkpoint-table").returncode == 0
    missing = check("--checkpoint-table", "nope_checkpoint")
    assert missing.returncode == 2 and "deletion_audit_checkpoint.sql" in missing.stderr
    both = check("--state-file", str(tmp_path / "s.json"), "--checkpoint-table")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_monitoring_login_writes_only_its_checkpoint(ckpt_dsn: str, pg_cluster: PgCluster) -> None:
    """grants.sql with the checkpoint table: the read-only monitoring login checkpoints and
    resumes through the command's own store (cli.checkpoint_store), cluster check included,
    and may still write nothing else."""
    import argparse

    from test_grants import _login_role

    from deletion_monitor.audit.cli import checkpoint_store

    apply_sql_file(ckpt_dsn, schema_path("grants"))
    _, login = _login_role(ckpt_dsn, pg_cluster)
    workload.insert_rows(ckpt_dsn, 600, seed=23)
    check = subprocess.run(
        [*CLI, "--dsn", login, "--check-only", "--checkpoint-table"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
    args = argparse.Namespace(
        state_file=None, checkpoint_table=ckpt.DEFAULT_CHECKPOINT_TABLE, exporter_id="r1"
    )
    started: list[AuditExporter] = []
    try:
        cfg = ExporterConfig(dsn=login, poll_interval=0.1)
        first, port = start(login, checkpoint_store(args, cfg), started)
        wait_for(port, loaded(600))
        first.stop()
        with psycopg.connect(ckpt_dsn) as conn:
            doc = conn.execute("SELECT checkpoint FROM deletion_audit_checkpoint").fetchone()[0]
        assert doc["identity"]["system_id"]  # pg_control_system() was granted and read
        workload.insert_rows(ckpt_dsn, 50, seed=24)
        _, port = start(login, checkpoint_store(args, cfg), started)
        values = wait_for(port, loaded(650))
        assert startup(values) == ("checkpoint", "restored")
        assert_exact(values, truth(ckpt_dsn))
    finally:
        for exporter in started:
            exporter.stop()
    with psycopg.connect(login, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "DELETE FROM deletion_audit_checkpoint",
            "TRUNCATE deletion_audit_checkpoint",
            "INSERT INTO deletion_audit (outcome, duration_seconds) VALUES ('success', 1)",
            "UPDATE deletion_audit SET outcome = 'x'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # Without SELECT on the audit table, --check-only fails in one line.
    with psycopg.connect(ckpt_dsn, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON deletion_audit FROM deletion_monitoring")
    denied = subprocess.run(
        [*CLI, "--dsn", login, "--check-only"], capture_output=True, text=True, timeout=30
    )
    assert denied.returncode == 2
    assert denied.stderr.strip().splitlines() == [
        "deletion-monitor audit-exporter: error: --table: this role lacks SELECT on "
        "deletion_audit (grants.sql)"
    ]
