"""Benchmark of the exporters' limits (issue 11): concurrent scrapes and huge check results.

    python bench/bench_exporter_limits.py                  # 200 clients, 2 M-row check
    python bench/bench_exporter_limits.py --clients 500 --rows 5000000

1. HTTP: N clients connect at the same instant and GET /metrics, against prometheus_client's
   start_http_server (listen backlog 5) and deletion_monitor.common.httpserver (backlog 1024).
   Reports how many got 200 within the client timeout and the latency percentiles.
2. A completeness check returning R rows: loaded in full (cursor.execute + fetchall, as the
   runner did before) vs the runner's LIMIT wrapper and stream (max_rows 10 000). Reports wall
   time, rows read and the growth of this process's peak RSS. Each variant runs in its own
   process so that one's peak does not hide the other's.

Prints markdown tables; nothing is asserted, timing is for people to read (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

from prometheus_client import CollectorRegistry, Counter, start_http_server

from deletion_monitor.common.httpserver import start_metrics_server

CLIENT_TIMEOUT = 60.0


def _scrape_storm(port: int, clients: int) -> tuple[int, list[float]]:
    barrier = threading.Barrier(clients)
    ok = [False] * clients
    latency = [0.0] * clients

    def client(i: int) -> None:
        barrier.wait()
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
                sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            ok[i] = b" 200 " in data.split(b"\r\n", 1)[0]
        except OSError:
            pass
        latency[i] = time.monotonic() - t0

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(ok), sorted(latency)


def bench_http(clients: int) -> None:
    print(f"\n### {clients} concurrent scrapes of /metrics\n")
    print("| server | listen backlog | 200 OK | p50 s | p99 s | max s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("prometheus_client start_http_server", "deletion_monitor.common.httpserver"):
        registry = CollectorRegistry()
        Counter("bench", "bench", registry=registry).inc()
        if name.startswith("prometheus"):
            server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        else:
            server = start_metrics_server("127.0.0.1", 0, registry)
        backlog = server.request_queue_size
        try:
            n_ok, lat = _scrape_storm(server.server_port, clients)
        finally:
            server.shutdown()
            server.server_close()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"| {name} | {backlog} | {n_ok}/{clients} | {statistics.median(lat):.3f} "
            f"| {p99:.3f} | {lat[-1]:.3f} |"
        )


def _one_check(dsn: str, rows: int, mode: str) -> dict[str, float]:
    """Runs in a child process: one variant, its own peak RSS."""
    import psycopg

    from deletion_monitor.integrity.checks import parse_checks
    from deletion_monitor.integrity.runner import connect, run_check

    sql = f"SELECT g::text, ARRAY['sessions'] FROM generate_series(1, {rows}) g"
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    if mode == "unbounded":
        with psycopg.connect(dsn) as conn:
            fetched = len(conn.execute(sql).fetchall())
    else:
        (check,) = parse_checks(
            {
                "checks": [
                    {
                        "name": "huge",
                        "category": "cascade",
                        "severity": "critical",
                        "kind": "completeness",
                        "tables": [],
                        "sql": sql,
                        "interval": 300,
                        "timeout": 60,
                    }
                ]
            }
        )
        conn = connect(dsn)
        try:
            fetched = run_check(conn, check).rows_fetched
        finally:
            conn.close()
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "fetched": fetched, "base_mb": base / 1024, "peak_mb": peak / 1024}


def bench_rows(rows: int) -> None:
    from deletion_monitor_demo.pgcluster import PgCluster

    print(f"\n### A completeness check returning {rows:,} rows\n")
    print("| runner | rows read | seconds | peak RSS MB (start → peak) |")
    print("| --- | ---: | ---: | ---: |")
    with PgCluster() as cluster:
        dsn = cluster.dsn()
        for mode, label in (
            ("unbounded", "fetchall (before)"),
            ("bounded", "LIMIT max_rows+1, streamed"),
        ):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--dsn", dsn, "--rows", str(rows)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"| {label} | {int(r['fetched']):,} | {r['seconds']:.2f} "
                f"| {r['base_mb']:.0f} → {r['peak_mb']:.0f} |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--child", choices=["unbounded", "bounded"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_check(args.dsn, args.rows, args.child)))
        return 0
    bench_http(args.clients)
    bench_rows(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
