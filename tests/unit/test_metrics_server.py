"""The exporters' metrics server in-process, on a port of its own on 127.0.0.1: stop() frees the
port, a failing collector is a 500 and the server goes on. Both exporters behind it, under 200
concurrent scrapes, are tests/integration/test_http_server.py."""

from __future__ import annotations

import socket
import time

from support.http import _get


def test_metrics_server_stops_and_frees_the_port() -> None:
    from prometheus_client import CollectorRegistry

    from deletion_monitor.common.httpserver import start_metrics_server

    server = start_metrics_server("127.0.0.1", 0, CollectorRegistry())
    port = server.server_port
    assert _get(port)[0] == 200
    server.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("server still accepting after stop()")


def test_a_failing_collector_is_a_500_not_a_dropped_connection() -> None:
    from prometheus_client import CollectorRegistry

    from deletion_monitor.common.httpserver import start_metrics_server

    class Broken:
        def collect(self) -> list:
            raise RuntimeError("boom")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Broken())  # type: ignore[arg-type]
    server = start_metrics_server("127.0.0.1", 0, registry)
    try:
        status, _, body = _get(server.server_port)
        assert status == 500 and b"collection failed" in body
        assert _get(server.server_port, "GET", "/-/healthy")[0] == 200  # still serving
    finally:
        server.stop()
