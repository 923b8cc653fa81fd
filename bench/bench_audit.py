"""Benchmark of `deletion-monitor audit-exporter` (issue: results in docs/benchmarks.md).

For each table size (default 1 M and 10 M rows, filled with COPY):
- the bare GROUP BY queries that compute the same numbers, run by psql (the floor);
- exporter start-up: process start -> first scrape that contains the deletion counters;
- scrape latency p50/p99 (steady state, 300 scrapes), peak RSS (VmHWM);
- ingestion throughput of a burst of --burst rows committed at once;
- query-exporter (PyPI, own venv under bench/out/) computing the same counters by aggregate
  queries: start-up to first complete scrape, scrape latency, RSS, and the ratio to ours.

Usage: .venv/bin/python bench/bench_audit.py [--rows 1000000,10000000] [--burst 1000000]
       [--no-query-exporter]. Prints a table; --json FILE also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from deletion_monitor.data import schema_path
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
BLOCK_ROWS = 200_000

# The same numbers as the exporter's counters, written the way one would in psql: plain
# GROUP BYs, no validation of malformed rows, one scan per family.
BARE_GROUP_BY = r"""
\timing off
SELECT target_user_type, outcome, error_type,
       width_bucket(duration_seconds,
                    ARRAY[0.05,0.1,0.25,0.5,0.75,1,1.5,2,2.5,3,4,5,7.5,10,15,20,30]::float8[]),
       count(*), sum(duration_seconds)
FROM deletion_audit GROUP BY 1, 2, 3, 4;
SELECT extract(hour FROM occurred_at AT TIME ZONE 'UTC'), count(*) FROM deletion_audit GROUP BY 1;
SELECT extract(isodow FROM occurred_at AT TIME ZONE 'UTC'), count(*) FROM deletion_audit GROUP BY 1;
SELECT e.key, sum(e.value::bigint) FROM deletion_audit, jsonb_each_text(rows_deleted) e
WHERE outcome = 'success' GROUP BY 1;
SELECT width_bucket(t, ARRAY[0,1,5,10,25,50,100,250,500,1000,5000]::numeric[]), count(*), sum(t)
FROM (SELECT (SELECT sum(value::bigint) FROM jsonb_each_text(rows_deleted)) t
      FROM deletion_audit WHERE outcome = 'success') s GROUP BY 1;
SELECT app_version, min(occurred_at) FROM deletion_audit GROUP BY 1;
"""


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def _copy_block(rows: int, seed: int, start: datetime, end: datetime) -> bytes:
    """COPY text for `rows` generated rows (rendered once, reused: generation is the slow part)."""
    conn_rows = []
    for row in workload.generate(rows, seed=seed, start=start, end=end):
        values = workload._values(row)
        conn_rows.append(
            "\t".join(
                r"\N" if v is None else (v.isoformat() if isinstance(v, datetime) else str(v))
                for v in values
            )
        )
    return ("\n".join(conn_rows) + "\n").encode()


def fill(dsn: str, n: int, seed: int = 1) -> float:
    """COPY n rows (a pre-rendered block of BLOCK_ROWS repeated); returns seconds."""
    end = datetime.now(UTC)
    block = _copy_block(min(n, BLOCK_ROWS), seed, end - timedelta(days=90), end)
    per = min(n, BLOCK_ROWS)
    started = time.monotonic()
    cols = ", ".join(workload.COLUMNS)
    with psycopg.connect(dsn) as conn:
        done = 0
        while done < n:
            take = min(per, n - done)
            data = block if take == per else b"".join(block.splitlines(True)[:take])
            with conn.cursor().copy(f"COPY deletion_audit ({cols}) FROM STDIN") as copy:
                copy.write(data)
            done += take
        conn.commit()
    return time.monotonic() - started


def psql_seconds(dsn: str, script: str) -> float:
    started = time.monotonic()
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-d", dsn],
        input=script,
        text=True,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as resp:
        return resp.read().decode()


def wait_for(url: str, needle: str, proc: ManagedProcess, timeout: float = 1800) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not proc.alive():
            raise RuntimeError(f"process died: {proc.log_tail()}")
        try:
            if needle in get(url):
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(needle)


def scrape_latency(url: str, n: int = 300) -> tuple[float, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        get(url)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ingested(url: str) -> float:
    for line in get(url).splitlines():
        if line.startswith("deletion_audit_rows_ingested_total "):
            return float(line.split()[1])
    return -1


def idle_poll_ms(url: str) -> float:
    """Mean duration of the polls after the start-up aggregate (from the poll histogram)."""
    values = {}
    for line in get(url).splitlines():
        if line.startswith(("deletion_audit_poll_duration_seconds_", "deletion_audit_initial")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    count = values.get("deletion_audit_poll_duration_seconds_count", 0)
    total = values.get("deletion_audit_poll_duration_seconds_sum", 0)
    initial = values.get("deletion_audit_initial_load_duration_seconds", 0)
    return (total - initial) / (count - 1) * 1000 if count > 1 else float("nan")


def bench_exporter(dsn: str, n: int, burst: int) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    argv = [
        sys.executable,
        "-m",
        "deletion_monitor",
        "audit-exporter",
        "--dsn",
        dsn,
        "--listen",
        f"127.0.0.1:{port}",
        "--poll-interval",
        "1",
    ]
    res: dict[str, float] = {}
    started = time.monotonic()
    with ManagedProcess(argv, OUT / f"exporter-{n}.log") as proc:
        wait_for(url, "deletion_requests_total{", proc)
        res["startup_s"] = time.monotonic() - started
        res["scrape_p50_ms"], res["scrape_p99_ms"] = scrape_latency(url)
        time.sleep(3)  # a few idle polls (interval 1 s): the steady-state database cost
        res["idle_poll_ms"] = idle_poll_ms(url)
        if burst:
            fill_s = fill(dsn, burst, seed=99)  # one transaction: visible at once on commit
            t0 = time.monotonic()
            while ingested(url) < n + burst:
                time.sleep(0.05)
            res["burst_fill_s"] = fill_s
            res["ingest_rows_per_s"] = burst / (time.monotonic() - t0)
            res["scrape_p50_after_ms"], res["scrape_p99_after_ms"] = scrape_latency(url)
        res["peak_rss_mb"] = peak_rss_mb(proc.pid)
    return res


QE_CONFIG = """
databases:
  audit:
    dsn: {dsn}
metrics:
  qe_deletion_requests:
    type: gauge
    description: deletion calls by user type
    labels: [user_type]
  qe_deletion_failures:
    type: gauge
    description: failed deletion calls
    labels: [user_type, error_type]
  qe_deletion_duration_bucket:
    type: gauge
    description: duration histogram buckets
    labels: [outcome, user_type, le]
  qe_deletion_rows_deleted:
    type: gauge
    description: rows removed per table
    labels: [table_name]
queries:
  requests:
    interval: 3600
    databases: [audit]
    metrics: [qe_deletion_requests]
    sql: SELECT target_user_type AS user_type, count(*) AS qe_deletion_requests
         FROM deletion_audit GROUP BY 1
  failures:
    interval: 3600
    databases: [audit]
    metrics: [qe_deletion_failures]
    sql: SELECT target_user_type AS user_type, error_type, count(*) AS qe_deletion_failures
         FROM deletion_audit WHERE outcome = 'failure' GROUP BY 1, 2
  duration:
    interval: 3600
    databases: [audit]
    metrics: [qe_deletion_duration_bucket]
    sql: SELECT outcome, target_user_type AS user_type, b::text AS le,
         count(*) FILTER (WHERE duration_seconds <= b) AS qe_deletion_duration_bucket
         FROM deletion_audit,
         unnest(ARRAY[0.05,0.1,0.25,0.5,0.75,1,1.5,2,2.5,3,4,5,7.5,10,15,20,30]::float8[]) b
         GROUP BY 1, 2, 3
  tables:
    interval: 3600
    databases: [audit]
    metrics: [qe_deletion_rows_deleted]
    sql: SELECT e.key AS table_name, sum(e.value::bigint) AS qe_deletion_rows_deleted
         FROM deletion_audit, jsonb_each_text(rows_deleted) e WHERE outcome = 'success' GROUP BY 1
"""


def bench_query_exporter(dsn: str, n: int) -> dict[str, float] | None:
    venv = OUT / "qe-venv"
    exe = venv / "bin" / "query-exporter"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "query-exporter"], check=True)
    cfg = OUT / "query-exporter.yaml"
    # SQLAlchemy URL for psycopg 3
    cfg.write_text(QE_CONFIG.format(dsn=dsn.replace("postgresql://", "postgresql+psycopg://")))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    res: dict[str, float] = {}
    started = time.monotonic()
    argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    with ManagedProcess(argv, OUT / f"query-exporter-{n}.log") as proc:
        try:
            wait_for(url, "qe_deletion_rows_deleted{", proc, timeout=3600)
        except (RuntimeError, TimeoutError) as exc:
            print(f"query-exporter failed: {exc}", file=sys.stderr)
            return None
        res["startup_s"] = time.monotonic() - started
        res["scrape_p50_ms"], res["scrape_p99_ms"] = scrape_latency(url)
        res["peak_rss_mb"] = peak_rss_mb(proc.pid)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument("--burst", type=int, default=1_000_000)
    parser.add_argument("--no-query-exporter", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # SIGTERM (timeout, CI) must still stop the throwaway cluster and the exporters.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.rows.split(",") if s]
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    results = []
    with PgCluster(settings={"shared_buffers": "512MB"}) as cluster:
        for i, n in enumerate(sizes):
            dsn = cluster.create_database(f"bench{n}")
            apply_sql_file(dsn, schema_path("deletion_audit.sql"))
            fill_s = fill(dsn, n)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE deletion_audit")
            bare = min(psql_seconds(dsn, BARE_GROUP_BY) for _ in range(2))
            row: dict[str, object] = {"rows": n, "fill_s": fill_s, "bare_group_by_s": bare}
            # The burst runs once (on the first size) to keep the run short.
            row["exporter"] = bench_exporter(dsn, n, args.burst if i == 0 else 0)
            if not args.no_query_exporter:
                row["query_exporter"] = bench_query_exporter(dsn, n)
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE bench{n}")
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0


def print_table(results: list[dict]) -> None:
    def f(v: object, fmt: str = "{:.2f}") -> str:
        return "-" if v is None else fmt.format(v)

    print()
    print(
        "| rows | COPY fill s | bare GROUP BY s (psql) | exporter start-up s | ratio to bare "
        "| scrape p50 / p99 ms | ingest rows/s (burst) | peak RSS MB | query-exporter start-up s "
        "| qe scrape p50 / p99 ms | qe RSS MB | qe / exporter start-up "
        "| idle poll: exporter ms / qe full refresh s |"
    )
    print("|" + "---|" * 13)
    for r in results:
        e = r["exporter"]
        q = r.get("query_exporter") or {}
        print(
            f"| {r['rows']:,} | {f(r['fill_s'], '{:.1f}')} | {f(r['bare_group_by_s'])} "
            f"| {f(e['startup_s'])} | {f(e['startup_s'] / r['bare_group_by_s'])}x "
            f"| {f(e['scrape_p50_ms'])} / {f(e['scrape_p99_ms'])} "
            f"| {f(e.get('ingest_rows_per_s'), '{:,.0f}')} | {f(e['peak_rss_mb'], '{:.0f}')} "
            f"| {f(q.get('startup_s'))} "
            f"| {f(q.get('scrape_p50_ms'))} / {f(q.get('scrape_p99_ms'))} "
            f"| {f(q.get('peak_rss_mb'), '{:.0f}')} "
            f"| {f(q['startup_s'] / e['startup_s'] if q else None)}x "
            f"| {f(e.get('idle_poll_ms'))} ms / {f(q.get('startup_s'))} s |"
        )


if __name__ == "__main__":
    sys.exit(main())
