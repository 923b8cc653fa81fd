"""Benchmark of `deletion-monitor audit-exporter` (issue: results in docs/benchmarks.md).

For each table size (default 1 M and 10 M rows, filled with COPY), in this order, every figure
next to its baseline measured in the same run (a ratio to a figure from another run is noise on
a shared machine):
- bare GROUP BY: the plain queries that compute the same numbers, on one connection (the floor);
  wall time and the CPU seconds of the database (backends and parallel workers);
- query-exporter (PyPI, own venv under bench/out/, pinned with its psycopg driver) computing the
  same counters by aggregate queries, over exactly the rows our start-up reads (before the burst);
- full aggregation: process start -> first scrape with the deletion counters (no checkpoint yet),
  the database CPU seconds, scrape latency p50/p99 (300 scrapes), idle poll, peak RSS (VmHWM);
  measured once per checkpoint store (file, then table: neither has a checkpoint yet);
- restart with a checkpoint: SIGTERM (the shutdown checkpoint is written), then a fresh process
  start -> first complete scrape, with --state-file and with --checkpoint-table; its
  deletion_audit_initial_load_duration_seconds; checked: startup_info says checkpoint, the
  deletion_requests_total sum equals count(*), every deletion_* series equals the full
  aggregation's;
- the checkpoint's size (deletion_audit_checkpoint_size_bytes) and its cost per write: the median
  of --writes write_checkpoint() calls in-process, for the file and the table store;
- ingestion (first size only): --burst rows committed in one COPY transaction, commit -> every row
  counted, in rows/s, against the bare GROUP BY over the same burst rows.

Usage: .venv/bin/python bench/bench_audit.py [--rows 1000000,10000000] [--burst 1000000]
       [--writes 50] [--no-query-exporter]. Prints tables; --json FILE also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from deletion_monitor.audit.cli import checkpoint_store
from deletion_monitor.audit.exporter import ExporterConfig, connect
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor.data import schema_path
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
BLOCK_ROWS = 200_000
# The peer and its PostgreSQL driver, pinned: without the driver in its venv every query fails
# (`Module "psycopg" not found`) and the peer's columns come out blank.
QE_PACKAGES = ("query-exporter==5.0.2", "psycopg[binary]==3.3.9")

# The same numbers as the exporter's counters, written the way one would in psql: plain
# GROUP BYs, no validation of malformed rows, one scan per family. {cond}: which rows (all, or
# the burst's).
BARE_GROUP_BY = """
SELECT target_user_type, outcome, error_type,
       width_bucket(duration_seconds,
                    ARRAY[0.05,0.1,0.25,0.5,0.75,1,1.5,2,2.5,3,4,5,7.5,10,15,20,30]::float8[]),
       count(*), sum(duration_seconds)
FROM deletion_audit WHERE {cond} GROUP BY 1, 2, 3, 4;
SELECT extract(hour FROM occurred_at AT TIME ZONE 'UTC'), count(*) FROM deletion_audit
WHERE {cond} GROUP BY 1;
SELECT extract(isodow FROM occurred_at AT TIME ZONE 'UTC'), count(*) FROM deletion_audit
WHERE {cond} GROUP BY 1;
SELECT e.key, sum(e.value::bigint) FROM deletion_audit, jsonb_each_text(rows_deleted) e
WHERE outcome = 'success' AND {cond} GROUP BY 1;
SELECT width_bucket(t, ARRAY[0,1,5,10,25,50,100,250,500,1000,5000]::numeric[]), count(*), sum(t)
FROM (SELECT (SELECT sum(value::bigint) FROM jsonb_each_text(rows_deleted)) t
      FROM deletion_audit WHERE outcome = 'success' AND {cond}) s GROUP BY 1;
SELECT app_version, min(occurred_at) FROM deletion_audit WHERE {cond} GROUP BY 1
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


def _cpu_ticks(stat: str, children: bool = False) -> int:
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks + (int(fields[13]) + int(fields[14]) if children else 0)  # cutime, cstime


def database_cpu_s() -> float:
    """CPU seconds (user + system) used so far by the bench's PostgreSQL cluster: the postmaster,
    every live backend and worker, and the ones that have exited (their time is added to the
    postmaster's children's time when it reaps them).

    Wall times on a shared 2-core box swing with other jobs; the database's CPU time says how
    much work it did, whatever else was running. Parallel workers (the bare GROUP BYs use them)
    are included; autovacuum too, when it runs during a measurement.
    """
    total = _cpu_ticks(Path(f"/proc/{POSTMASTER[0]}/stat").read_text(), children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        if int(text.rsplit(")", 1)[1].split()[1]) == POSTMASTER[0]:
            total += _cpu_ticks(text)
    return total / os.sysconf("SC_CLK_TCK")


POSTMASTER = [0]  # pid of the bench cluster's postmaster (set in main)


def bare_group_by(dsn: str, cond: str = "true", runs: int = 2) -> dict[str, float]:
    """Best of `runs` of the bare GROUP BY queries on one plain connection (default settings,
    as in psql): wall seconds and the database's CPU seconds of that run."""
    best: dict[str, float] = {}
    for _ in range(runs):
        with psycopg.connect(dsn, autocommit=True) as conn:
            cpu0, started = database_cpu_s(), time.monotonic()
            for stmt in BARE_GROUP_BY.format(cond=cond).split(";"):
                conn.execute(stmt).fetchall()
            wall, cpu = time.monotonic() - started, database_cpu_s() - cpu0
        if not best or wall < best["s"]:
            best = {"s": wall, "cpu_s": cpu}
    return best


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


def idle_poll_ms(url: str, seconds: float = 5.0) -> float:
    """Mean duration of the polls of an idle exporter: the poll histogram's growth over
    `seconds` (sum / count of the polls in between). Not the mean since start: the start-up
    cycle (connect, table check, chunk bounds, helpers) would weigh on it, more the larger the
    table, and make an idle poll look size-dependent."""

    def poll_histogram() -> tuple[float, float]:
        values = {}
        for line in get(url).splitlines():
            if line.startswith("deletion_audit_poll_duration_seconds_"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return (
            values.get("deletion_audit_poll_duration_seconds_count", 0.0),
            values.get("deletion_audit_poll_duration_seconds_sum", 0.0),
        )

    count0, sum0 = poll_histogram()
    time.sleep(seconds)
    count1, sum1 = poll_histogram()
    polls = count1 - count0
    return (sum1 - sum0) / polls * 1000 if polls > 0 else float("nan")


def metric_values(text: str, name: str) -> list[float]:
    """Every sample value of `name` (with or without labels) in an exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$")
    return [float(m.group(1)) for line in text.splitlines() if (m := pattern.match(line))]


def startup_source(text: str) -> str | None:
    m = re.search(r'^deletion_audit_startup_info{[^}]*source="([a-z_]+)"', text, re.M)
    return m.group(1) if m else None


def deletion_series(text: str) -> list[str]:
    """The product's series (deletion_*, not the exporter's own deletion_audit_* self-metrics,
    which are process-local): what a restart must serve unchanged, _created included."""
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith("deletion_") and not line.startswith("deletion_audit_")
    )


def table_rows(dsn: str) -> tuple[int, int]:
    """(count(*), max(id)) of the audit table."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM deletion_audit").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


STORES = ("file", "table")
CHECKPOINT_TABLE = "deletion_audit_checkpoint"
EXPORTER_ID = "bench"


def store_args(store: str, n: int) -> list[str]:
    if store == "file":
        return ["--state-file", str(OUT / f"state-{n}.json")]
    return ["--checkpoint-table", CHECKPOINT_TABLE, "--exporter-id", EXPORTER_ID]


def start_exporter(dsn: str, store: str, n: int, tag: str) -> tuple[ManagedProcess, str]:
    port = free_port()
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
        *store_args(store, n),
    ]
    proc = ManagedProcess(argv, OUT / f"exporter-{n}-{store}-{tag}.log")
    return proc, f"http://127.0.0.1:{port}/metrics"


def stop_exporter(proc: ManagedProcess) -> None:
    """SIGTERM and wait: the exporter writes its shutdown checkpoint before it exits."""
    code = proc.stop(timeout=120)
    if code != 0:
        raise RuntimeError(f"exporter exited with {code}: {proc.log_tail()}")
    if "checkpoint written" not in proc.log_path.read_text(errors="replace"):
        raise RuntimeError(f"no shutdown checkpoint in the log: {proc.log_tail()}")


def full_run(dsn: str, n: int, store: str, scrapes: bool) -> tuple[dict[str, float], list[str]]:
    """Start-up by full aggregation (the store has no checkpoint yet), then SIGTERM."""
    res: dict[str, float] = {}
    cpu0, started = database_cpu_s(), time.monotonic()
    proc, url = start_exporter(dsn, store, n, "full")
    try:
        wait_for(url, "deletion_requests_total{", proc)
        res["startup_s"] = time.monotonic() - started
        res["db_cpu_s"] = database_cpu_s() - cpu0
        text = get(url)
        if startup_source(text) != "full_aggregation":
            raise RuntimeError(f"expected a full aggregation, got {startup_source(text)}")
        series = deletion_series(text)
        if scrapes:
            res["scrape_p50_ms"], res["scrape_p99_ms"] = scrape_latency(url)
            time.sleep(3)  # a few idle polls (interval 1 s): the steady-state database cost
            res["idle_poll_ms"] = idle_poll_ms(url)
            res["peak_rss_mb"] = peak_rss_mb(proc.pid)
        stop_exporter(proc)
    finally:
        proc.stop()
    return res, series


def restart_run(dsn: str, n: int, store: str, expected: list[str]) -> dict[str, Any]:
    """A fresh process resuming from the shutdown checkpoint: start -> first complete scrape."""
    count, _ = table_rows(dsn)
    res: dict[str, Any] = {}
    started = time.monotonic()
    proc, url = start_exporter(dsn, store, n, "restart")
    try:
        wait_for(url, "deletion_requests_total{", proc)
        res["restart_s"] = time.monotonic() - started
        text = get(url)
        res["source"] = startup_source(text)
        res["initial_load_s"] = (
            metric_values(text, "deletion_audit_initial_load_duration_seconds") or [float("nan")]
        )[0]
        res["requests_sum"] = sum(metric_values(text, "deletion_requests_total"))
        res["rows"] = count
        res["identical_series"] = deletion_series(text) == expected
        res["correct"] = (
            res["source"] == "checkpoint"
            and res["requests_sum"] == count
            and res["identical_series"]
        )
        deadline = time.monotonic() + 30  # the restarted process checkpoints right away
        while time.monotonic() < deadline:
            size = metric_values(get(url), "deletion_audit_checkpoint_size_bytes")
            if size:
                res["checkpoint_bytes"] = size[0]
                break
            time.sleep(0.1)
        stop_exporter(proc)
    finally:
        proc.stop()
    return res


def write_cost_ms(dsn: str, n: int, store: str, writes: int) -> float:
    """Median ms of `writes` write_checkpoint() calls of an in-process exporter resumed from the
    store's checkpoint (the same store the command builds from the same flags)."""
    cfg = ExporterConfig(dsn=dsn, poll_interval=1)
    flags = argparse.Namespace(
        state_file=str(OUT / f"state-{n}.json") if store == "file" else None,
        checkpoint_table=CHECKPOINT_TABLE if store == "table" else None,
        exporter_id=EXPORTER_ID,
    )
    exporter = AuditExporter(cfg, checkpoints=checkpoint_store(flags, cfg))
    exporter._conn = connect(cfg)
    try:
        exporter.start_up()
        if exporter.store.snapshot().startup_source != "checkpoint":
            raise RuntimeError("the in-process exporter did not resume from the checkpoint")
        times = []
        for _ in range(writes):
            started = time.perf_counter()
            if not exporter.write_checkpoint(reason="bench"):
                raise RuntimeError("write_checkpoint() failed")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        exporter.stop()
    return statistics.median(times)


def ingest_run(dsn: str, n: int, burst: int) -> dict[str, float]:
    """A burst committed at once into a table the exporter (resumed from its file checkpoint)
    tails; against the bare GROUP BY over exactly the burst's rows."""
    res: dict[str, float] = {}
    _, max_id = table_rows(dsn)
    proc, url = start_exporter(dsn, "file", n, "ingest")
    try:
        wait_for(url, "deletion_requests_total{", proc)
        base = ingested(url)
        res["burst_fill_s"] = fill(dsn, burst, seed=99)  # one transaction: visible on commit
        cpu0, t0 = database_cpu_s(), time.monotonic()
        while ingested(url) < base + burst:
            if not proc.alive():
                raise RuntimeError(f"exporter died: {proc.log_tail()}")
            time.sleep(0.05)
        res["ingest_s"] = time.monotonic() - t0
        res["ingest_db_cpu_s"] = database_cpu_s() - cpu0
        res["ingest_rows_per_s"] = burst / res["ingest_s"]
        res["scrape_p50_after_ms"], res["scrape_p99_after_ms"] = scrape_latency(url)
        count, _ = table_rows(dsn)
        res["correct"] = float(sum(metric_values(get(url), "deletion_requests_total")) == count)
        res["peak_rss_mb"] = peak_rss_mb(proc.pid)
    finally:
        proc.stop()
    bare = bare_group_by(dsn, f"id > {max_id}")
    res["bare_burst_s"], res["bare_burst_cpu_s"] = bare["s"], bare["cpu_s"]
    res["bare_burst_rows_per_s"] = burst / bare["s"]
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


def qe_venv() -> Path:
    """bench/out/qe-venv with the pinned query-exporter and its psycopg driver (re-installed
    when the pins change, or when a venv from an older bench lacks the driver)."""
    venv = OUT / "qe-venv"
    stamp = venv / ".bench-pins"
    pins = " ".join(QE_PACKAGES)
    if not (stamp.exists() and stamp.read_text() == pins):
        if not (venv / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *QE_PACKAGES], check=True)
        # The driver must import in that venv, or every query fails and the columns are blank.
        subprocess.run([str(venv / "bin" / "python"), "-c", "import psycopg"], check=True)
        stamp.write_text(pins)
    return venv / "bin" / "query-exporter"


def bench_query_exporter(dsn: str, n: int) -> dict[str, float] | None:
    exe = qe_venv()
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


def bench_size(dsn: str, n: int, burst: int, writes: int, peer: bool) -> dict[str, Any]:
    apply_sql_file(dsn, schema_path("deletion_audit.sql"))
    apply_sql_file(dsn, schema_path("deletion_audit_checkpoint.sql"))
    fill_s = fill(dsn, n)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE deletion_audit")
    row: dict[str, Any] = {"rows": n, "fill_s": fill_s, "bare": bare_group_by(dsn)}
    report = lambda: print(json.dumps(row), file=sys.stderr, flush=True)  # noqa: E731
    report()
    # The peer first: over exactly the rows our start-up reads (the burst comes last).
    if peer:
        row["query_exporter"] = bench_query_exporter(dsn, n)
        report()
    (OUT / f"state-{n}.json").unlink(missing_ok=True)
    expected: list[str] = []
    for store in STORES:
        full, series = full_run(dsn, n, store, scrapes=store == "file")
        expected = expected or series
        if series != expected:
            raise RuntimeError("two full aggregations of the same rows served different series")
        row[f"full_{store}"] = full
        row[f"restart_{store}"] = restart_run(dsn, n, store, expected)
        report()
    for store in STORES:
        row[f"restart_{store}"]["write_ms"] = write_cost_ms(dsn, n, store, writes)
    if burst:
        row["ingest"] = ingest_run(dsn, n, burst)
    report()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument("--burst", type=int, default=1_000_000, help="0: no ingestion run")
    parser.add_argument("--writes", type=int, default=50, help="checkpoint writes timed")
    parser.add_argument("--no-query-exporter", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--cpu-load",
        type=int,
        default=0,
        help="busy processes running beside the bench (other jobs on a shared box)",
    )
    args = parser.parse_args()
    # SIGTERM (timeout, CI) must still stop the throwaway cluster and the exporters.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.rows.split(",") if s]
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}", flush=True)
    started = datetime.now(UTC)
    results = []
    # "Other jobs running": N busy loops for the whole run, stopped with it.
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.cpu_load)
    ]
    if burners:
        print(f"cpu load: {len(burners)} busy processes beside the bench", flush=True)
    try:
        results = run_sizes(args, sizes)
    finally:
        for burner in burners:
            burner.kill()
    finished = datetime.now(UTC)
    print(f"run: {started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC, load average {load()}")
    return report_results(args, results)


def run_sizes(args: argparse.Namespace, sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    with PgCluster(settings={"shared_buffers": "512MB"}) as cluster:
        POSTMASTER[0] = int((cluster.data / "postmaster.pid").read_text().split()[0])
        for i, n in enumerate(sizes):
            dsn = cluster.create_database(f"bench{n}")
            # The burst runs once (on the first size) to keep the run short.
            burst = args.burst if i == 0 else 0
            results.append(bench_size(dsn, n, burst, args.writes, not args.no_query_exporter))
            with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE bench{n}")
    return results


def report_results(args: argparse.Namespace, results: list[dict[str, Any]]) -> int:
    print_tables(results)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "results": results}, indent=2, default=str)
        )
    failed = [
        f"{r['rows']:,} rows, {store}"
        for r in results
        for store in STORES
        if not r[f"restart_{store}"]["correct"]
    ]
    if failed:
        print(f"bench: restart with a checkpoint not correct: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _f(v: object, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _ratio(v: float | None, base: float | None) -> str:
    return "-" if v is None or not base else f"{v / base:.2f}x"


def print_tables(results: list[dict[str, Any]]) -> None:
    """Markdown tables: each figure with its ratio to the baseline measured in the same run."""
    print("\nFull aggregation at start-up (no checkpoint yet) vs the bare GROUP BY:\n")
    print(
        "| rows | COPY fill s | bare GROUP BY s (db CPU s) | full start-up s, file store "
        "| table store | ratio to bare (file / table) | exporter db CPU s (ratio to bare CPU) "
        "| scrape p50 / p99 ms | peak RSS MB | idle poll ms |"
    )
    print("|" + "---|" * 10)
    for r in results:
        bare, ff, ft = r["bare"], r["full_file"], r["full_table"]
        print(
            f"| {r['rows']:,} | {_f(r['fill_s'], '{:.1f}')} | {_f(bare['s'])} "
            f"({_f(bare['cpu_s'])}) | {_f(ff['startup_s'])} | {_f(ft['startup_s'])} "
            f"| {_ratio(ff['startup_s'], bare['s'])} / {_ratio(ft['startup_s'], bare['s'])} "
            f"| {_f(ff['db_cpu_s'])} ({_ratio(ff['db_cpu_s'], bare['cpu_s'])}) "
            f"| {_f(ff.get('scrape_p50_ms'))} / {_f(ff.get('scrape_p99_ms'))} "
            f"| {_f(ff.get('peak_rss_mb'), '{:.0f}')} | {_f(ff.get('idle_poll_ms'))} |"
        )
    print("\nRestart with a checkpoint (SIGTERM, then a fresh process) vs the bare GROUP BY:\n")
    print(
        "| rows | store | restart s (start -> complete scrape) | ratio to bare "
        "| ratio to full start-up | initial_load_duration s | checkpoint bytes "
        "| write median ms | correct (source, sum = count(*), series identical) |"
    )
    print("|" + "---|" * 9)
    for r in results:
        for store in STORES:
            x, full = r[f"restart_{store}"], r[f"full_{store}"]
            check = (
                f"{'yes' if x['correct'] else 'NO'} ({x['source']}, "
                f"{x['requests_sum']:,.0f} = {x['rows']:,}, {x['identical_series']})"
            )
            print(
                f"| {r['rows']:,} | {store} | {_f(x['restart_s'])} "
                f"| {_ratio(x['restart_s'], r['bare']['s'])} "
                f"| {_ratio(x['restart_s'], full['startup_s'])} "
                f"| {_f(x['initial_load_s'], '{:.3f}')} "
                f"| {_f(x.get('checkpoint_bytes'), '{:,.0f}')} "
                f"| {_f(x.get('write_ms'))} | {check} |"
            )
    ingests = [r for r in results if r.get("ingest")]
    if ingests:
        print("\nIngestion of a burst committed at once vs the bare GROUP BY over the same rows:\n")
        print(
            "| table rows before | burst rows | commit -> all counted s | rows/s "
            "| exporter db CPU s | bare GROUP BY over the burst s (db CPU s) | bare rows/s "
            "| ingestion / bare (time) | scrape p50 / p99 ms after | peak RSS MB |"
        )
        print("|" + "---|" * 10)
        for r in ingests:
            g = r["ingest"]
            burst = g["ingest_rows_per_s"] * g["ingest_s"]
            print(
                f"| {r['rows']:,} | {burst:,.0f} | {_f(g['ingest_s'])} "
                f"| {_f(g['ingest_rows_per_s'], '{:,.0f}')} | {_f(g['ingest_db_cpu_s'])} "
                f"| {_f(g['bare_burst_s'])} ({_f(g['bare_burst_cpu_s'])}) "
                f"| {_f(g['bare_burst_rows_per_s'], '{:,.0f}')} "
                f"| {_ratio(g['ingest_s'], g['bare_burst_s'])} "
                f"| {_f(g['scrape_p50_after_ms'])} / {_f(g['scrape_p99_after_ms'])} "
                f"| {_f(g['peak_rss_mb'], '{:.0f}')} |"
            )
    peers = [r for r in results if "query_exporter" in r]
    if peers:
        print("\nquery-exporter over the same rows (before the burst):\n")
        print(
            "| rows | qe start-up s | ratio to bare | ratio to our full start-up "
            "| qe scrape p50 / p99 ms | qe RSS MB | qe full refresh s vs our idle poll ms |"
        )
        print("|" + "---|" * 7)
        for r in peers:
            q = r["query_exporter"] or {}
            ours = r["full_file"]
            print(
                f"| {r['rows']:,} | {_f(q.get('startup_s'))} "
                f"| {_ratio(q.get('startup_s'), r['bare']['s'])} "
                f"| {_ratio(q.get('startup_s'), ours['startup_s'])} "
                f"| {_f(q.get('scrape_p50_ms'))} / {_f(q.get('scrape_p99_ms'))} "
                f"| {_f(q.get('peak_rss_mb'), '{:.0f}')} "
                f"| {_f(q.get('startup_s'))} s / {_f(ours.get('idle_poll_ms'))} ms |"
            )


if __name__ == "__main__":
    sys.exit(main())
