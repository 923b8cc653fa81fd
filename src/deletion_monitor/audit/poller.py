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
import math
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

from deletion_monitor.audit.state import (
    CASCADE_BUCKETS,
    DEFAULT_DURATION_BUCKETS,
    ERROR_TYPES,
    MAX_DURATION_SECONDS,
    MAX_OCCURRED_AT,
    MIN_OCCURRED_AT,
    USER_TYPES,
    AuditCollector,
    AuditState,
    AuditStateStore,
    Delta,
    delta_rows,
)
from deletion_monitor.common.cliargs import add_log_level, listen_address
from deletion_monitor.common.httpserver import start_metrics_server
from deletion_monitor.common.log import setup_logging
from deletion_monitor.common.pgerrors import is_unreachable
from deletion_monitor.common.redaction import (
    dsn_problem,
    error_line,
    password_on_command_line,
    register_dsn,
)

HELP = "Serve the deletion audit log (deletion_audit table) as Prometheus metrics."
DEFAULT_LISTEN = "0.0.0.0:9817"
log = logging.getLogger("deletion_monitor.audit.exporter")

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
# Seconds between "initial load progress" log lines during a long start-up.
LOAD_PROGRESS_LOG_SECONDS = 10.0
# Lag marks kept (one per poll that saw a newer held-back row): a day of 5 s polls.
_MAX_LAG_MARKS = 20_000


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
           -- occurred_at only where the epoch math and Python's datetime work (years 1-9999
           -- UTC); 'infinity', BC dates, year 10000+ and NULL become NULL: bad_occurred_at.
           CASE WHEN a.occurred_at >= %(min_at)s::timestamptz
                 AND a.occurred_at < %(max_at)s::timestamptz
                THEN a.occurred_at END AS occurred_at,
           a.app_version::text AS app_version,
           (a.performed_by IS NOT NULL AND a.performed_by::text = a.target_user_id::text)
               AS self_del,
           a.rows_deleted,
           jsonb_typeof(a.rows_deleted) AS rdt,
           -- A per-table count must be a non-negative integer literal of at most 15 digits.
           -- jsonb prints an object as {{"k": v, ...}} and a number without exponent: a value
           -- that does not start with a digit (string, negative, null, true, array, object),
           -- has a fraction, or has 16+ digits is caught by one regex per row, which is several
           -- times cheaper than expanding the object with jsonb_each. The regex can also match
           -- inside a key (`{{"a\": x": 1}}`), so the CASE below checks the (rare) rows that
           -- match value by value, and tells the two reasons apart.
           coalesce(jsonb_typeof(a.rows_deleted) = 'object'
                    AND a.rows_deleted::text ~ '": ([^0-9]|[0-9]+[^0-9,}}]|[0-9]{{16}})', false)
               AS bad
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
                WHEN d > %(max_duration)s::float8 THEN 'duration_too_large'
                WHEN occurred_at IS NULL THEN 'bad_occurred_at'
                WHEN rdt IS NOT NULL AND rdt NOT IN ('object', 'null') THEN 'bad_rows_deleted'
                WHEN bad THEN
                    CASE WHEN EXISTS (SELECT 1 FROM jsonb_each(rows_deleted) e
                                      WHERE jsonb_typeof(e.value) <> 'number'
                                         OR e.value::text !~ '^[0-9]+$')
                             THEN 'bad_rows_deleted'
                         WHEN EXISTS (SELECT 1 FROM jsonb_each_text(rows_deleted) e
                                      WHERE length(e.value) > 15)
                             THEN 'rows_deleted_too_large'
                    END  -- NULL: the regex matched inside a key only; the row is valid
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
       count(*) AS n,
       -- The duration sum in whole nanoseconds, summed exactly (numeric): a float sum depends
       -- on how the rows were split into batches, so a restart (one start-up aggregate) could
       -- serve a _sum a few ulps below the tailed one, which rate() reads as a counter reset.
       sum(round(d::numeric * 1000000000)) AS dsum_ns, sum(cascade_total) AS tsum,
       extract(epoch FROM min(occurred_at))::float8 AS min_at,
       extract(epoch FROM max(occurred_at))::float8 AS max_at
FROM (
    -- d only for valid rows: the invalid groups sum nothing (two durations of 1e308 in one
    -- group would overflow sum() and fail the poll on every retry).
    SELECT invalid, outcome, user_type, et AS error_type, bucket, self_del, app_version,
           CASE WHEN invalid IS NULL THEN d END AS d,
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

# Only needed when new tables would overflow --max-tables: the (tx, id) of each table's first
# row, so that the same tables keep their own label after a restart whatever the batches were.
# The first appearance is one row's (tx, id) (DISTINCT ON), not min(tx) and min(id) taken from two
# different rows; tables first seen in the same row are ordered by name.
FIRST_APPEARANCE_SQL = (
    _SRC.replace("{fence}", "").replace(
        "SELECT a.outcome::text", "SELECT a.tx, a.id, a.outcome::text"
    )
    + """
SELECT f.table_name FROM (
    SELECT DISTINCT ON (e.key) e.key AS table_name, v.tx, v.id
    FROM v CROSS JOIN LATERAL jsonb_object_keys(v.rows_deleted) e(key)
    WHERE v.invalid IS NULL AND v.outcome = 'success' AND v.rdt = 'object'
    ORDER BY e.key, v.tx, v.id
) f
ORDER BY f.tx, f.id, f.table_name
"""
)

# Every ORDER BY below names the table's columns (a.tx, s.tx), never the output alias `tx`: the
# alias is tx::text, and ordering by it sorts '999' after '1000', which stopped the start-up
# aggregate early whenever the tx values spanned a power of ten.
# Cursor end of the next batch: largest (tx, id) among the next `limit` rows below xmin.
BATCH_END_SQL = """
SELECT s.tx::text AS tx, s.id FROM (
    SELECT a.tx, a.id FROM {table} a
    WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
      AND a.tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY a.tx, a.id LIMIT %(limit)s
) s ORDER BY s.tx DESC, s.id DESC LIMIT 1
"""
# Without a batch limit: the largest (tx, id) below xmin, one backward index probe.
TAIL_END_SQL = """
SELECT a.tx::text AS tx, a.id FROM {table} a
WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
  AND a.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY a.tx DESC, a.id DESC LIMIT 1
"""
START_END_SQL = """
SELECT a.tx::text AS tx, a.id FROM {table} a
WHERE a.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY a.tx DESC, a.id DESC LIMIT 1
"""
# End of one start-up chunk: the (tx, id) `skip` rows after lo (None: the rest fits in one chunk).
CHUNK_END_SQL = """
SELECT a.tx::text AS tx, a.id FROM {table} a
WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
  AND (a.tx, a.id) <= (%(hi_tx)s::text::xid8, %(hi_id)s)
ORDER BY a.tx, a.id OFFSET %(skip)s LIMIT 1
"""
# Rows the start-up load will read, for the progress gauge: the planner's estimate (free), or,
# for a table never analysed (reltuples -1, or 0 before PostgreSQL 14), the id range (two probes
# of the primary key).
ESTIMATE_SQL = """
SELECT coalesce(
    (SELECT c.reltuples::float8 FROM pg_class c
     WHERE c.oid = to_regclass(%(table)s) AND c.reltuples > 0),
    (SELECT (max(a.id) - min(a.id) + 1)::float8 FROM {table} a),
    0) AS estimate
"""
# After a poll, in one statement: xmin; the newest committed row the cursor may not pass yet
# (tx >= xmin: an older transaction is still open); and the committed rows whose tx is at or
# beyond xmax, the first transaction id this cluster has not handed out yet: they were written by
# another cluster (dump/restore, logical replication) and will never fall below xmin.
HELD_BACK_SQL = """
SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
       h.tx::text AS held_tx, h.id AS held_id,
       (SELECT count(*) FROM {table} f
        WHERE f.tx >= pg_snapshot_xmax(pg_current_snapshot())) AS foreign_rows
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT a.tx, a.id FROM {table} a
    WHERE a.tx >= pg_snapshot_xmin(pg_current_snapshot())
      AND a.tx < pg_snapshot_xmax(pg_current_snapshot())
    ORDER BY a.tx DESC, a.id DESC LIMIT 1
) h ON true
"""
# Reconciliation: rows at or below the cursor now, against the rows ingested. A row inserted with
# an explicit tx below the cursor after the cursor passed it is never read; retention deletes
# lower the count.
BEHIND_CURSOR_SQL = """
SELECT count(*) AS n FROM {table} a
WHERE (a.tx, a.id) <= (%(tx)s::text::xid8, %(id)s)
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
    # Start-up aggregate in chunks of this many rows (one snapshot): progress and liveness.
    initial_chunk_rows: int = 500_000
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
        # Lag marks: (newest held-back (tx, id) seen, when first seen), in time order and so in
        # increasing (tx, id). The first mark above the cursor tells when the oldest row still
        # held back was first seen (see _held_fields).
        self._held_marks: list[tuple[Cursor, float]] = []
        self._foreign_logged: int = 0
        self._unaccounted_logged: int = 0
        self._next_reconcile = 0.0
        self._params: dict[str, Any] = {
            "user_types": list(USER_TYPES),
            "error_types": [e for e in ERROR_TYPES if e != "unknown"],
            "n_dur": len(cfg.duration_buckets),
            "neg_dur": sorted(-float(b) for b in cfg.duration_buckets),
            "n_cas": len(CASCADE_BUCKETS),
            "neg_cas": sorted(-float(b) for b in CASCADE_BUCKETS),
            "large": cfg.large_cascade_rows,
            "max_duration": MAX_DURATION_SECONDS,
            "min_at": MIN_OCCURRED_AT,
            "max_at": MAX_OCCURRED_AT,
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
                "chunk_end": CHUNK_END_SQL,
                "estimate": ESTIMATE_SQL,
                "behind": BEHIND_CURSOR_SQL,
            }.items()
        }

    # -- lifecycle ------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint and the poller; returns the bound port."""
        # Deep listen queue, HEAD, /-/healthy: see deletion_monitor.common.httpserver.
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
            try:
                failures, was_down, delay = self._cycle(failures, was_down)
            except Exception as exc:
                # Last resort: a bug in the error path itself (logging, bookkeeping) must not end
                # the thread either; a dead poller behind a live HTTP server looks healthy.
                failures += 1
                delay = self.cfg.max_backoff
                with contextlib.suppress(Exception):
                    log.error("poller error; retrying", extra={"error_class": type(exc).__name__})
            # Clamp: Event.wait() raises on a NaN, infinite or huge timeout.
            finite = math.isfinite(delay)
            self._stop.wait(min(max(delay, 0.0), MAX_POLL_INTERVAL) if finite else 1.0)
        self._close()

    def _cycle(self, failures: int, was_down: bool) -> tuple[int, bool, float]:
        """One poll (or start-up load) with its error handling: (failures, was_down, delay)."""
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
            return 0, False, self.cfg.poll_interval
        except Exception as exc:
            # Database errors and anything unexpected alike: count it, report up=0, keep
            # serving the last values and retry.
            self.store.poll_finished(time.monotonic() - started, ok=False)
            self._close()
            failures += 1
            delay = backoff_delay(failures, self.cfg.poll_interval, self.cfg.max_backoff)
            if not self._stop.is_set():
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
            return failures, True, delay

    def _aggregate(
        self, conn: psycopg.Connection[Any], lo: Cursor, hi: Cursor, store: AuditStateStore
    ) -> Delta:
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
        known = store.table_names()
        new = [t for t, _ in tables if t not in known]
        if len(known) + len(new) > self.cfg.max_tables:
            order = [r["table_name"] for r in conn.execute(self._sql["first"], params)]
            rank = {name: i for i, name in enumerate(order)}
            tables.sort(key=lambda t: (t[0] not in known, rank.get(t[0], 0)))
        return Delta(groups=groups, tables=tables)

    def _new_state(self) -> AuditState:
        return AuditState(
            duration_bounds=tuple(self.cfg.duration_buckets),
            max_tables=self.cfg.max_tables,
            max_app_versions=self.cfg.max_app_versions,
        )

    def initial_load(self) -> None:
        """Aggregate everything below xmin in one repeatable-read snapshot; set the cursor.

        The rows are aggregated in chunks of (tx, id) ranges inside that one snapshot, merged
        into a private state and published only at the end: no deletion series is served
        before the totals are complete, while up (the database answers) and the progress
        gauges move after every chunk.
        """
        assert self._conn is not None
        started = time.monotonic()
        conn = self._conn
        private = AuditStateStore(self._new_state())
        done = 0
        with conn.transaction():
            # The first statement fixes the snapshot; every chunk below runs in the same one.
            end = conn.execute(self._sql["start_end"]).fetchone()
            hi: Cursor = (int(end["tx"]), int(end["id"])) if end else (0, 0)
            row = conn.execute(
                self._sql["estimate"], {"table": self.ident.as_string(conn)}
            ).fetchone()
            estimate = int(row["estimate"]) if end and row else 0
            self.store.update(up=1, load_rows_done=0, load_rows_estimated=estimate)
            log.info(
                "initial load started",
                extra={"table": self.cfg.table, "rows_estimated": estimate},
            )
            last_log = time.monotonic()
            lo: Cursor = (0, 0)
            while lo < hi:
                if self._stop.is_set():
                    return  # shutting down: nothing half-loaded is ever published
                chunk = conn.execute(
                    self._sql["chunk_end"],
                    {
                        "lo_tx": str(lo[0]),
                        "lo_id": lo[1],
                        "hi_tx": str(hi[0]),
                        "hi_id": hi[1],
                        "skip": max(self.cfg.initial_chunk_rows, 1) - 1,
                    },
                ).fetchone()
                upto: Cursor = (int(chunk["tx"]), int(chunk["id"])) if chunk else hi
                delta = self._aggregate(conn, lo, upto, private)
                private.apply(delta)
                done += delta_rows(delta)
                lo = upto
                estimate = max(estimate, done)  # reltuples may be stale: never below done
                self.store.update(up=1, load_rows_done=done, load_rows_estimated=estimate)
                if time.monotonic() - last_log >= LOAD_PROGRESS_LOG_SECONDS:
                    last_log = time.monotonic()
                    log.info(
                        "initial load progress",
                        extra={
                            "table": self.cfg.table,
                            "rows_done": done,
                            "rows_estimated": estimate,
                            "seconds": round(last_log - started, 1),
                        },
                    )
                self._load_chunk_done(done)
            # Held-back and foreign rows as of the same snapshot, so that the first scrape with
            # counters has every gauge too (no series appears a poll later than the rest).
            held_fields = self._held_fields(conn, hi)
        elapsed = time.monotonic() - started
        self.store.publish_rows(
            private.snapshot(),
            initial_load_seconds=elapsed,
            load_rows_done=done,
            load_rows_estimated=done,
            # By construction the load read every row at or below its cursor: nothing is
            # unaccounted for yet; the first count follows one --reconcile-interval later.
            rows_unaccounted=0 if self.cfg.reconcile_interval > 0 else None,
            **held_fields,
        )
        self._cursor = hi
        self._next_reconcile = time.monotonic() + self.cfg.reconcile_interval
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

    def _load_chunk_done(self, rows_done: int) -> None:
        """Called after each start-up chunk (tests slow the load down here)."""

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
                delta = self._aggregate(conn, self._cursor, hi, self.store)
            self.store.apply(delta)
            self._cursor = hi
            batch = delta_rows(delta)
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
        self._after_poll(conn)
        return total

    def _after_poll(self, conn: psycopg.Connection[Any]) -> None:
        assert self._cursor is not None
        self.store.update(**self._held_fields(conn, self._cursor))
        if self.cfg.reconcile_interval > 0 and time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + self.cfg.reconcile_interval
            self._reconcile(conn)

    def _held_fields(self, conn: psycopg.Connection[Any], cursor: Cursor) -> dict[str, Any]:
        """cursor_lag and foreign_tx_rows for the state (after a poll, or in the load snapshot).

        Cursor lag = now - when the oldest row still held back was first seen by a poll.

        Not "since xmin last moved": with overlapping long transactions xmin moves while the
        same rows stay held, and the lag must keep growing. Marks record, per poll that saw a
        newer held row, that row's (tx, id) and the time; rows up to a mark were all seen by
        then, so the first mark above the cursor dates the oldest row still held.
        """
        row = conn.execute(self._sql["held"]).fetchone()
        now = time.time()
        marks = [m for m in self._held_marks if m[0] > cursor]
        if row is not None and row["held_tx"] is not None:
            held: Cursor = (int(row["held_tx"]), int(row["held_id"]))
            if not marks or held > marks[-1][0]:
                if len(marks) >= _MAX_LAG_MARKS:
                    # Bounded memory: fold into the newest mark, which makes newer rows look
                    # older (over-reports the lag; never under-reports it).
                    marks[-1] = (held, marks[-1][1])
                else:
                    marks.append((held, now))
            lag = now - marks[0][1]
        else:
            marks, lag = [], 0.0
        self._held_marks = marks
        foreign = int(row["foreign_rows"]) if row is not None else 0
        if foreign != self._foreign_logged:
            self._foreign_logged = foreign
            if foreign:
                # The count only, never row contents (ids, users).
                log.warning(
                    "audit rows with a transaction id ahead of this cluster's are never "
                    "ingested (written by another cluster?); see docs/audit-log.md",
                    extra={"table": self.cfg.table, "foreign_tx_rows": foreign},
                )
        return {"cursor_lag": lag, "foreign_tx_rows": foreign}

    def _reconcile(self, conn: psycopg.Connection[Any]) -> None:
        """Count the rows at or below the cursor and compare with the rows ingested."""
        assert self._cursor is not None
        row = conn.execute(
            self._sql["behind"], {"tx": str(self._cursor[0]), "id": self._cursor[1]}
        ).fetchone()
        ingested = self.store.snapshot().ingested
        unaccounted = int(row["n"]) - ingested if row is not None else 0
        if unaccounted != self._unaccounted_logged:
            self._unaccounted_logged = unaccounted
            if unaccounted:
                log.warning(
                    "audit rows behind the cursor differ from the rows ingested: rows inserted "
                    "with an old tx (> 0) or deleted (< 0); see docs/audit-log.md",
                    extra={"table": self.cfg.table, "unaccounted_rows": unaccounted},
                )
        self.store.update(rows_unaccounted=unaccounted)


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds before retry number `failures`: base * 2**(failures - 1), at most `cap`.

    The exponent is capped: 2 ** 1024 overflows a float, which once ended the poller after about
    a thousand consecutive failures. 2 ** 60 times any allowed poll interval is still finite.
    """
    exponent = min(max(failures - 1, 0), 60)
    return min(cap, base * 2.0**exponent)


# --- CLI -------------------------------------------------------------------------------------
# Bounds of every numeric flag (docs/metrics.md). An infinite or huge --poll-interval once made
# the poller wait forever (or crash in Event.wait) while deletion_audit_up stayed 1.
MAX_POLL_INTERVAL = 3600.0
MIN_POLL_INTERVAL = 0.01
MAX_LARGE_CASCADE_ROWS = 10**15 - 1  # rows_deleted counts have at most 15 digits
MAX_BATCH_SIZE = 10_000_000
MAX_TABLES = 10_000
MAX_CHUNK_ROWS = 100_000_000
MAX_RECONCILE_INTERVAL = 86_400.0


def _seconds(lo: float, hi: float, zero_ok: bool = False) -> Any:
    """argparse type: a finite number of seconds in [lo, hi] (or exactly 0 when zero_ok)."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if zero_ok and number == 0:
            return 0.0
        if not (math.isfinite(number) and lo <= number <= hi):
            extra = "0 or " if zero_ok else ""
            raise argparse.ArgumentTypeError(
                f"expected {extra}a finite number of seconds from {lo:g} to {hi:g}, got {value!r}"
            )
        return number

    return parse


def _whole(lo: int, hi: int) -> Any:
    """argparse type: a whole number in [lo, hi], ASCII digits only."""

    def parse(value: str) -> int:
        # ASCII digits and a bounded length: int() of thousands of digits is slow (and refused
        # above 4300), and str.isdigit() accepts other scripts' digits.
        if not re.fullmatch(r"[0-9]{1,20}", value) or not lo <= int(value) <= hi:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {lo} to {hi}, got {value!r}"
            )
        return int(value)

    return parse


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
        type=_seconds(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL),
        default=5.0,
        help=f"seconds between polls for new rows, {MIN_POLL_INTERVAL:g} to "
        f"{MAX_POLL_INTERVAL:g} (default 5)",
    )
    parser.add_argument(
        "--table",
        default="deletion_audit",
        help="audit table, [schema.]name (default deletion_audit)",
    )
    parser.add_argument(
        "--large-cascade-rows",
        type=_whole(1, MAX_LARGE_CASCADE_ROWS),
        default=100,
        help="rows_deleted sum that makes a deletion 'large' (default 100)",
    )
    parser.add_argument(
        "--batch-size",
        type=_whole(0, MAX_BATCH_SIZE),
        default=0,
        help="max rows per tail query; 0 (default): all committed rows in one aggregate "
        "(rows are aggregated on the server, never fetched, so memory does not depend on it)",
    )
    parser.add_argument(
        "--max-tables",
        type=_whole(1, MAX_TABLES),
        default=50,
        help="distinct table label values before table='other' (default 50)",
    )
    parser.add_argument(
        "--initial-chunk-rows",
        type=_whole(1, MAX_CHUNK_ROWS),
        default=500_000,
        help="rows per chunk of the start-up aggregate (one snapshot; progress is reported "
        "after each chunk; default 500000)",
    )
    parser.add_argument(
        "--reconcile-interval",
        type=_seconds(1, MAX_RECONCILE_INTERVAL, zero_ok=True),
        default=300.0,
        help="seconds between counts of the rows behind the cursor "
        "(deletion_audit_rows_behind_cursor_unaccounted); 0 disables (default 300)",
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
        from deletion_monitor.common.config import load_config

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
        initial_chunk_rows=args.initial_chunk_rows,
        reconcile_interval=args.reconcile_interval,
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
        # After the check passed, so that a failed check keeps its one-line error.
        argv_warning = password_on_command_line(dsn)
        if argv_warning:
            sys.stderr.write(f"deletion-monitor audit-exporter: warning: {argv_warning}\n")
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
