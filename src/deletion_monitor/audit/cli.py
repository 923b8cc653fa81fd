"""`deletion-monitor audit-exporter`: the command line of the audit exporter (flags, their
bounds and types, the start-up checks), which then runs the poller and serves /metrics."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
from typing import Any

import psycopg
from psycopg.rows import dict_row

from deletion_monitor.audit import checkpoint as ckpt
from deletion_monitor.audit.exporter import (
    ExporterConfig,
    SetupError,
    check_table,
    connect,
    safe_error,
    table_identifier,
)
from deletion_monitor.audit.poller import MAX_POLL_INTERVAL, AuditExporter
from deletion_monitor.audit.state import DEFAULT_DURATION_BUCKETS
from deletion_monitor.common.cliargs import add_log_level, listen_address
from deletion_monitor.common.log import setup_logging
from deletion_monitor.common.pgerrors import is_unreachable
from deletion_monitor.common.redaction import dsn_problem, password_on_command_line, register_dsn

HELP = "Serve the deletion audit log (deletion_audit table) as Prometheus metrics."
DEFAULT_LISTEN = "0.0.0.0:9817"
# The audit exporter's logger (the poller logs under the same name).
log = logging.getLogger("deletion_monitor.audit.exporter")


# Bounds of every numeric flag (docs/metrics.md); the top of --poll-interval is the poller's
# MAX_POLL_INTERVAL, the longest it ever waits.
MIN_POLL_INTERVAL = 0.01
MAX_LARGE_CASCADE_ROWS = 10**15 - 1  # rows_deleted counts have at most 15 digits
MAX_BATCH_SIZE = 10_000_000
MAX_TABLES = 10_000
MAX_CHUNK_ROWS = 100_000_000
# Each is a backend on the audit database for as long as a long range is aggregated.
MAX_AGGREGATE_CONNECTIONS = 8
MAX_RECONCILE_INTERVAL = 86_400.0
MIN_CHECKPOINT_INTERVAL = 1.0
MAX_CHECKPOINT_INTERVAL = 86_400.0


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
        "--aggregate-connections",
        type=_whole(1, MAX_AGGREGATE_CONNECTIONS),
        default=2,
        help="connections that aggregate the chunks of a long range (start-up, a burst, a "
        "backlog) at once, on one snapshot; 1: sequential (default 2)",
    )
    parser.add_argument(
        "--reconcile-interval",
        type=_seconds(1, MAX_RECONCILE_INTERVAL, zero_ok=True),
        default=300.0,
        help="seconds between counts of the rows behind the cursor "
        "(deletion_audit_rows_behind_cursor_unaccounted); 0 disables (default 300)",
    )
    store = parser.add_mutually_exclusive_group()
    store.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="keep checkpoints (cursor and aggregates) in this local file, written atomically; "
        "a restart resumes from it instead of aggregating the whole table",
    )
    store.add_argument(
        "--checkpoint-table",
        nargs="?",
        const=ckpt.DEFAULT_CHECKPOINT_TABLE,
        default=None,
        metavar="TABLE",
        help="keep checkpoints in this table of the monitored database (default name "
        f"{ckpt.DEFAULT_CHECKPOINT_TABLE}; deletion_audit_checkpoint.sql creates it)",
    )
    parser.add_argument(
        "--exporter-id",
        default=None,
        help="this replica's row in the checkpoint table (default: the host name); each "
        "replica needs its own, stable across restarts",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=_seconds(MIN_CHECKPOINT_INTERVAL, MAX_CHECKPOINT_INTERVAL),
        default=60.0,
        help="seconds between checkpoints (also written at start-up and on shutdown; default 60)",
    )
    add_log_level(parser)
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="connect, verify the table and its columns, print its warnings (a cursor without an "
        "index); exit 0 (ok) or 2",
    )


def _fail(message: str) -> int:
    sys.stderr.write(f"deletion-monitor audit-exporter: error: {message}\n")
    return 2


def _duration_buckets() -> tuple[float, ...]:
    """The config's durationBuckets (one source of truth); the built-in copy if there is no
    config file. A config that is there but invalid raises ConfigError (exit 2)."""
    from deletion_monitor.common.config import ConfigFileNotFound, load_config

    try:
        buckets = load_config().get("durationBuckets")
    except ConfigFileNotFound:
        return DEFAULT_DURATION_BUCKETS
    return tuple(float(b) for b in buckets) if buckets else DEFAULT_DURATION_BUCKETS


def checkpoint_store(args: argparse.Namespace, cfg: ExporterConfig) -> ckpt.CheckpointStore | None:
    """The store the flags ask for (None: full aggregation at every start-up)."""
    if args.state_file:
        return ckpt.FileCheckpointStore(args.state_file)
    if args.checkpoint_table:
        table_identifier(args.checkpoint_table)  # the same name rules as --table

        def connect_rw() -> psycopg.Connection[Any]:
            conn = psycopg.connect(
                cfg.dsn,
                autocommit=True,
                connect_timeout=cfg.connect_timeout,
                application_name="deletion-audit-exporter-checkpoint",
                row_factory=dict_row,
            )
            # The monitoring login's transactions are read-only by default (grants.sql); this
            # connection only ever upserts its own checkpoint row, the one table it may write.
            conn.execute("SET default_transaction_read_only = off")
            return conn

        return ckpt.TableCheckpointStore(
            connect_rw,
            exporter_id=args.exporter_id or socket.gethostname(),
            audit_table=cfg.table,
            table=args.checkpoint_table,
        )
    return None


SELECT_PRIVILEGE_SQL = "SELECT has_table_privilege(to_regclass(%(t)s), 'SELECT') AS ok"


def check_select_privilege(conn: psycopg.Connection[Any], table: str) -> None:
    """SetupError unless this role may SELECT the audit table (--check-only reads only the
    catalog otherwise, and would pass a login that cannot read a single row)."""
    row = conn.execute(
        SELECT_PRIVILEGE_SQL, {"t": table_identifier(table).as_string(conn)}
    ).fetchone()
    if row is None or not row["ok"]:
        raise SetupError(f"--table: this role lacks SELECT on {table} (grants.sql)")


CHECKPOINT_PRIVILEGES_SQL = """
SELECT to_regclass(%(t)s) IS NOT NULL AS present,
       to_regclass(%(t)s) IS NOT NULL
       AND has_table_privilege(to_regclass(%(t)s), 'SELECT, INSERT, UPDATE') AS writable
"""


def check_checkpoint_store(conn: psycopg.Connection[Any], args: argparse.Namespace) -> None:
    """SetupError when the checkpoint store cannot be used (checked at start and --check-only)."""
    if args.state_file:
        try:
            ckpt.FileCheckpointStore(args.state_file).check_writable()
        except ckpt.CheckpointError as exc:
            raise SetupError(f"--state-file: {exc}") from None
    elif args.checkpoint_table:
        ident = table_identifier(args.checkpoint_table).as_string(conn)
        row = conn.execute(CHECKPOINT_PRIVILEGES_SQL, {"t": ident}).fetchone()
        if row is None or not row["present"]:
            raise SetupError(
                f"--checkpoint-table: table {args.checkpoint_table} does not exist "
                "(apply deletion_audit_checkpoint.sql: deletion-monitor schema "
                "deletion_audit_checkpoint)"
            )
        if not row["writable"]:
            raise SetupError(
                f"--checkpoint-table: this role lacks SELECT, INSERT and UPDATE on "
                f"{args.checkpoint_table} (grants.sql)"
            )
    elif args.exporter_id:
        raise SetupError("--exporter-id: only meaningful with --checkpoint-table")


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
    from deletion_monitor.common.config import ConfigError

    try:
        duration_buckets = _duration_buckets()
    except ConfigError as exc:
        return _fail(str(exc))
    cfg = ExporterConfig(
        dsn=dsn,
        table=args.table,
        poll_interval=args.poll_interval,
        large_cascade_rows=args.large_cascade_rows,
        batch_size=args.batch_size,
        max_tables=args.max_tables,
        duration_buckets=duration_buckets,
        initial_chunk_rows=args.initial_chunk_rows,
        aggregate_connections=args.aggregate_connections,
        reconcile_interval=args.reconcile_interval,
    )
    unreachable: str | None = None
    try:
        table_identifier(cfg.table)
        try:
            with connect(cfg) as conn:
                warnings = check_table(conn, cfg.table)
                check_select_privilege(conn, cfg.table)
                check_checkpoint_store(conn, args)
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
        # After the check passed, so that a failed check keeps its one-line error. The table's
        # warnings (a cursor without an index) are what a pre-deploy check is for: shown here,
        # not only in the running exporter's log.
        argv_warning = password_on_command_line(dsn)
        for warning in [*warnings, *([argv_warning] if argv_warning else [])]:
            sys.stderr.write(f"deletion-monitor audit-exporter: warning: {warning}\n")
        print(f"deletion-monitor audit-exporter: {cfg.table}: ok")
        return 0

    setup_logging(args.log_level)
    if unreachable is not None:
        log.warning(
            "database unreachable at start-up; serving deletion_audit_up 0 and retrying",
            extra={"error": unreachable},
        )
    for warning in warnings:
        log.warning(warning)
    if unreachable is not None and args.state_file:
        try:  # the file check needs no database
            ckpt.FileCheckpointStore(args.state_file).check_writable()
        except ckpt.CheckpointError as exc:
            return _fail(f"--state-file: {exc}")
    exporter = AuditExporter(
        cfg,
        checkpoints=checkpoint_store(args, cfg),
        checkpoint_interval=args.checkpoint_interval,
    )
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
