"""The audit-log contract DDL and the legacy audit_logs adapter, on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from support.paths import SCHEMA_DIR

from deletion_monitor_demo.pgcluster import apply_sql_file

SCHEMA = SCHEMA_DIR / "deletion_audit.sql"
ADAPTER = SCHEMA_DIR / "legacy_audit_logs_adapter.sql"


def test_contract_ddl_is_idempotent_and_has_the_contract_columns(pg_dsn: str) -> None:
    apply_sql_file(pg_dsn, SCHEMA)
    apply_sql_file(pg_dsn, SCHEMA)  # every deploy re-applies it
    with psycopg.connect(pg_dsn) as conn:
        cols = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) || "
                "CASE WHEN attnotnull THEN ' not null' ELSE '' END FROM pg_attribute "
                "WHERE attrelid = 'deletion_audit'::regclass AND attnum > 0 AND NOT attisdropped"
            ).fetchall()
        )
        assert cols == {
            "id": "bigint not null",
            "tx": "xid8 not null",
            "occurred_at": "timestamp with time zone not null",
            "outcome": "text not null",
            "error_type": "text",
            "duration_seconds": "double precision not null",
            "target_user_id": "text",
            "target_user_type": "text",
            "performed_by": "text",
            "performed_by_type": "text",
            "rows_deleted": "jsonb",
            "http_status": "integer",
            "app_version": "text",
        }
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'deletion_audit'::regclass"
            )
        }
        assert any("(tx, id)" in i for i in indexes), indexes
        assert any("(occurred_at)" in i for i in indexes), indexes
        # tx defaults to the writing transaction's id; id is always generated.
        (xact,) = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        (tx,) = conn.execute(
            "INSERT INTO deletion_audit (outcome, duration_seconds) VALUES ('success', 1) "
            "RETURNING tx::text"
        ).fetchone()
        assert tx == xact
        with pytest.raises(psycopg.errors.GeneratedAlways):
            conn.execute(
                "INSERT INTO deletion_audit (id, outcome, duration_seconds) "
                "VALUES (99, 'success', 1)"
            )


def test_contract_accepts_rows_the_exporter_must_count_as_invalid(audit_dsn: str) -> None:
    """No CHECK constraint may make the application's DELETE fail over a malformed audit row."""
    with psycopg.connect(audit_dsn) as conn:
        for outcome, duration, error_type, rows_deleted in [
            ("partial", 1.0, None, None),
            ("success", -1.0, None, None),
            ("success", float("nan"), None, None),
            ("failure", 1.0, "made-up", '{"sessions": -2}'),
            ("success", 1.0, None, "[1, 2]"),
        ]:
            conn.execute(
                "INSERT INTO deletion_audit (outcome, duration_seconds, error_type, rows_deleted) "
                "VALUES (%s, %s, %s, %s)",
                (outcome, duration, error_type, rows_deleted),
            )
        assert conn.execute("SELECT count(*) FROM deletion_audit").fetchone()[0] == 5


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

CASES = [
    # (error text, expected error_type)
    ("Operation timed out after 30000ms", "timeout"),
    ("Timeout: query exceeded 10s", "timeout"),
    (
        "Invalid `prisma.profile.delete()` invocation: P2024 Timed out fetching a connection",
        "timeout",
    ),
    ("PrismaClientKnownRequestError P2025: Record to delete does not exist.", "not_found"),
    ("User not found", "not_found"),
    ("P2003 Foreign key constraint failed on the field: `dispatches_driverId_fkey`", "constraint"),
    ("Unauthorized", "authorization"),
    ("Forbidden: insufficient role", "authorization"),
    ("HTTP 403", "authorization"),
    ("Cannot delete yourself", "business_logic"),
    ("SUPER_ADMIN users cannot be removed", "business_logic"),
    ("Can't reach database server at db:5432 (P1001)", "database"),
    ("deadlock detected", "database"),
    ("something odd happened", "unknown"),
    ("", "unknown"),
    (None, "unknown"),
]


def test_legacy_adapter_maps_and_classifies(pg_dsn: str) -> None:
    apply_sql_file(pg_dsn, SCHEMA)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(LEGACY_TABLE)
        for i, (error, _) in enumerate(CASES):
            conn.execute(
                'INSERT INTO audit_logs (id, action, success, error, "timestamp", "performedBy", '
                '"targetUserId", "performedByType", "targetUserType") '
                "VALUES (%s, 'USER_DELETION', false, %s, '2026-05-04 10:00:00', 'admin-1', %s, "
                "'ADMIN', 'CLIENT')",
                (f"f{i}", error, f"user-{i}"),
            )
        conn.execute(
            "INSERT INTO audit_logs VALUES ('ok', 'USER_DELETION', true, NULL, "
            "'2026-05-04 23:30:00', 'admin-1', 'user-ok', 'ADMIN', 'DRIVER'), "
            "('other', 'USER_LOGIN', true, NULL, '2026-05-04 23:30:00', 'u', 'u', 'ADMIN', "
            "'CLIENT')"
        )
        conn.commit()
    apply_sql_file(pg_dsn, ADAPTER)
    apply_sql_file(pg_dsn, ADAPTER)  # idempotent
    with psycopg.connect(pg_dsn) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT legacy_id, outcome, error_type, occurred_at, target_user_type, "
                "performed_by, duration_seconds, rows_deleted FROM legacy_deletion_audit"
            )
        }
        assert "other" not in rows  # only action = USER_DELETION
        assert rows["ok"][:2] == ("success", None)
        assert rows["ok"][2] == datetime(2026, 5, 4, 23, 30, tzinfo=UTC)  # timestamp read as UTC
        assert rows["ok"][3:5] == ("DRIVER", "admin-1")
        assert rows["ok"][5:] == (None, None)  # no duration, no cascade: never invented
        got = {error: rows[f"f{i}"][1] for i, (error, _) in enumerate(CASES)}
        assert got == {error: want for error, want in CASES}
        # The query-exporter-style aggregate the adapter is meant for.
        agg = dict(
            conn.execute(
                "SELECT coalesce(error_type, 'none'), count(*) FROM legacy_deletion_audit "
                "GROUP BY 1"
            ).fetchall()
        )
        assert agg["none"] == 1 and agg["timeout"] == 3 and agg["unknown"] == 3
