"""Both exporters' HTTP endpoints: 200 clients at once all get an answer, HEAD works, the listen
queue is deep. Behaviour only: no latency is asserted (bench/bench_http.py measures it). The
metrics server alone (stop frees the port, a failing collector is a 500) is
tests/unit/test_metrics_server.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.http import CLIENT_TIMEOUT, _get

from deletion_monitor.audit.exporter import ExporterConfig
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor_demo.pgcluster import REPO_ROOT
from deletion_monitor_demo.services import ManagedProcess, free_port, wait_http

CLIENTS = 200


def _concurrent_scrapes(port: int) -> list[object]:
    """CLIENTS connections opened at the same instant, each sending one GET /metrics."""
    barrier = threading.Barrier(CLIENTS)
    results: list[object] = [None] * CLIENTS

    def client(i: int) -> None:
        barrier.wait()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
                sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            results[i] = data.split(b"\r\n", 1)[0].decode()
        except OSError as exc:
            results[i] = repr(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _listen_backlog(port: int) -> int:
    """The listen queue length the kernel reports for a listening socket (ss: Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


@pytest.fixture
def audit_port(pg_cluster) -> Iterator[int]:
    # A database that does not exist: the poller reports up=0; the endpoint must serve anyway.
    exporter = AuditExporter(ExporterConfig(dsn=pg_cluster.dsn("no_such_db"), max_backoff=60))
    port = exporter.serve("127.0.0.1", 0)
    try:
        yield port
    finally:
        exporter.stop()


@pytest.fixture
def integrity_port(tmp_path: Path, pg_cluster) -> Iterator[int]:
    checks = tmp_path / "checks.yml"
    check = {
        "name": "zero",
        "category": "consistency",
        "severity": "info",
        "tables": [],
        "sql": "SELECT 0",
        "interval": 60,
        "timeout": 5,
    }
    checks.write_text(yaml.safe_dump({"checks": [check]}))
    port = free_port()
    argv = [sys.executable, "-m", "deletion_monitor", "integrity-exporter", "--checks", str(checks)]
    argv += ["--dsn", pg_cluster.dsn(), "--listen", f"127.0.0.1:{port}"]
    env = {"PYTHONPATH": str(REPO_ROOT / "exporters")}
    with ManagedProcess(argv, tmp_path / "integrity.log", env=env):
        wait_http(f"http://127.0.0.1:{port}/metrics")
        yield port


@pytest.mark.parametrize("exporter", ["audit_port", "integrity_port"])
def test_200_concurrent_scrapes_all_answered(exporter: str, request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(exporter)
    results = _concurrent_scrapes(port)
    failed = [r for r in results if r != "HTTP/1.0 200 OK"]
    assert not failed, f"{len(failed)} of {CLIENTS} failed, e.g. {failed[:3]}"
    # The queue the kernel keeps for connections not yet accepted (was 5).
    assert _listen_backlog(port) >= 128


@pytest.mark.parametrize("exporter", ["audit_port", "integrity_port"])
def test_head_is_200_with_headers_and_no_body(
    exporter: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(exporter)
    status, headers, body = _get(port, "HEAD", "/metrics")
    get_status, get_headers, get_body = _get(port, "GET", "/metrics")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"] == get_headers["Content-Type"]
    assert headers["Content-Type"].startswith("text/plain")
    assert int(headers["Content-Length"]) > 0
    assert get_status == 200 and b"# TYPE" in get_body
    for path in ("/", "/-/healthy"):
        assert _get(port, "GET", path)[0] == 200
        assert _get(port, "HEAD", path)[0::2] == (200, b"")
    assert _get(port, "GET", "/nope")[0] == 404
