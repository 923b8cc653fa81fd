"""A plain HTTP client for the exporters' endpoints: status, headers and body of one request."""

from __future__ import annotations

import http.client

# Generous per-client socket timeout: the bound that makes a dropped SYN (the old backlog of 5
# retransmits after 1, 3, 7, 15 s) fail the test, not a latency target.
CLIENT_TIMEOUT = 10.0


def _get(port: int, method: str = "GET", path: str = "/metrics") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()
