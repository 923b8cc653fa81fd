"""`deletion-monitor integrity-exporter`: background integrity checks exported to Prometheus."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry

from deletion_monitor import __version__
from deletion_monitor.common.cliargs import add_log_level, int_between, listen_address, seconds
from deletion_monitor.common.httpserver import start_metrics_server
from deletion_monitor.common.log import setup_logging
from deletion_monitor.common.pgerrors import is_unreachable
from deletion_monitor.common.redaction import (
    dsn_problem,
    error_line,
    password_on_command_line,
    redact_dsn,
    register_dsn,
)
from deletion_monitor.integrity.checks import (
    DEFAULT_CHECKS_PATH,
    Check,
    CheckConfigError,
    load_checks,
)
from deletion_monitor.integrity.collector import IntegrityCollector
from deletion_monitor.integrity.runner import connect, missing_tables, quote_table
from deletion_monitor.integrity.scheduler import DEFAULT_POOL_SIZE, MAX_POOL_SIZE, Scheduler
from deletion_monitor.integrity.sqltext import bounded

HELP = "Run the data-integrity checks in the background and export the results (default :9818)."
DEFAULT_LISTEN = ":9818"
# A probe every hour at most: deletion_integrity_up must react within minutes, not days.
MAX_HEALTH_INTERVAL = 3600.0

log = logging.getLogger("deletion_monitor.integrity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL connection string (default: $DATABASE_URL; prefer the variable: "
        "arguments are visible to every local user in ps)",
    )
    parser.add_argument(
        "--checks",
        type=Path,
        default=DEFAULT_CHECKS_PATH,
        help="checks YAML file (default: the packaged checks/default.yml)",
    )
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="validate the checks file, then connect, list the checks whose tables do not "
        "exist (not applicable) and have the database plan (not run) every other one; exit 0, "
        "or 2 (bad file, database unreachable or refusing a check, no check applies)",
    )
    parser.add_argument(
        "--file-only",
        action="store_true",
        help="with --check-only: validate the checks file alone, without contacting any "
        "database (the output says so)",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=DEFAULT_LISTEN,
        help=f"[host]:port for /metrics (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--health-interval",
        type=seconds(MAX_HEALTH_INTERVAL),
        default=15.0,
        help="seconds between database reachability probes, at most "
        f"{MAX_HEALTH_INTERVAL:g} (default 15)",
    )
    parser.add_argument(
        "--pool-size",
        type=int_between(1, MAX_POOL_SIZE),
        default=DEFAULT_POOL_SIZE,
        help="database connections the checks share, 1 to "
        f"{MAX_POOL_SIZE}; the exporter holds at most this plus one (the health probe) "
        f"(default {DEFAULT_POOL_SIZE})",
    )
    add_log_level(parser)


class VerifyError(Exception):
    """--check-only: the database refused a check (or the connection); one line."""


# The relations a plan reads that are not covered by a check's `tables`: listed ones, the
# relations a listed view reads (recursively), and partitions of a listed table. System
# catalogs are always there, so they need no listing.
_UNLISTED = """
WITH RECURSIVE listed(oid) AS (
  SELECT to_regclass(q)::oid FROM unnest(%s::text[]) AS q
  UNION
  SELECT d.refobjid FROM listed l
  JOIN pg_rewrite r ON r.ev_class = l.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> l.oid
)
SELECT DISTINCT c.oid::regclass::text
FROM unnest(%s::text[], %s::text[]) AS p(nsp, rel)
JOIN pg_namespace n ON n.nspname = p.nsp
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.rel
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND c.oid NOT IN (SELECT oid FROM listed WHERE oid IS NOT NULL)
  AND coalesce(pg_partition_root(c.oid)::oid, c.oid) NOT IN
      (SELECT oid FROM listed WHERE oid IS NOT NULL)
ORDER BY 1
"""


def _plan_relations(node: object, found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(schema, relation) of every scan in an EXPLAIN (VERBOSE, FORMAT JSON) plan."""
    if isinstance(node, dict):
        if "Relation Name" in node:
            found.add((str(node.get("Schema", "")), str(node["Relation Name"])))
        for value in node.values():
            _plan_relations(value, found)
    elif isinstance(node, list):
        for value in node:
            _plan_relations(value, found)
    return found


def verify_checks(dsn: str, checks: list[Check], source: str) -> dict[str, list[str]]:
    """Connect; per check, look its tables up, and have PostgreSQL parse and plan (EXPLAIN:
    nothing is executed) the `sql` and `sample_sql` of every check whose tables all exist.

    Returns the checks that do not apply here, with their missing tables. Catches what the
    file alone cannot: a table or column that does not exist, a type error, a DSN the server
    rejects, and a `tables` list that leaves out a table the plan reads (that table's absence
    would make the check fail instead of not apply). Raises VerifyError with one line naming
    the check or the DSN.
    """
    try:
        conn = connect(dsn, application_name="deletion-integrity-check-only")
    except psycopg.Error as exc:
        raise VerifyError(f"--dsn: cannot connect: {error_line(exc, dsn)}") from None
    not_applicable: dict[str, list[str]] = {}
    try:
        for i, check in enumerate(checks):
            where = f"{source}: checks[{i}] ({check.name})"
            try:
                with conn.cursor() as cur:
                    missing = missing_tables(cur, check)
            except psycopg.Error as exc:
                raise VerifyError(f"{where}.tables: {error_line(exc, dsn)}") from None
            finally:
                if not conn.closed:
                    conn.rollback()
            if missing:
                not_applicable[check.name] = missing
                continue
            for key, sql in (("sql", check.sql), ("sample_sql", check.sample_sql)):
                if sql:
                    _verify_query(conn, check, key, sql, where, dsn)
    finally:
        conn.close()
    return not_applicable


def _verify_query(
    conn: psycopg.Connection, check: Check, key: str, sql: str, where: str, dsn: str
) -> None:
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (str(max(1, int(check.timeout * 1000))),),
            )
            # stream(): extended protocol, one statement, as the runner sends it.
            rows = list(
                cur.stream(
                    "EXPLAIN (VERBOSE, FORMAT JSON) " + bounded(sql, 2), check.query_params()
                )
            )
            relations = sorted(_plan_relations([row[0] for row in rows], set()))
            quoted = [quote_table(t) for t in check.tables]
            schemas, names = [r[0] for r in relations], [r[1] for r in relations]
            unlisted = [
                str(row[0]) for row in cur.execute(_UNLISTED, (quoted, schemas, names)).fetchall()
            ]
    except psycopg.Error as exc:
        raise VerifyError(
            f"{where}.{key}: rejected by the database: {error_line(exc, dsn)}"
        ) from None
    finally:
        if not conn.closed:
            conn.rollback()
    if unlisted:
        raise VerifyError(
            f"{where}.tables: {key} reads {', '.join(unlisted)}, which tables does not list "
            "(without it there, a database lacking it fails the check instead of finding it "
            "not applicable)"
        )


def _fail(message: str) -> int:
    print(f"integrity-exporter: {message}", file=sys.stderr)
    return 2


def _check_only(
    args: argparse.Namespace, checks: list[Check], dsn: str | None, argv_warning: str | None
) -> int:
    source = str(args.checks)
    if args.file_only:
        print(
            f"integrity-exporter: {source}: {len(checks)} checks valid (file only, as "
            "--file-only asks: the database was not contacted, so whether each check applies "
            "and runs there is not known)"
        )
        return 0
    if not dsn:
        # Never "N checks valid" without a database: that says nothing about the one the
        # exporter will read. --file-only asks for the file alone, explicitly.
        return _fail(
            "--dsn: required with --check-only (or set DATABASE_URL; --file-only validates "
            "the file alone)"
        )
    try:
        not_applicable = verify_checks(dsn, checks, source)
    except VerifyError as exc:
        return _fail(str(exc))
    if argv_warning:
        log.warning(argv_warning)
    applicable = len(checks) - len(not_applicable)
    if not not_applicable:
        print(
            f"integrity-exporter: {source}: {len(checks)} checks valid, and the database "
            "accepted every one (planned with EXPLAIN, not run)"
        )
        return 0
    print(
        f"integrity-exporter: {source}: {len(checks)} checks valid; {applicable} apply to this "
        f"database and it accepted them (planned with EXPLAIN, not run); {len(not_applicable)} "
        "not applicable (their tables do not exist):"
    )
    for name, missing in not_applicable.items():
        print(f"  {name}: no table {', '.join(missing)}")
    if not applicable:
        return _fail(
            f"{source}: no check applies to this database (none has all its tables): is the "
            "DSN the application's database, with its schema on the search_path?"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    if args.log_level != "debug":
        # psycopg_pool logs every failed reconnection attempt; the health probe and each
        # check's state-change line already report an outage once.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    register_dsn(dsn)  # every output line from here on masks its password, parseable or not
    try:
        checks = load_checks(args.checks)
    except CheckConfigError as exc:
        return _fail(str(exc))
    if dsn:
        problem = dsn_problem(dsn)
        if problem:
            return _fail(f"--dsn: {problem}")
    argv_warning = password_on_command_line(dsn)
    if args.file_only and not args.check_only:
        return _fail("--file-only: only with --check-only")
    if args.check_only:
        return _check_only(args, checks, dsn, argv_warning)
    if not dsn:
        return _fail("--dsn: required (or set DATABASE_URL)")
    host, port = args.listen
    # As the audit exporter: a server that is down or restarting is an outage (serve
    # deletion_integrity_up 0 and retry); one that rejects the DSN (password, database name,
    # a host that does not resolve) is a wrong configuration that retrying cannot fix.
    try:
        connect(dsn, application_name="deletion-integrity-startup").close()
    except psycopg.Error as exc:
        if not is_unreachable(exc):
            return _fail(f"--dsn: cannot connect: {error_line(exc, dsn)}")
        log.warning(
            "database unreachable at start-up; serving deletion_integrity_up 0 and retrying",
            extra={"error": error_line(exc, dsn)},
        )

    scheduler = Scheduler(
        dsn, checks, health_interval=args.health_interval, pool_size=args.pool_size
    )
    registry = CollectorRegistry(auto_describe=True)
    registry.register(IntegrityCollector(scheduler.state))
    try:
        server = start_metrics_server(host, port, registry, "deletion integrity exporter")
    except OSError as exc:
        return _fail(f"--listen: cannot bind {host}:{port}: {exc.strerror or exc}")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if argv_warning:
        log.warning(argv_warning)
    log.info(
        "integrity exporter %s listening on %s:%d with %d checks",
        __version__,
        host,
        server.server_port,
        len(checks),
        extra={
            "dsn": redact_dsn(dsn),
            "checks_file": str(args.checks),
            "pool_size": args.pool_size,
        },
    )
    # The exporter starts even when the database is down: it reports that as
    # deletion_integrity_up 0 and recovers by itself, instead of crash-looping.
    scheduler.start()
    try:
        stop.wait()
    finally:
        log.info("integrity exporter stopping")
        scheduler.stop()
        server.stop()
    return 0
