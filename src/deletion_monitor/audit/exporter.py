"""The audit exporter's set-up, shared by its poller and its command: the configuration, the
table name, the connection and the table check (plus scrape_values, for tests and benchmarks)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from deletion_monitor.audit.sql import TAIL_END_SQL
from deletion_monitor.audit.state import DEFAULT_DURATION_BUCKETS
from deletion_monitor.common.redaction import error_line

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
# column -> required type (None: any type the poller's SQL, sql.py, can compare/cast). Checked in
# this order, the first problem is the one reported: `tx` first, because a table without it (the
# legacy audit_logs, or its adapter view before the migration) has other gaps too (a text id, no
# occurred_at), but only `tx` needs a migration; the adapter view maps the rest.
REQUIRED_COLUMNS: dict[str, str | None] = {
    "tx": "xid8",
    "id": None,
    "occurred_at": "timestamp with time zone",
    "outcome": None,
    "error_type": None,
    "duration_seconds": None,
    "target_user_id": None,
    "target_user_type": None,
    "performed_by": None,
    "rows_deleted": "jsonb",
    "app_version": None,
}
# The cursor is (tx, integer id): the poller keeps ids as Python ints (a Prisma cuid or uuid id
# would fail every poll, so it is refused at start-up instead).
ID_TYPES: tuple[str, ...] = ("bigint", "integer", "smallint")
MISSING_TX_HINT = (
    "the writing-transaction id the exporter tails by; for the legacy audit_logs table apply "
    "`deletion-monitor schema legacy_audit_logs_migration`, then re-apply "
    "`deletion-monitor schema legacy_audit_logs_adapter` (docs/audit-log.md)"
)


class SetupError(Exception):
    """Start-up cannot proceed; the message is the one line printed before exit 2."""


@dataclass
class ExporterConfig:
    dsn: str
    table: str = "deletion_audit"
    poll_interval: float = 5.0
    large_cascade_rows: int = 100
    batch_size: int = 0  # 0: aggregate everything committed in one query (nothing is fetched)
    max_tables: int = 50
    max_app_versions: int = 5
    duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    max_backoff: float = 30.0
    connect_timeout: int = 5
    # Start-up aggregate in chunks of this many rows (one snapshot): progress and liveness.
    initial_chunk_rows: int = 500_000
    # Connections that aggregate the chunks of one range at once, on one snapshot (the poller's
    # own included; audit/parallel.py): 1 is sequential. Two use both cores of a small box.
    aggregate_connections: int = 2
    # Seconds between reconciliation counts (rows behind the cursor vs ingested); 0: never.
    reconcile_interval: float = 300.0


def table_identifier(name: str) -> sql.Composable:
    """`name` or `schema.name` as a quoted identifier; SetupError if it is not a plain name."""
    if not _IDENT.match(name):
        raise SetupError(f"--table: not a valid table name: {name!r}")
    return sql.Identifier(*name.split("."))


def safe_error(exc: BaseException, dsn: str) -> str:
    """One-line error text with every password candidate of `dsn` removed, parseable or not."""
    return error_line(exc, dsn)


def connect(cfg: ExporterConfig) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        cfg.dsn,
        autocommit=True,
        connect_timeout=cfg.connect_timeout,
        application_name="deletion-audit-exporter",
        row_factory=dict_row,
    )
    # Start-up aggregates scan the whole table once: JIT compilation costs more than it saves on
    # these expressions, Memoize on the per-row jsonb lateral only adds hashing, and hashed
    # GROUPING SETS (one pass, no sorts) need more than the default 4 MB of work_mem.
    conn.execute("SET jit = off")
    conn.execute("SET work_mem = '64MB'")
    # The validity filters make the planner expect a handful of rows, so it sorts the expanded
    # rows_deleted entries (~8 per audit row) before grouping them; hashing ~10 table names (and
    # the few hundred label groups) is always the cheaper plan for these aggregates.
    conn.execute("SET enable_sort = off")
    with contextlib.suppress(psycopg.errors.UndefinedObject):
        conn.execute("SET enable_memoize = off")  # PostgreSQL 14+; 13 has no Memoize
    # Every poll is a consistent read-only snapshot (batch end and aggregate see the same rows).
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def check_table(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """Raise SetupError when the table or a required column is missing; return warnings."""
    ident = table_identifier(table).as_string(conn)
    cols = conn.execute(
        "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type "
        "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
        "AND NOT a.attisdropped",
        (ident,),
    ).fetchall()
    if not cols:
        raise SetupError(f"--table: table {table} does not exist (apply deletion_audit.sql)")
    types = {c["name"]: c["type"] for c in cols}
    for column, want in REQUIRED_COLUMNS.items():
        if column not in types:
            hint = f" ({MISSING_TX_HINT})" if column == "tx" else ""
            raise SetupError(f"--table: table {table} has no column {column}{hint}")
        if want is not None and types[column] != want:
            raise SetupError(
                f"--table: column {table}.{column} has type {types[column]}, expected {want}"
            )
        if column == "id" and types[column] not in ID_TYPES:
            raise SetupError(
                f"--table: column {table}.id has type {types[column]}, expected an integer "
                f"type ({', '.join(ID_TYPES)})"
            )
    if _is_view(conn, ident):
        # A view has no index of its own: ask the planner whether the cursor's probe can use an
        # index of the tables below it (the legacy adapter's view uses the migration's index).
        if not _cursor_probe_uses_index(conn, table):
            return [f"view {table}: no index serves the (tx, id) cursor: every poll will scan it"]
        return []
    warnings = []
    idx = conn.execute(
        "SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass(%s) "
        "AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey) "
        "WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = k.attnum)[1:2] = ARRAY['tx', 'id']",
        (ident,),
    ).fetchone()
    if idx is None:
        warnings.append(f"table {table} has no index on (tx, id): every poll will scan it")
    return warnings


def _is_view(conn: psycopg.Connection[Any], ident: str) -> bool:
    row = conn.execute(
        "SELECT c.relkind::text AS kind FROM pg_class c WHERE c.oid = to_regclass(%s)", (ident,)
    ).fetchone()
    return row is not None and row["kind"] in ("v", "m")


def _cursor_probe_uses_index(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether the tail's cursor probe (sql.TAIL_END_SQL) can be served by an index.

    With sequential scans disabled the planner still picks one when nothing else can answer the
    query, so a Seq Scan in that plan means no usable index, whatever the table's size.
    """
    probe = sql.SQL(TAIL_END_SQL).format(table=table_identifier(table))
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        row = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) ") + probe, {"lo_tx": "0", "lo_id": 0}
        ).fetchone()
    plan = row["QUERY PLAN"] if row is not None else []

    def nodes(node: Mapping[str, Any]) -> list[str]:
        return [str(node.get("Node Type")), *(n for p in node.get("Plans", []) for n in nodes(p))]

    return bool(plan) and "Seq Scan" not in nodes(plan[0]["Plan"])


def scrape_values(text: str) -> Mapping[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(sample name, sorted labels): value} (tests, bench, demo)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
