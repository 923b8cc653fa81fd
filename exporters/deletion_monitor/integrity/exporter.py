"""`deletion-monitor integrity-exporter`: background integrity checks exported to Prometheus."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from psycopg.conninfo import conninfo_to_dict

from deletion_monitor import __version__
from deletion_monitor.cliargs import add_log_level, listen_address
from deletion_monitor.integrity.checks import DEFAULT_CHECKS_PATH, CheckConfigError, load_checks
from deletion_monitor.integrity.collector import IntegrityCollector
from deletion_monitor.integrity.scheduler import Scheduler
from deletion_monitor.log import setup_logging
from deletion_monitor.redaction import redact

HELP = "Run the data-integrity checks in the background and export the results (default :9818)."
DEFAULT_LISTEN = ":9818"

log = logging.getLogger("deletion_monitor.integrity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL connection string (default: $DATABASE_URL)",
    )
    parser.add_argument(
        "--checks",
        type=Path,
        default=DEFAULT_CHECKS_PATH,
        help="checks YAML file (default: the packaged checks/default.yml)",
    )
    parser.add_argument(
        "--check-only", action="store_true", help="validate the checks file and exit"
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=DEFAULT_LISTEN,
        help=f"[host]:port for /metrics (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--health-interval",
        type=float,
        default=15.0,
        help="seconds between database reachability probes (default 15)",
    )
    add_log_level(parser)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        checks = load_checks(args.checks)
    except CheckConfigError as exc:
        print(f"integrity-exporter: {exc}", file=sys.stderr)
        return 2
    if args.check_only:
        print(f"integrity-exporter: {args.checks}: {len(checks)} checks valid")
        return 0
    if not args.dsn:
        print("integrity-exporter: --dsn: required (or set DATABASE_URL)", file=sys.stderr)
        return 2
    try:
        conninfo_to_dict(args.dsn)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(
            f"integrity-exporter: --dsn: invalid connection string: {redact(first)}",
            file=sys.stderr,
        )
        return 2
    if args.health_interval <= 0:
        print("integrity-exporter: --health-interval: must be > 0", file=sys.stderr)
        return 2
    host, port = args.listen

    scheduler = Scheduler(args.dsn, checks, health_interval=args.health_interval)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(IntegrityCollector(scheduler.state))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        print(
            f"integrity-exporter: --listen: cannot bind {args.listen}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "integrity exporter %s listening on %s:%d with %d checks",
        __version__,
        host,
        port,
        len(checks),
        extra={"dsn": redact(args.dsn), "checks_file": str(args.checks)},
    )
    # The exporter starts even when the database is down: it reports that as
    # deletion_integrity_up 0 and recovers by itself, instead of crash-looping.
    scheduler.start()
    try:
        stop.wait()
    finally:
        log.info("integrity exporter stopping")
        scheduler.stop()
        server.shutdown()
    return 0
