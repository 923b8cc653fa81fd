"""The HTTP endpoint of both exporters: /metrics, / and /-/healthy, GET and HEAD.

prometheus_client's start_http_server() listens with socketserver's default backlog of 5: when
a few hundred clients connect at once (several Prometheus replicas, a blackbox probe, a load
balancer health check and a curious human), the kernel drops the SYNs beyond the queue and each
dropped client retries after 1 s, 3 s, 7 s, 15 s: a 27 s tail for a response that takes a
millisecond (docs/benchmarks.md). It also answers HEAD with 501, which some load balancers take
for a dead target. This server keeps a deep accept queue, serves each request in a daemon
thread, and answers HEAD like GET without the body.
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("deletion_monitor.http")

# listen() backlog. The kernel caps it at net.core.somaxconn (4096 on Linux 5.4+, 128 before).
LISTEN_BACKLOG = 1024
# A client that opens a connection and sends nothing must not hold a thread forever.
REQUEST_TIMEOUT = 30.0


class MetricsServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a deep listen queue; stop() shuts it down and closes it."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True  # a hung client never blocks shutdown
    allow_reuse_address = True

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _handler(registry: Collector, title: str) -> type[BaseHTTPRequestHandler]:
    index = (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
        '<p><a href="/metrics">Metrics</a></p></body></html>\n'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT

        def version_string(self) -> str:
            return "deletion-monitor"

        def _respond(self, body_wanted: bool) -> None:
            url = urlparse(self.path)
            headers: list[tuple[str, str]]
            if url.path == "/metrics":
                try:
                    status, headers, body = 200, *_metrics(registry, self.headers, url.query)
                except Exception:
                    # A failing collector must give the scraper an error, not a dropped socket.
                    log.exception("metrics collection failed")
                    status, headers = 500, [("Content-Type", "text/plain; charset=utf-8")]
                    body = b"metrics collection failed; see the exporter's log\n"
            elif url.path == "/-/healthy":
                status, headers, body = 200, [("Content-Type", "text/plain")], b"OK\n"
            elif url.path == "/":
                status, headers, body = 200, [("Content-Type", "text/html")], index
            else:
                status, headers = 404, [("Content-Type", "text/plain")]
                body = b"not found: try /metrics\n"
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            # HEAD: the headers GET would send, Content-Length included, and no body.
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body_wanted:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._respond(body_wanted=True)

        def do_HEAD(self) -> None:
            self._respond(body_wanted=False)

        def log_message(self, format: str, *args: Any) -> None:
            """One line per request would flood the log at every scrape."""

    return Handler


def _metrics(registry: Collector, headers: Any, query: str) -> tuple[list[tuple[str, str]], bytes]:
    encoder, content_type = choose_encoder(headers.get("Accept"))
    params = parse_qs(query)
    if "name[]" in params and isinstance(registry, CollectorRegistry):
        registry = registry.restricted_registry(params["name[]"])
    body = encoder(registry)
    out = [("Content-Type", content_type)]
    if gzip_accepted(headers.get("Accept-Encoding")):
        body = gzip.compress(body)
        out.append(("Content-Encoding", "gzip"))
    return out, body


def start_metrics_server(
    host: str, port: int, registry: Collector, title: str = "deletion-monitor exporter"
) -> MetricsServer:
    """Listen on host:port (port 0: any free port, see server_port) and serve in a thread.

    Raises OSError when the address cannot be bound.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(MetricsServer):
        address_family = family

    # SOCK_STREAM on AF_INET/AF_INET6: the address starts (host, port) (the (int, bytes) form
    # in the stubs is AF_INET6 on a Python built without IPv6 support, which cannot happen here).
    server = Server(cast(tuple[str, int], sockaddr[:2]), _handler(registry, title))
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server
