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
from deletion_monitor.integrity.runner import connect
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
        help="validate the checks file, then connect and have the database plan (not run) "
        "every check; exit 0 or 2. Without a DSN only the file is validated, and it says so",
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


def verify_checks(dsn: str, checks: list[Check], source: str) -> None:
    """Connect and have PostgreSQL parse and plan every check (EXPLAIN: nothing is executed).

    Catches what the file alone cannot: a table or column that does not exist, a type error, a
    DSN the server rejects. Raises VerifyError with one line naming the check or the DSN.
    """
    try:
        conn = connect(dsn, application_name="deletion-integrity-check-only")
    except psycopg.Error as exc:
        raise VerifyError(f"--dsn: cannot connect: {error_line(exc, dsn)}") from None
    try:
        for i, check in enumerate(checks):
            for key, sql in (("sql", check.sql), ("sample_sql", check.sample_sql)):
                if not sql:
                    continue
                try:
                    with conn.cursor() as cur:
                        cur.execute(
                            "SELECT set_config('statement_timeout', %s, true)",
                            (str(max(1, int(check.timeout * 1000))),),
                        )
                        # stream(): extended protocol, one statement, as the runner sends it.
                        list(cur.stream("EXPLAIN " + bounded(sql, 2), check.query_params()))
                except psycopg.Error as exc:
                    raise VerifyError(
                        f"{source}: checks[{i}] ({check.name}).{key}: rejected by the database: "
                        f"{error_line(exc, dsn)}"
                    ) from None
                finally:
                    if not conn.closed:
                        conn.rollback()
    finally:
        conn.close()


def _fail(message: str) -> int:
    print(f"integrity-exporter: {message}", file=sys.stderr)
    return 2


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
    if args.check_only:
        if not dsn:
            print(
                f"integrity-exporter: {args.checks}: {len(checks)} checks valid (file only: no "
                "--dsn and no DATABASE_URL, the database was not contacted)"
            )
            return 0
        try:
            verify_checks(dsn, checks, str(args.checks))
        except VerifyError as exc:
            return _fail(str(exc))
        if argv_warning:
            log.warning(argv_warning)
        print(
            f"integrity-exporter: {args.checks}: {len(checks)} checks valid, and the database "
            "accepted every one (planned with EXPLAIN, not run)"
        )
        return 0
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
