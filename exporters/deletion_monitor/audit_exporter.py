"""`deletion-monitor audit-exporter`: the deletion audit log as exact, restart-stable metrics.

How it stays exact and lossless (docs/audit-log.md has the long version):
- Start-up: in ONE repeatable-read snapshot, take xmin = pg_snapshot_xmin(pg_current_snapshot()),
  aggregate every row with tx < xmin on the server (GROUP BY, no rows fetched) and set the cursor
  to the largest (tx, id) below xmin. Every transaction with an id below xmin has finished, so
  that set of rows can never grow; rows with tx >= xmin are left to the tail.
- Tail: every --poll-interval, aggregate the next batch of rows with
  (tx, id) > cursor AND tx < xmin-of-this-statement, in (tx, id) order, and move the cursor to the
  batch's last row. A transaction that took a lower id but commits late has a tx >= xmin while it
  is open, so the cursor waits for it (deletion_audit_cursor_lag_seconds) instead of passing it.
- Start-up and tail classify rows with the same SQL, so a restart rebuilds identical counters.
- A scrape renders the in-memory state (audit_state.AuditCollector) and never queries the DB.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector
from psycopg import sql
from psycopg.rows import dict_row

from deletion_monitor.audit_state import (
    CASCADE_BUCKETS,
    DEFAULT_DURATION_BUCKETS,
    ERROR_TYPES,
    USER_TYPES,
    AuditCollector,
    AuditState,
    AuditStateStore,
    Delta,
)
from deletion_monitor.cliargs import add_log_level, listen_address
from deletion_monitor.httpserver import start_metrics_server
from deletion_monitor.log import setup_logging
from deletion_monitor.pgerrors import is_unreachable
from deletion_monitor.redaction import (
    dsn_problem,
    error_line,
    password_on_command_line,
    register_dsn,
)

HELP = "Serve the deletion audit log (deletion_audit table) as Prometheus metrics."
DEFAULT_LISTEN = "0.0.0.0:9817"
log = logging.getLogger("deletion_monitor.audit_exporter")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
# column -> required type (None: any type the SQL below can compare/cast).
REQUIRED_COLUMNS: dict[str, str | None] = {
    "id": None,
    "tx": "xid8",
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
Cursor = tuple[int, int]  # (tx, id)


class SetupError(Exception):
    """Start-up cannot proceed; the message is the one line printed before exit 2."""


# --- SQL -------------------------------------------------------------------------------------
# One row classification for start-up and tail. `src` normalises one audit row; the outer query
# groups the range (lo, hi] with GROUPING SETS so one scan yields every metric family.
# A fence (subquery with OFFSET 0 cannot be flattened): compute `bad` (a regex) once per row,
# not once per reference after the planner inlines the CTE.
_FENCE = "OFFSET 0"
_SRC = """
WITH src AS (
    SELECT a.outcome::text AS outcome,
           a.error_type::text AS error_type,
           a.target_user_type::text AS target_user_type,
           a.duration_seconds::float8 AS d,
           a.occurred_at,
           a.app_version::text AS app_version,
           (a.performed_by IS NOT NULL AND a.performed_by::text = a.target_user_id::text)
               AS self_del,
           a.rows_deleted,
           jsonb_typeof(a.rows_deleted) AS rdt,
           -- A per-table count must be a non-negative integer literal. jsonb prints an object
           -- as {{"k": v, ...}}: a value that does not start with a digit (string, negative,
           -- null, true, array, object) or has a fraction is caught by one regex per row, which
           -- is several times cheaper than expanding the object with jsonb_each.
           coalesce(jsonb_typeof(a.rows_deleted) = 'object'
                    AND a.rows_deleted::text ~ '": ([^0-9]|[0-9]+[^0-9,}}])', false) AS bad
    FROM {table} a
    WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
      AND (a.tx, a.id) <= (%(hi_tx)s::text::xid8, %(hi_id)s)
    {fence}
), v AS (
    SELECT src.*,
           CASE WHEN outcome IS NULL OR outcome NOT IN ('success', 'failure')
                    THEN 'unknown_outcome'
                WHEN d IS NULL THEN 'null_duration'
                WHEN d IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
                    THEN 'non_finite_duration'
                WHEN d < 0 THEN 'negative_duration'
                WHEN rdt IS NOT NULL AND rdt NOT IN ('object', 'null') THEN 'bad_rows_deleted'
                WHEN bad THEN 'bad_rows_deleted'
           END AS invalid,
           CASE WHEN target_user_type = ANY(%(user_types)s::text[]) THEN target_user_type
                ELSE 'other' END AS user_type,
           CASE WHEN outcome = 'failure' THEN
                CASE WHEN error_type = ANY(%(error_types)s::text[]) THEN error_type
                     ELSE 'unknown' END
           END AS et,
           -- index of the first bucket whose upper bound is >= d (Prometheus `le`), via
           -- width_bucket over the negated bounds (width_bucket counts bounds <= operand).
           %(n_dur)s - width_bucket(-d, %(neg_dur)s::float8[]) AS bucket
    FROM src
)
"""

AGGREGATE_SQL = (
    _SRC.replace("{fence}", _FENCE)
    + """
, w AS (
    SELECT v.*,
           CASE WHEN outcome = 'success' AND rdt = 'object' AND invalid IS NULL
                THEN (SELECT coalesce(sum(e.value::numeric), 0)
                      FROM jsonb_each_text(v.rows_deleted) e) END AS cascade_total
    FROM v
    OFFSET 0  -- same fence: the per-row sum is referenced three times below
)
SELECT CASE WHEN GROUPING(outcome) = 0 THEN 'main'
            WHEN GROUPING(hour) = 0 THEN 'hour'
            WHEN GROUPING(weekday) = 0 THEN 'weekday'
            WHEN GROUPING(cbucket) = 0 THEN 'cascade'
            WHEN GROUPING(app_version) = 0 THEN 'app_version'
            ELSE 'rows' END AS kind,
       invalid, outcome, user_type, error_type, bucket, large, self_del,
       hour, weekday, cbucket, app_version,
       count(*) AS n, sum(d) AS dsum, sum(cascade_total) AS tsum,
       min(occurred_at) AS min_at, max(occurred_at) AS max_at
FROM (
    SELECT invalid, outcome, user_type, et AS error_type, bucket, self_del, app_version, d,
           occurred_at, cascade_total,
           coalesce(outcome = 'success' AND cascade_total >= %(large)s, false) AS large,
           extract(hour FROM occurred_at AT TIME ZONE 'UTC')::int AS hour,
           extract(isodow FROM occurred_at AT TIME ZONE 'UTC')::int AS weekday,
           %(n_cas)s - width_bucket(-cascade_total::float8, %(neg_cas)s::float8[]) AS cbucket
    FROM w
) r
GROUP BY GROUPING SETS (
    (invalid, outcome, user_type, error_type, bucket, large, self_del),
    (invalid, hour),
    (invalid, weekday),
    (invalid, cbucket),
    (app_version),
    (invalid)
)
"""
)

TABLES_SQL = (
    # No fence needed here: `bad` is used once.
    _SRC.replace("{fence}", "")
    + """
SELECT e.key AS table_name, sum(e.value::numeric) AS rows
FROM v CROSS JOIN LATERAL jsonb_each_text(v.rows_deleted) e
WHERE v.invalid IS NULL AND v.outcome = 'success' AND v.rdt = 'object'
GROUP BY e.key
"""
)

# Only needed when new tables would overflow --max-tables: which appeared first in (tx, id)
# order, so that the same tables keep their own label after a restart.
FIRST_APPEARANCE_SQL = (
    _SRC.replace("{fence}", "").replace(
        "SELECT a.outcome::text", "SELECT a.tx, a.id, a.outcome::text"
    )
    + """
SELECT e.key AS table_name
FROM v CROSS JOIN LATERAL jsonb_object_keys(v.rows_deleted) e(key)
WHERE v.invalid IS NULL AND v.outcome = 'success' AND v.rdt = 'object'
GROUP BY e.key
ORDER BY min(v.tx::text::numeric), min(v.id)
"""
)

# Cursor end of the next batch: largest (tx, id) among the next `limit` rows below xmin.
BATCH_END_SQL = """
SELECT tx::text AS tx, id FROM (
    SELECT tx, id FROM {table}
    WHERE (tx, id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
      AND tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx, id LIMIT %(limit)s
) s ORDER BY tx DESC, id DESC LIMIT 1
"""
# Without a batch limit: the largest (tx, id) below xmin, one backward index probe.
TAIL_END_SQL = """
SELECT tx::text AS tx, id FROM {table}
WHERE (tx, id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx DESC, id DESC LIMIT 1
"""
START_END_SQL = """
SELECT tx::text AS tx, id FROM {table}
WHERE tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx DESC, id DESC LIMIT 1
"""
# Committed rows the cursor may not pass yet (an older transaction is still open).
HELD_BACK_SQL = """
SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
       EXISTS (SELECT 1 FROM {table} WHERE tx >= pg_snapshot_xmin(pg_current_snapshot()))
           AS held
"""


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
        raise SetupError(f"--table: table {table} does not exist (apply schema/deletion_audit.sql)")
    types = {c["name"]: c["type"] for c in cols}
    for column, want in REQUIRED_COLUMNS.items():
        if column not in types:
            raise SetupError(f"--table: table {table} has no column {column}")
        if want is not None and types[column] != want:
            raise SetupError(
                f"--table: column {table}.{column} has type {types[column]}, expected {want}"
            )
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


class AuditExporter:
    """The poller thread plus the state it feeds; serve() adds the HTTP endpoint."""

    def __init__(self, cfg: ExporterConfig) -> None:
        self.cfg = cfg
        self.ident = table_identifier(cfg.table)
        self.store = AuditStateStore(
            AuditState(
                duration_bounds=tuple(cfg.duration_buckets),
                max_tables=cfg.max_tables,
                max_app_versions=cfg.max_app_versions,
            )
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AuditCollector(self.store))
        self.registry.register(ProcessCollector(registry=None))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._conn: psycopg.Connection[Any] | None = None
        self._cursor: Cursor | None = None  # None until the start-up aggregate has run
        self._held: tuple[str, float] | None = None  # (xmin, first seen holding rows back)
        self._params: dict[str, Any] = {
            "user_types": list(USER_TYPES),
            "error_types": [e for e in ERROR_TYPES if e != "unknown"],
            "n_dur": len(cfg.duration_buckets),
            "neg_dur": sorted(-float(b) for b in cfg.duration_buckets),
            "n_cas": len(CASCADE_BUCKETS),
            "neg_cas": sorted(-float(b) for b in CASCADE_BUCKETS),
            "large": cfg.large_cascade_rows,
        }
        self._sql = {
            name: sql.SQL(text).format(table=self.ident)  # type: ignore[arg-type]
            for name, text in {
                "agg": AGGREGATE_SQL,
                "tables": TABLES_SQL,
                "first": FIRST_APPEARANCE_SQL,
                "batch_end": BATCH_END_SQL,
                "tail_end": TAIL_END_SQL,
                "start_end": START_END_SQL,
                "held": HELD_BACK_SQL,
            }.items()
        }

    # -- lifecycle ------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint and the poller; returns the bound port."""
        # Deep listen queue, HEAD, /-/healthy: see deletion_monitor.httpserver.
        self._server = start_metrics_server(host, port, self.registry, "deletion audit exporter")
        # Logged here, on the serving path only, so that a failed start keeps its one-line error.
        argv_warning = password_on_command_line(self.cfg.dsn)
        if argv_warning:
            log.warning(argv_warning)
        self.start_polling()
        return int(self._server.server_port)

    def start_polling(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and not conn.closed:
            # A start-up aggregate over millions of rows must not delay shutdown: cancel it.
            with contextlib.suppress(Exception):
                conn.cancel_safe(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    # -- poller ---------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        was_down = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.cfg)
                if self._cursor is None:
                    self.initial_load()
                else:
                    self.poll_once()
                self.store.poll_finished(time.monotonic() - started, ok=True)
                if was_down:
                    log.info("database reachable again; caught up", extra={"table": self.cfg.table})
                failures, was_down = 0, False
                delay = self.cfg.poll_interval
            except Exception as exc:
                # Database errors and anything unexpected alike: count it, report up=0, keep
                # serving the last values and retry; a dead poller thread would look healthy.
                self.store.poll_finished(time.monotonic() - started, ok=False)
                self._close()
                failures += 1
                was_down = True
                # Exponential backoff from the poll interval up to max_backoff: a database that
                # is down is not hammered, one that is back is noticed within max_backoff.
                delay = min(self.cfg.max_backoff, self.cfg.poll_interval * 2 ** (failures - 1))
                if self._stop.is_set():
                    break
                log.warning(
                    "database poll failed; serving last values",
                    extra={
                        "error": safe_error(exc, self.cfg.dsn),
                        "error_class": type(exc).__name__,
                        "consecutive_failures": failures,
                        "retry_in_seconds": round(delay, 3),
                    },
                    exc_info=not isinstance(exc, psycopg.Error),
                )
            self._stop.wait(delay)
        self._close()

    def _aggregate(self, conn: psycopg.Connection[Any], lo: Cursor, hi: Cursor) -> Delta:
        params = {
            **self._params,
            "lo_tx": str(lo[0]),
            "lo_id": lo[1],
            "hi_tx": str(hi[0]),
            "hi_id": hi[1],
        }
        groups = conn.execute(self._sql["agg"], params).fetchall()
        tables = [
            (r["table_name"], int(r["rows"]))
            for r in conn.execute(self._sql["tables"], params).fetchall()
        ]
        known = self.store.table_names()
        new = [t for t, _ in tables if t not in known]
        if len(known) + len(new) > self.cfg.max_tables:
            order = [r["table_name"] for r in conn.execute(self._sql["first"], params)]
            rank = {name: i for i, name in enumerate(order)}
            tables.sort(key=lambda t: (t[0] not in known, rank.get(t[0], 0)))
        return Delta(groups=groups, tables=tables)

    def initial_load(self) -> None:
        """Aggregate everything below xmin in one repeatable-read snapshot; set the cursor."""
        assert self._conn is not None
        started = time.monotonic()
        conn = self._conn
        with conn.transaction():
            # The first statement fixes the snapshot; the aggregate below runs in the same one.
            end = conn.execute(self._sql["start_end"]).fetchone()
            hi: Cursor = (int(end["tx"]), int(end["id"])) if end else (0, 0)
            delta = self._aggregate(conn, (0, 0), hi) if end else Delta([], [])
        self.store.apply(delta)
        self._cursor = hi
        elapsed = time.monotonic() - started
        self.store.update(loaded=True, initial_load_seconds=elapsed)
        snap = self.store.snapshot()
        log.info(
            "initial load done",
            extra={
                "table": self.cfg.table,
                "rows": snap.ingested,
                "invalid_rows": sum(snap.invalid.values()),
                "seconds": round(elapsed, 3),
            },
        )
        self._update_lag(conn)

    def poll_once(self) -> int:
        """Ingest every committed row the cursor may pass; returns the number of rows read."""
        assert self._conn is not None and self._cursor is not None
        conn = self._conn
        total = 0
        while not self._stop.is_set():
            with conn.transaction():
                end = conn.execute(
                    self._sql["batch_end" if self.cfg.batch_size else "tail_end"],
                    {
                        "lo_tx": str(self._cursor[0]),
                        "lo_id": self._cursor[1],
                        "limit": self.cfg.batch_size,
                    },
                ).fetchone()
                if end is None:
                    break
                hi: Cursor = (int(end["tx"]), int(end["id"]))
                delta = self._aggregate(conn, self._cursor, hi)
            self.store.apply(delta)
            self._cursor = hi
            batch = sum(int(g["n"]) for g in delta.groups if g["kind"] == "rows")
            invalid = {
                g["invalid"]: int(g["n"])
                for g in delta.groups
                if g["kind"] == "rows" and g["invalid"]
            }
            if invalid:
                log.warning("skipped malformed audit rows", extra={"by_reason": invalid})
            total += batch
            if not self.cfg.batch_size or batch < self.cfg.batch_size:
                break
        self._update_lag(conn)
        return total

    def _update_lag(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(self._sql["held"]).fetchone()
        now = time.time()
        if row and row["held"]:
            # Lag counts from the first poll that saw rows pinned behind this same xmin.
            if self._held is None or self._held[0] != row["xmin"]:
                self._held = (row["xmin"], now)
            lag = now - self._held[1]
        else:
            self._held, lag = None, 0.0
        self.store.update(cursor_lag=lag)


# --- CLI -------------------------------------------------------------------------------------
def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value!r}")
    return number


def _non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value!r}")
    return int(value)


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", default=None, help="PostgreSQL connection string (default: env DATABASE_URL)"
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT to serve /metrics on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=5.0,
        help="seconds between polls for new rows (default 5)",
    )
    parser.add_argument(
        "--table",
        default="deletion_audit",
        help="audit table, [schema.]name (default deletion_audit)",
    )
    parser.add_argument(
        "--large-cascade-rows",
        type=_positive_int,
        default=100,
        help="rows_deleted sum that makes a deletion 'large' (default 100)",
    )
    parser.add_argument(
        "--batch-size",
        type=_non_negative_int,
        default=0,
        help="max rows per tail query; 0 (default): all committed rows in one aggregate "
        "(rows are aggregated on the server, never fetched, so memory does not depend on it)",
    )
    parser.add_argument(
        "--max-tables",
        type=_positive_int,
        default=50,
        help="distinct table label values before table='other' (default 50)",
    )
    add_log_level(parser)
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="connect, verify the table and its columns, exit 0 (ok) or 2",
    )


def _fail(message: str) -> int:
    sys.stderr.write(f"deletion-monitor audit-exporter: error: {message}\n")
    return 2


def _duration_buckets() -> tuple[float, ...]:
    """The config's durationBuckets (one source of truth); the built-in copy if it is absent."""
    try:
        from deletion_monitor.config import load_config

        buckets = load_config().get("durationBuckets")
    except Exception:
        return DEFAULT_DURATION_BUCKETS
    return tuple(float(b) for b in buckets) if buckets else DEFAULT_DURATION_BUCKETS


def run(args: argparse.Namespace) -> int:
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    if not dsn:
        return _fail("--dsn: not given and DATABASE_URL is not set")
    # From here on every output line masks this DSN's password, even where libpq quotes a piece
    # of a string it could not parse; the parse error itself never echoes the DSN.
    register_dsn(dsn)
    problem = dsn_problem(dsn)
    if problem:
        return _fail(f"--dsn: {problem}")
    cfg = ExporterConfig(
        dsn=dsn,
        table=args.table,
        poll_interval=args.poll_interval,
        large_cascade_rows=args.large_cascade_rows,
        batch_size=args.batch_size,
        max_tables=args.max_tables,
        duration_buckets=_duration_buckets(),
    )
    unreachable: str | None = None
    try:
        table_identifier(cfg.table)
        try:
            with connect(cfg) as conn:
                warnings = check_table(conn, cfg.table)
        except psycopg.Error as exc:
            # A server that is down or restarting is an outage, not a wrong config: serve up=0
            # and catch up when it is back. --check-only, and a server that answers but rejects
            # the DSN (password, database name, unresolvable host), fail at once.
            if args.check_only or not is_unreachable(exc):
                raise SetupError(f"--dsn: cannot connect: {safe_error(exc, dsn)}") from None
            unreachable, warnings = safe_error(exc, dsn), []
    except SetupError as exc:
        return _fail(str(exc))
    if args.check_only:
        return 0

    setup_logging(args.log_level)
    if unreachable is not None:
        log.warning(
            "database unreachable at start-up; serving deletion_audit_up 0 and retrying",
            extra={"error": unreachable},
        )
    for warning in warnings:
        log.warning(warning)
    exporter = AuditExporter(cfg)
    host, port = args.listen
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        bound = exporter.serve(host, port)
    except OSError as exc:
        return _fail(f"--listen: cannot listen on {host}:{port}: {exc.strerror or exc}")
    log.info(
        "audit exporter started",
        extra={
            "listen": f"{host}:{bound}",
            "table": cfg.table,
            "poll_interval": cfg.poll_interval,
        },
    )
    stop.wait()
    log.info("stopping")
    exporter.stop()
    return 0


def scrape_values(text: str) -> Mapping[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(sample name, sorted labels): value} (tests, bench, demo)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
