"""Adopting the old Prisma `audit_logs` table without changing the application (issue 15).

A Prisma-style table (quoted camelCase columns, text cuid ids, `timestamp(3)` without time zone,
free-text `error` with the old app's messages and Prisma codes) holds history rows; the shipped
migration adds `tx`/`audit_seq` without rewriting it; the shipped adapter exposes them in the view
`legacy_deletion_audit`; the real exporter reads the view. Its counters are compared with a truth
computed here in Python from the raw `audit_logs` rows (this file's own classification of the
error texts, not the adapter's SQL), after start-up, after concurrent plain INSERTs that never
name the new columns (the unchanged application), and after a restart.
"""

# ruff: noqa: F811  (run_exporter is a fixture imported from test_audit_exporter)
from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from test_audit_exporter import Key, k, run_exporter, wait_for  # noqa: F401

from deletion_monitor.audit import checkpoint as ckpt
from deletion_monitor.audit.exporter import ExporterConfig, check_table, connect
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor.audit.state import ERROR_TYPES, USER_TYPES
from deletion_monitor.data import schema_path
from deletion_monitor_demo.pgcluster import apply_sql_file

VIEW = "legacy_deletion_audit"
MIGRATION = schema_path("legacy_audit_logs_migration")
ADAPTER = schema_path("legacy_audit_logs_adapter")
CLI = [sys.executable, "-m", "deletion_monitor", "audit-exporter"]

# The table as Prisma creates it for `model AuditLog` (@@map("audit_logs")).
LEGACY_TABLE = """
CREATE TABLE audit_logs (
    id text PRIMARY KEY,
    action text NOT NULL,
    success boolean NOT NULL,
    error text,
    "timestamp" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "performedBy" text,
    "targetUserId" text,
    "performedByType" text,
    "targetUserType" text
)
"""
# The old application's error texts, and the class each one must end up in.
ERRORS: dict[str | None, str] = {
    "Operation timed out after 30000ms": "timeout",
    "Invalid `prisma.profile.delete()` invocation:\n\nTimed out fetching a new connection from "
    "the connection pool. (P2024)": "timeout",
    "PrismaClientKnownRequestError: An operation failed because it depends on one or more "
    "records that were required but not found. Record to delete does not exist. (P2025)": (
        "not_found"
    ),
    "Foreign key constraint failed on the field: `dispatches_driverId_fkey (index)` (P2003)": (
        "constraint"
    ),
    "Unauthorized": "authorization",
    "Forbidden: insufficient permissions": "authorization",
    "Cannot delete your own account": "business_logic",
    "Cannot delete SUPER_ADMIN users": "business_logic",
    "Can't reach database server at `db:5432` (P1001)": "database",
    "Internal server error": "unknown",
    None: "unknown",
}
TYPES = [*USER_TYPES, "MANAGER", None]  # MANAGER and NULL: `other` in the metrics
T0 = datetime(2025, 11, 3, 8, 0, 0)  # naive: Prisma stores UTC in timestamp without time zone
INSERT = (
    'INSERT INTO audit_logs (id, action, success, error, "timestamp", "performedBy", '
    '"targetUserId", "performedByType", "targetUserType") '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def legacy_rows(n: int, seed: int, start: datetime = T0) -> list[tuple]:
    """Rows as the old application wrote them: mostly deletions, some other actions."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        target = f"c{rng.getrandbits(96):024x}"
        actor = rng.choice(["cadmin1", "cadmin2", "chelp1"])
        action = "USER_DELETION" if rng.random() < 0.85 else rng.choice(["USER_LOGIN", "UPDATE"])
        success = rng.random() < 0.6
        error = None if success else rng.choice(list(ERRORS))
        target_type = rng.choice(TYPES)
        if success and rng.random() < 0.05:
            actor = target  # a self-deletion the business rules forbid
        rows.append(
            (
                f"c{seed:04d}{i:06d}{rng.getrandbits(32):08x}",
                action,
                success,
                error,
                start + timedelta(minutes=37 * i + rng.randrange(30)),
                actor,
                target,
                "ADMIN",
                target_type,
            )
        )
    return rows


def write(dsn: str, rows: list[tuple]) -> None:
    """Plain INSERTs that never name tx or audit_seq, one transaction per row (the app)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for row in rows:
            conn.execute(INSERT, row)


def legacy_table(dsn: str, history: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEGACY_TABLE)
    write(dsn, legacy_rows(history, seed=1))


def adopt(dsn: str) -> None:
    """The documented order: the migration, then the adapter (again)."""
    apply_sql_file(dsn, MIGRATION)
    apply_sql_file(dsn, ADAPTER)


def truth(dsn: str) -> dict[Key, float]:
    """Expected samples, from the raw audit_logs rows and this file's ERRORS classification."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            'SELECT success, error, "timestamp", "performedBy", "targetUserId", '
            "\"targetUserType\" FROM audit_logs WHERE action = 'USER_DELETION'"
        ).fetchall()
    requests: Counter[str] = Counter()
    failures: Counter[tuple[str, str]] = Counter()
    no_duration: Counter[tuple[str, str]] = Counter()
    hours: Counter[str] = Counter()
    forbidden: Counter[str] = Counter()
    for success, error, at, actor, target, target_type in rows:
        ut = target_type if target_type in USER_TYPES else "other"
        requests[ut] += 1
        no_duration["success" if success else "failure", ut] += 1
        hours[f"{at.hour:02d}"] += 1
        if not success:
            failures[ut, ERRORS[error]] += 1
        elif target_type == "SUPER_ADMIN":
            forbidden["super_admin"] += 1
        if success and actor == target:
            forbidden["self_deletion"] += 1
    out: dict[Key, float] = {}
    for ut in (*USER_TYPES, *(["other"] if requests["other"] else [])):
        out[k("deletion_requests_total", user_type=ut)] = requests[ut]
        for outcome in ("success", "failure"):
            out[k("deletion_requests_without_duration_total", outcome=outcome, user_type=ut)] = (
                no_duration[outcome, ut]
            )
        for et in ERROR_TYPES:
            if ut != "other" or failures[ut, et]:  # `other` pairs exist once seen
                out[k("deletion_failures_total", user_type=ut, error_type=et)] = failures[ut, et]
    for hour in range(24):
        out[k("deletion_requests_by_hour_total", hour=f"{hour:02d}")] = hours[f"{hour:02d}"]
    for kind in ("self_deletion", "super_admin"):
        out[k("deletion_forbidden_successes_total", kind=kind)] = forbidden[kind]
    out[k("deletion_audit_rows_ingested_total")] = len(rows)
    return out


def assert_matches(scraped: dict[Key, float], expected: dict[Key, float]) -> None:
    wrong = [
        (key, scraped.get(key), want) for key, want in expected.items() if scraped.get(key) != want
    ]
    families = {name for name, _ in expected}
    wrong += [
        (key, v, "absent")
        for key, v in scraped.items()
        if key[0] in families and key not in expected and v != 0
    ]
    assert not wrong, wrong[:10]
    # Latency unknown: no call lands in a latency bucket, nothing is rejected as malformed.
    assert not any(
        v for (name, _), v in scraped.items() if name.startswith("deletion_duration_seconds")
    )
    assert not any(
        v
        for (name, _), v in scraped.items()
        if name
        in ("deletion_large_cascade_duration_seconds_count", "deletion_audit_invalid_rows_total")
    )


def caught_up(dsn: str) -> Callable[[dict[Key, float]], bool]:
    with psycopg.connect(dsn) as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {VIEW}").fetchone()
    return lambda v: v.get(k("deletion_audit_rows_ingested_total")) == n


def test_exporter_counts_history_once_and_tails_the_unchanged_app(
    pg_dsn: str, run_exporter: Callable[..., tuple[AuditExporter, int]], tmp_path: Path
) -> None:
    legacy_table(pg_dsn, history=400)
    adopt(pg_dsn)
    # Small chunks and batches: the history rows share one (tx, id) key, which must neither be
    # split nor repeated by a chunk or batch boundary.
    opts = {"table": VIEW, "batch_size": 7, "initial_chunk_rows": 40}
    exporter, port = run_exporter(pg_dsn, **opts)
    first = wait_for(port, caught_up(pg_dsn))
    assert_matches(first, truth(pg_dsn))
    assert (
        first[k("deletion_audit_initial_load_rows_done")]
        == first[k("deletion_audit_rows_ingested_total")]
    )

    # The unchanged application keeps writing, concurrently; one transaction stays open across
    # other writers' commits (lower tx, lower audit_seq, committed last) and one rolls back.
    late = psycopg.connect(pg_dsn)
    late.execute(INSERT, legacy_rows(1, seed=90, start=T0 + timedelta(days=40))[0])
    held = first[k("deletion_audit_rows_ingested_total")]
    writers = [
        threading.Thread(
            target=write,
            args=(pg_dsn, legacy_rows(60, seed=10 + w, start=T0 + timedelta(days=30 + w))),
        )
        for w in range(4)
    ]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    with psycopg.connect(pg_dsn) as aborted:
        aborted.execute(INSERT, legacy_rows(1, seed=91)[0])
        aborted.rollback()
    # Nothing after the open transaction may be read yet: its row would be passed for good.
    held_back = wait_for(port, lambda v: v.get(k("deletion_audit_cursor_lag_seconds"), 0) > 0)
    assert held_back[k("deletion_audit_rows_ingested_total")] == held
    late.commit()
    late.close()
    after = wait_for(port, caught_up(pg_dsn))
    assert_matches(after, truth(pg_dsn))
    new_rows = [legacy_rows(1, seed=90)[0]] + [
        r for w in range(4) for r in legacy_rows(60, seed=10 + w)
    ]
    deletions = sum(1 for r in new_rows if r[1] == "USER_DELETION")
    assert after[k("deletion_audit_rows_ingested_total")] == held + deletions

    # A restart without a checkpoint aggregates everything again: the same values, nothing
    # counted twice; then the new process tails from its own cursor, beyond the history rows.
    exporter.stop()
    store = ckpt.FileCheckpointStore(tmp_path / "state.json")
    second = AuditExporter(ExporterConfig(dsn=pg_dsn, poll_interval=0.1, **opts), store)
    port2 = second.serve("127.0.0.1", 0)
    try:
        assert_matches(wait_for(port2, caught_up(pg_dsn)), truth(pg_dsn))
        write(pg_dsn, legacy_rows(25, seed=50, start=T0 + timedelta(days=60)))
        assert_matches(wait_for(port2, caught_up(pg_dsn)), truth(pg_dsn))
    finally:
        second.stop()  # writes its shutdown checkpoint: cursor and counters
    # A restart from that checkpoint: the history rows lie below its cursor and are not read
    # again; only the rows written while it was down are added.
    write(pg_dsn, legacy_rows(15, seed=51, start=T0 + timedelta(days=61)))
    third = AuditExporter(
        ExporterConfig(dsn=pg_dsn, poll_interval=0.1, **opts),
        ckpt.FileCheckpointStore(tmp_path / "state.json"),
    )
    port3 = third.serve("127.0.0.1", 0)
    try:
        resumed = wait_for(port3, caught_up(pg_dsn))
        startup = k("deletion_audit_startup_info", reason="restored", source="checkpoint")
        assert resumed.get(startup) == 1, [key for key in resumed if "startup" in key[0]]
        assert_matches(resumed, truth(pg_dsn))
    finally:
        third.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
    )


def assert_missing_tx(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in ("no column tx", "legacy_audit_logs_migration", "legacy_audit_logs_adapter"):
        assert word in lines[0], lines[0]
    assert "no column id" not in lines[0]


def test_unmigrated_table_names_the_migration(pg_dsn: str) -> None:
    legacy_table(pg_dsn, history=5)
    apply_sql_file(pg_dsn, ADAPTER)  # the view for reports, before any migration
    for table in (VIEW, "audit_logs"):
        assert_missing_tx(run_cli("--dsn", pg_dsn, "--table", table, "--check-only"))
    # Migrated, but the view was made before: it still has no tx, and the message says so.
    apply_sql_file(pg_dsn, MIGRATION)
    assert_missing_tx(run_cli("--dsn", pg_dsn, "--table", VIEW, "--check-only"))
    # The table itself has tx now, but a text (cuid) id: refused at start-up, not in every poll.
    raw = run_cli("--dsn", pg_dsn, "--table", "audit_logs", "--check-only")
    assert raw.returncode == 2 and "audit_logs.id has type text" in raw.stderr, raw
    apply_sql_file(pg_dsn, ADAPTER)
    ok = run_cli("--dsn", pg_dsn, "--table", VIEW, "--check-only")
    assert (ok.returncode, ok.stderr) == (0, "")
    # The view has no index of its own; the check asks the planner whether the migration's
    # index serves the cursor, and warns once it is gone.
    cfg = ExporterConfig(dsn=pg_dsn, table=VIEW)
    with connect(cfg) as conn:
        assert check_table(conn, VIEW) == []
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX audit_logs_deletion_tx_seq_idx")
    with connect(cfg) as conn:
        assert [w for w in check_table(conn, VIEW) if "every poll will scan it" in w]


def _filenode_and_tuples(conn: psycopg.Connection) -> tuple[int, list[tuple]]:
    node = conn.execute("SELECT pg_relation_filenode('audit_logs')").fetchone()[0]
    tuples = conn.execute(
        "SELECT id, ctid::text, xmin::text FROM audit_logs ORDER BY id"
    ).fetchall()
    return node, tuples


def test_migration_does_not_rewrite_the_table(pg_dsn: str) -> None:
    legacy_table(pg_dsn, history=200)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        before = _filenode_and_tuples(conn)
        apply_sql_file(pg_dsn, MIGRATION)
        # A rewrite writes a new file (new filenode) with new tuple versions (ctid, xmin): both
        # unchanged means every history row is still the row the application wrote.
        assert _filenode_and_tuples(conn) == before
        nulls = conn.execute(
            "SELECT count(*) FROM audit_logs WHERE tx IS NULL AND audit_seq IS NULL"
        ).fetchone()[0]
        assert nulls == 200  # history rows keep NULL: nothing was backfilled
        # The unchanged application's INSERT now gets both from the defaults.
        with conn.transaction():
            conn.execute(INSERT, legacy_rows(1, seed=7)[0])
            (mine,) = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        tx, seq = conn.execute(
            "SELECT tx::text, audit_seq FROM audit_logs WHERE tx IS NOT NULL"
        ).fetchone()
        assert (tx, seq) == (mine, 1)
        # Control: the same check does see a rewrite (a volatile default fills every row).
        node = before[0]
        conn.execute("CREATE SEQUENCE control_seq")
        conn.execute(
            "ALTER TABLE audit_logs ADD COLUMN control bigint DEFAULT nextval('control_seq')"
        )
        assert conn.execute("SELECT pg_relation_filenode('audit_logs')").fetchone()[0] != node


CATALOG_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'audit_logs'::regclass AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL SELECT 'index', indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_logs'
UNION ALL SELECT 'sequence', relname, NULL FROM pg_class WHERE relkind = 'S'
UNION ALL SELECT 'view', pg_get_viewdef('legacy_deletion_audit'), NULL
ORDER BY 1, 2
"""


def test_migration_and_adapter_are_idempotent(pg_dsn: str) -> None:
    legacy_table(pg_dsn, history=20)
    adopt(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        once = conn.execute(CATALOG_SQL).fetchall()
        seq = conn.execute("SELECT last_value FROM audit_logs_audit_seq").fetchone()
    adopt(pg_dsn)
    # As a migration tool runs it: the whole file inside one transaction.
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(MIGRATION.read_text())
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute(CATALOG_SQL).fetchall() == once
        assert conn.execute("SELECT last_value FROM audit_logs_audit_seq").fetchone() == seq
        assert ("tx", "xid8", "pg_current_xact_id()") in once
        # History keeps NULL after any number of runs; the view shows it as (tx 2, id 0).
        view = conn.execute(f"SELECT tx::text, id, count(*) FROM {VIEW} GROUP BY 1, 2").fetchall()
    deletions = sum(1 for r in legacy_rows(20, seed=1) if r[1] == "USER_DELETION")
    assert view == [("2", 0, deletions)]
