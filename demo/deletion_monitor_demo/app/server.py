"""HTTP front of the demo application and the `deletion-monitor-demo app` subcommand.

Routes:
  DELETE /api/users/{id}   the endpoint under monitoring (Authorization: Bearer <token>)
  GET    /metrics          Prometheus metrics (process, GC, pool, HTTP)
  GET    /healthz          liveness, with the database status
  GET    /admin/faults     current fault switches (JSON)
  POST   /admin/faults     merge switches, e.g. {"error_rate": 0.3}; /admin/faults/reset: all off
The admin routes require `X-Admin-Token` when --admin-token (or DEMO_ADMIN_TOKEN) is set.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from deletion_monitor import __version__
from deletion_monitor.common.cliargs import add_log_level, listen_address
from deletion_monitor.common.log import setup_logging
from deletion_monitor.common.redaction import redact
from deletion_monitor_demo.app.faults import Faults
from deletion_monitor_demo.app.runtime import GcTimer, cpu_limit_cores
from deletion_monitor_demo.app.service import PROBE_USER_ID, DeletionService

HELP = "run the demo application (DELETE /api/users/{id} on the reference schema)"
log = logging.getLogger("deletion_monitor_demo.app")

_USER_ROUTE = re.compile(r"^/api/users/([^/?#]+)$")
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024


class _AppCollector:
    """Read at scrape time: memory and CPU limits, pool usage, query and GC times, faults."""

    def __init__(self, service: DeletionService, faults: Faults, gc_timer: GcTimer) -> None:
        self.service = service
        self.faults = faults
        self.gc_timer = gc_timer
        self.cpu_limit = cpu_limit_cores()

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        yield GaugeMetricFamily(
            "deletion_app_memory_limit_bytes",
            "Memory the application may use (its container limit); memory alerts divide by it.",
            value=self.faults.memory_limit_bytes,
        )
        yield GaugeMetricFamily(
            "deletion_app_cpu_limit_cores",
            "CPU cores the application may use (cgroup quota, else its CPUs); CPU alerts divide "
            "rate(process_cpu_seconds_total) by it.",
            value=self.cpu_limit,
        )
        buckets, total = self.service.query_timer.snapshot()
        yield HistogramMetricFamily(
            "deletion_app_db_query_duration_seconds",
            "Execution time of the application's database statements.",
            buckets=buckets,
            sum_value=total,
        )
        gc_hist = HistogramMetricFamily(
            "deletion_app_gc_duration_seconds",
            "Wall time of each garbage collection, by generation (gc.callbacks).",
            labels=["generation"],
        )
        for generation, counts in self.gc_timer.generations.items():
            gc_hist.add_metric([str(generation)], counts.cumulative(), counts.sum)
        yield gc_hist
        yield GaugeMetricFamily(
            "deletion_app_db_pool_connections_in_use",
            "Database connections currently checked out of the pool.",
            value=self.service.pool_in_use,
        )
        yield GaugeMetricFamily(
            "deletion_app_db_pool_connections_max",
            "Maximum size of the database connection pool.",
            value=self.service.pool_max,
        )
        waiting = self.service.pool.get_stats().get("requests_waiting", 0)
        yield GaugeMetricFamily(
            "deletion_app_db_pool_requests_waiting",
            "Requests waiting for a pooled connection.",
            value=waiting,
        )
        active = GaugeMetricFamily(
            "deletion_app_fault_active",
            "1 while a demo fault switch is on (demo only: tells a scenario from an incident).",
            labels=["fault"],
        )
        state = self.faults.state
        for name in (
            "error_rate",
            "latency_seconds",
            "timeout_rate",
            "leak_bytes_per_request",
            "skip_cleanup",
            "auth_bypass",
        ):
            active.add_metric([name], 1.0 if getattr(state, name) else 0.0)
        yield active
        probes = CounterMetricFamily(
            "deletion_app_probe_requests",
            "Failed calls on the reserved probe id (synthetic monitoring, kept out of the audit "
            "log), by HTTP status.",
            labels=["status"],
        )
        for status, count in sorted(self.service.probe_calls.items()):
            probes.add_metric([status], count)
        yield probes
        info = GaugeMetricFamily(
            "deletion_app_info", "The running application version.", labels=["app_version"]
        )
        info.add_metric([self.service.app_version], 1)
        yield info


class DemoApp:
    """The service plus its metrics registry; serve() blocks until shutdown()."""

    def __init__(self, service: DeletionService, faults: Faults, admin_token: str = "") -> None:
        self.service = service
        self.faults = faults
        self.admin_token = admin_token
        # Default registry: prometheus-client's process and GC collectors live there.
        self.registry: CollectorRegistry = REGISTRY
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.gc_timer = GcTimer()
        self.gc_timer.install()
        self.registry.register(_AppCollector(service, faults, self.gc_timer))
        self.httpd: ThreadingHTTPServer | None = None

    def make_server(self, host: str, port: int) -> ThreadingHTTPServer:
        app = self

        class Handler(_Handler):
            pass

        Handler.app = app
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        return self.httpd


class _Handler(BaseHTTPRequestHandler):
    app: DemoApp
    protocol_version = "HTTP/1.1"
    server_version = f"deletion-demo/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON log line per failure is enough; access logs would drown the demo

    def _send(self, status: int, body: bytes, content_type: str, route: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.app.http_requests.labels(self.command, route, str(status)).inc()

    def _json(self, status: int, payload: Any, route: str) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", route)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, 65536)) if length > 0 else b""

    def _admin_ok(self) -> bool:
        if not self.app.admin_token:
            return True
        given = self.headers.get("X-Admin-Token", "")
        return hmac.compare_digest(given, self.app.admin_token)

    def do_DELETE(self) -> None:
        match = _USER_ROUTE.match(self.path)
        if not match:
            self._json(404, {"error": "no such route"}, "other")
            return
        self._body()
        outcome = self.app.service.delete_user(self.headers.get("Authorization"), match.group(1))
        self._json(outcome.status, outcome.body, "/api/users/{id}")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.app.registry), CONTENT_TYPE_LATEST, "/metrics")
        elif path in ("/healthz", "/api/health"):
            db = self.app.service.healthy()
            self._json(
                200,
                {
                    "status": "ok",
                    "database": "up" if db else "down",
                    "version": self.app.service.app_version,
                },
                path,
            )
        elif path == "/admin/faults":
            if not self._admin_ok():
                self._json(403, {"error": "admin token required"}, path)
                return
            self._json(200, self.app.faults.state.to_dict(), path)
        else:
            self._json(404, {"error": "no such route"}, "other")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/admin/faults", "/admin/faults/reset"):
            self._json(404, {"error": "no such route"}, "other")
            return
        body = self._body()
        if not self._admin_ok():
            self._json(403, {"error": "admin token required"}, path)
            return
        if path == "/admin/faults/reset":
            state = self.app.faults.reset()
        else:
            try:
                payload = json.loads(body or b"{}")
                version = payload.pop("app_version", None) if isinstance(payload, dict) else None
                state = self.app.faults.update(payload)
            except ValueError as exc:
                self._json(400, {"error": str(exc)}, path)
                return
            if version:
                # A "deploy": later audit rows carry the new version (post-deploy alerting).
                self.app.service.app_version = str(version)[:64]
        log.info("faults changed", extra={"faults": state.to_dict()})
        self._json(200, {**state.to_dict(), "app_version": self.app.service.app_version}, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", type=listen_address, default="127.0.0.1:8080", help="[HOST]:PORT"
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("DATABASE_URL", ""),
        help="PostgreSQL DSN of the reference schema (default: env DATABASE_URL)",
    )
    parser.add_argument(
        "--token-secret",
        default=os.environ.get("DEMO_TOKEN_SECRET", ""),
        help="HMAC secret of the bearer tokens (default: env DEMO_TOKEN_SECRET)",
    )
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("DEMO_ADMIN_TOKEN", ""),
        help="required X-Admin-Token of /admin/faults (default: env "
        "DEMO_ADMIN_TOKEN; empty = no check)",
    )
    parser.add_argument("--app-version", default="demo-1.0.0")
    parser.add_argument(
        "--statement-timeout",
        type=float,
        default=10.0,
        help="seconds, SET LOCAL statement_timeout of a deletion",
    )
    parser.add_argument("--pool-max", type=int, default=10, help="connection pool size")
    parser.add_argument(
        "--memory-limit",
        type=int,
        default=DEFAULT_MEMORY_LIMIT,
        help="bytes, exported as deletion_app_memory_limit_bytes",
    )
    parser.add_argument(
        "--base-latency",
        type=float,
        default=0.0,
        help="median seconds of normal work per deletion (realistic latency)",
    )
    parser.add_argument(
        "--probe-user-id",
        default=PROBE_USER_ID,
        help="reserved id of the synthetic auth probe, not audited (empty = audit everything)",
    )
    add_log_level(parser)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        host, port = args.listen
        if not args.dsn:
            raise ValueError("--dsn: required (or set DATABASE_URL)")
        if not args.token_secret:
            raise ValueError("--token-secret: required (or set DEMO_TOKEN_SECRET)")
        if args.statement_timeout <= 0 or args.pool_max < 1 or args.memory_limit <= 0:
            raise ValueError("--statement-timeout, --pool-max, --memory-limit: must be positive")
    except ValueError as exc:
        print(f"demo-app: {exc}", file=sys.stderr)
        return 2
    faults = Faults(args.memory_limit)
    faults.update({"base_latency_seconds": args.base_latency})
    service = DeletionService(
        args.dsn,
        args.token_secret,
        faults,
        app_version=args.app_version,
        statement_timeout=args.statement_timeout,
        pool_max=args.pool_max,
        pool_min=min(2, args.pool_max),
        probe_user_id=args.probe_user_id,
    )
    try:
        # One direct connection first: a wrong DSN fails in seconds with libpq's own reason,
        # instead of the pool's "initialization incomplete" after its timeout.
        psycopg.connect(args.dsn, connect_timeout=5).close()
        service.open()
    except Exception as exc:
        reason = redact(str(exc)).strip().splitlines()[0]
        print(f"demo-app: --dsn: cannot use the database: {reason}", file=sys.stderr)
        service.close()
        return 2
    app = DemoApp(service, faults, args.admin_token)
    try:
        httpd = app.make_server(host, port)
    except OSError as exc:
        print(f"demo-app: --listen {args.listen}: {exc}", file=sys.stderr)
        service.close()
        return 2
    stop = threading.Event()

    def _shutdown(signum: int, frame: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    log.info(
        "demo app listening", extra={"listen": f"{host}:{port}", "app_version": args.app_version}
    )
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        service.close()
    return 0
