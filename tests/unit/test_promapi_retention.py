"""PrometheusClient.retention(): which retention the queried store runs with, on each engine.

A local HTTP server answers as each engine does (the shapes were taken from Prometheus 2.x and
VictoriaMetrics 1.79 on this machine): Prometheus lists its flags at /api/v1/status/flags,
VictoriaMetrics answers that endpoint 400 and prints its flags on /metrics.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deletion_monitor.common.promapi import PrometheusClient

PROMETHEUS = {
    "/api/v1/status/flags": (
        200,
        json.dumps({"status": "success", "data": {"storage.tsdb.retention.time": "400d"}}),
    ),
}
VICTORIA = {
    "/api/v1/status/flags": (400, json.dumps({"status": "error", "error": "unsupported path"})),
    "/metrics": (
        200,
        'flag{name="denyQueriesOutsideRetention", value="false", is_set="false"} 1\n'
        'flag{name="retentionPeriod", value="365d", is_set="true"} 1\n'
        'flag{name="retentionTimezoneOffset", value="0s", is_set="false"} 1\n',
    ),
}
NEITHER = {"/metrics": (200, "go_goroutines 12\n")}
Serve = Callable[[dict[str, tuple[int, str]]], str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, tuple[int, str]]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = routes.get(self.path, (404, "not found"))
                self.send_response(code)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_prometheus_flag(serve: Serve) -> None:
    client = PrometheusClient(serve(PROMETHEUS))
    assert client.retention() == ("400d", "Prometheus --storage.tsdb.retention.time")


def test_victoria_metrics_flag_from_its_metrics_page(serve: Serve) -> None:
    client = PrometheusClient(serve(VICTORIA))
    # retentionTimezoneOffset follows it on the page: the match is the exact flag name.
    assert client.retention() == ("365d", "VictoriaMetrics -retentionPeriod")


def test_unknown_when_neither_engine_says(serve: Serve) -> None:
    assert PrometheusClient(serve(NEITHER)).retention() is None
    assert PrometheusClient("http://127.0.0.1:1").retention() is None  # nothing listening
