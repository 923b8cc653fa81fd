"""Benchmark of the default integrity checks on a large reference-application database.

    python bench/bench_integrity.py               # 1 M profiles, 10 M child rows
    python bench/bench_integrity.py --scale 0.01  # 10 k profiles, 100 k child rows (seconds)

Loads the reference schema into a throwaway PostgreSQL cluster with INSERT ... SELECT
generate_series on the server (far faster than shipping rows from Python), then in one run:
  1. every default check through the exporter's own runner (READ ONLY transaction,
     set_config('statement_timeout'), rollback) and the whole suite as the runner runs it;
  2. the same SQL, parameters inlined, through psql with \\timing;
  3. the NOT IN form of every orphan check, as the old shell scripts wrote it;
  4. EXPLAIN of every check: which anti/semi-joins and indexes it uses, and whether any
     SubPlan re-scans a table per row (the NOT IN failure mode).
Prints tables (markdown) to stdout; nothing is asserted, timing is for people to read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "exporters"))

from deletion_monitor.data import schema_path  # noqa: E402
from deletion_monitor.integrity.checks import Check, load_checks  # noqa: E402
from deletion_monitor.integrity.runner import connect, run_check  # noqa: E402
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file, pg_bindir  # noqa: E402

# Child rows per profile; sums to 10, so --scale 1 gives 10 M child rows for 1 M profiles.
CHILDREN_PER_PROFILE = {
    "accounts": 1.0,
    "sessions": 2.0,
    "addresses": 1.0,
    "user_addresses": 1.0,
    "catering_requests": 1.5,
    "on_demand_requests": 1.0,
    "user_audits": 1.5,
    "dispatches": 0.5,
    "file_uploads": 0.5,
}

# The old scripts' form of each orphan check: NOT IN over the whole profiles table.
# name -> (child table, WHERE clause); the SQL is "SELECT count(*) FROM table WHERE clause".
NOT_IN = {
    "orphaned_accounts": ("accounts", '"userId" NOT IN (SELECT id FROM profiles)'),
    "orphaned_sessions": ("sessions", '"userId" NOT IN (SELECT id FROM profiles)'),
    "orphaned_user_addresses": ("user_addresses", '"userId" NOT IN (SELECT id FROM profiles)'),
    "orphaned_catering_requests": (
        "catering_requests",
        '"userId" NOT IN (SELECT id FROM profiles)',
    ),
    "orphaned_on_demand_requests": (
        "on_demand_requests",
        '"userId" NOT IN (SELECT id FROM profiles)',
    ),
    "orphaned_user_audits": ("user_audits", '"userId" NOT IN (SELECT id FROM profiles)'),
    "orphaned_user_audit_performers": (
        "user_audits",
        '"performedBy" IS NOT NULL AND "performedBy" NOT IN (SELECT id FROM profiles)',
    ),
}
# Rows of the random sample used to estimate a NOT IN that did not finish in time.
NOT_IN_SAMPLE_ROWS = 200


def _uuid(prefix: str, expr: str) -> str:
    # Deterministic uuids: a child can name its parent by arithmetic, no join needed at load.
    return f"md5('{prefix}' || ({expr})::text)::uuid"


def load(dsn: str, scale: float) -> dict[str, int]:
    """Create the schema and fill it; returns row counts per table."""
    n = max(100, int(1_000_000 * scale))
    apply_sql_file(dsn, schema_path("reference_app.sql"))
    apply_sql_file(dsn, schema_path("deletion_audit.sql"))
    counts = {"profiles": n, **{t: int(n * k) for t, k in CHILDREN_PER_PROFILE.items()}}
    user = _uuid("p", "{} % " + str(n))
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Building indexes and checking foreign keys once after the load is many times faster
        # than maintaining them row by row: drop them, load, recreate (keys are then validated
        # by one join each, as ALTER TABLE ... ADD CONSTRAINT does on a real migration).
        fks = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
        ).fetchall()
        pks = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype IN ('p', 'u') "
            "AND connamespace = 'public'::regnamespace AND conrelid::regclass::text <> "
            "'deletion_audit'"
        ).fetchall()
        idx = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename <> 'deletion_audit' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))"
        ).fetchall()
        for table, name, _ in fks:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for table, name, _ in pks:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in idx:
            conn.execute(f'DROP INDEX "{name}"')

        types = "(ARRAY['VENDOR','CLIENT','DRIVER','ADMIN','HELPDESK','SUPER_ADMIN'])[1 + i % 6]"
        steps = {
            # 1 % soft-deleted, as after a few months of an endpoint that soft-deletes.
            "profiles": f"""INSERT INTO profiles (id, email, type, "deletedAt")
                SELECT {_uuid("p", "i")}, 'user' || i || '@example.com', {types},
                       CASE WHEN i % 100 = 0 THEN now() - interval '1 day' END
                FROM generate_series(0, {n - 1}) i""",
            "accounts": f"""INSERT INTO accounts (id, "userId", provider, "providerAccountId")
                SELECT {_uuid("ac", "i")}, {user.format("i")}, 'google', i::text
                FROM generate_series(0, {counts["accounts"] - 1}) i""",
            "sessions": f"""INSERT INTO sessions (id, "sessionToken", "userId", expires)
                SELECT {_uuid("se", "i")}, md5('t' || i), {user.format("i")},
                       now() + (i % 48 - 24) * interval '1 hour'
                FROM generate_series(0, {counts["sessions"] - 1}) i""",
            "addresses": f"""INSERT INTO addresses (id, street1, city, "createdBy")
                SELECT {_uuid("ad", "i")}, i || ' Main St', 'Austin', {user.format("i")}
                FROM generate_series(0, {counts["addresses"] - 1}) i""",
            "user_addresses": f"""INSERT INTO user_addresses ("userId", "addressId")
                SELECT {user.format("i")}, {_uuid("ad", "i")}
                FROM generate_series(0, {counts["user_addresses"] - 1}) i""",
            "catering_requests": f"""INSERT INTO catering_requests
                    (id, "userId", "pickupAddressId", "deliveryAddressId")
                SELECT {_uuid("cr", "i")}, {user.format("i")},
                       {_uuid("ad", f"i % {counts['addresses']}")},
                       {_uuid("ad", f"(i * 7) % {counts['addresses']}")}
                FROM generate_series(0, {counts["catering_requests"] - 1}) i""",
            "on_demand_requests": f"""INSERT INTO on_demand_requests
                    (id, "userId", "pickupAddressId")
                SELECT {_uuid("od", "i")}, {user.format("i")},
                       {_uuid("ad", f"i % {counts['addresses']}")}
                FROM generate_series(0, {counts["on_demand_requests"] - 1}) i""",
            "user_audits": f"""INSERT INTO user_audits (id, "userId", "performedBy", action)
                SELECT {_uuid("ua", "i")}, {user.format("i")},
                       CASE WHEN i % 3 = 0 THEN {user.format("i * 13")} END, 'UPDATE'
                FROM generate_series(0, {counts["user_audits"] - 1}) i""",
            "dispatches": f"""INSERT INTO dispatches (id, "driverId", "userId")
                SELECT {_uuid("di", "i")}, {user.format("(i * 7 + 3)")}, {user.format("i")}
                FROM generate_series(0, {counts["dispatches"] - 1}) i""",
            "file_uploads": f"""INSERT INTO file_uploads (id, "userId", "fileName", "fileUrl")
                SELECT {_uuid("fu", "i")}, {user.format("i")}, 'f.pdf', 's3://b/' || i
                FROM generate_series(0, {counts["file_uploads"] - 1}) i""",
            # Successful hard deletions over the last day for the completeness audit to sample.
            "deletion_audit": f"""INSERT INTO deletion_audit (occurred_at, outcome,
                    duration_seconds, target_user_id, target_user_type, performed_by,
                    performed_by_type)
                SELECT now() - (i % 1440) * interval '1 minute', 'success', 0.5,
                       {_uuid("gone", "i")}::text, 'CLIENT', 'admin', 'ADMIN'
                FROM generate_series(0, {max(100, n // 100) - 1}) i""",
        }
        for table, sql in steps.items():
            t0 = time.monotonic()
            conn.execute(sql)
            _log(f"loaded {table} in {time.monotonic() - t0:.1f}s")
        t0 = time.monotonic()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for table, name, definition in pks:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in idx:
            conn.execute(definition)
        _log(f"indexes built in {time.monotonic() - t0:.1f}s")
        t0 = time.monotonic()
        for table, name, definition in fks:
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        _log(f"foreign keys added and validated in {time.monotonic() - t0:.1f}s")
        t0 = time.monotonic()
        conn.execute("VACUUM ANALYZE")  # visibility map for index-only scans, fresh statistics
        _log(f"vacuum analyze in {time.monotonic() - t0:.1f}s")
        counts["deletion_audit"] = conn.execute("SELECT count(*) FROM deletion_audit").fetchone()[0]
    return counts


def table_counts(dsn: str) -> dict[str, int]:
    tables = ["profiles", "deletion_audit", *CHILDREN_PER_PROFILE]
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def inline(conn: psycopg.Connection, check: Check, sql: str | None = None) -> str:
    """The check's SQL with its parameters rendered as literals, for psql and EXPLAIN."""
    sql = sql or check.sql
    params = check.query_params()
    if params is None:
        return sql
    return psycopg.ClientCursor(conn).mogrify(sql, params)


def psql_times(psql: str, dsn: str, statements: list[str]) -> tuple[list[float], float]:
    """Run statements in one psql session with \\timing; returns (per statement s, wall s)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("\\timing on\n")
        for sql in statements:
            f.write(sql.rstrip().rstrip(";") + ";\n")
        script = f.name
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", script, dsn],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.monotonic() - t0
    finally:
        os.unlink(script)
    times = [float(m) / 1000 for m in re.findall(r"^Time: ([\d.]+) ms", proc.stdout, re.M)]
    if len(times) != len(statements):
        raise RuntimeError(f"psql printed {len(times)} timings for {len(statements)} statements")
    return times, wall


def plan_summary(conn: psycopg.Connection, sql: str) -> tuple[str, bool]:
    """Join/scan nodes of the plan, and whether a SubPlan re-scans a table for each row."""
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchone()[0][0]["Plan"]
    joins: list[str] = []
    scans: list[str] = []
    per_row_scan = False

    def walk(node: dict[str, Any], in_subplan: bool, parent_text: str) -> None:
        nonlocal per_row_scan
        kind = node["Node Type"]
        # A hashed SubPlan runs once and is probed per row (fine); a plain SubPlan is executed
        # again for every outer row, which is what makes NOT IN quadratic on large tables.
        # EXPLAIN marks the difference only in the parent's expressions: "hashed SubPlan 1".
        if node.get("Parent Relationship") == "SubPlan":
            hashed = f"hashed {node.get('Subplan Name')}" in parent_text
            in_subplan = not hashed
            label = "hashed SubPlan" if hashed else "SubPlan per row"
            if label not in joins:
                joins.append(label)
        if "Join" in kind or kind == "Nested Loop":
            label = f"{kind} {node.get('Join Type', '')}".strip()
            if label not in joins:
                joins.append(label)
        if "Index" in kind and node.get("Index Name"):
            label = f"{kind.replace(' Scan', '')}:{node['Index Name']}"
        elif kind == "Seq Scan":
            label = f"Seq:{node.get('Relation Name')}"
        else:
            label = ""
        if label and label not in scans:
            scans.append(label)
        if in_subplan and kind in ("Seq Scan", "Materialize"):
            per_row_scan = True
        text = json.dumps({k: v for k, v in node.items() if k != "Plans"})
        for child in node.get("Plans", []):
            walk(child, in_subplan, text)

    walk(plan, False, "")
    return "; ".join(joins + scans) or plan["Node Type"], per_row_scan


def _log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} vCPU ({cpu}), {mem} GiB RAM, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1 M profiles (default)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per check (median)")
    parser.add_argument(
        "--not-in-timeout", type=float, default=20.0, help="seconds allowed per NOT IN query"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument(
        "--dsn", help="benchmark an already loaded database instead of creating one (no load)"
    )
    args = parser.parse_args(argv)

    checks = load_checks()
    cluster = None
    if not args.dsn:
        cluster = PgCluster(
            settings={
                "shared_buffers": "1GB",
                "max_wal_size": "8GB",
                "checkpoint_timeout": "30min",
                "wal_level": "minimal",
                "max_wal_senders": "0",
            }
        )
        cluster.start()
    psql = str((cluster.bindir if cluster else pg_bindir()) / "psql")
    try:
        t0 = time.monotonic()
        if cluster is not None:
            dsn = cluster.create_database("bench")
            counts = load(dsn, args.scale)
        else:
            dsn = args.dsn
            counts = table_counts(dsn)
        load_s = time.monotonic() - t0
        children = sum(v for k, v in counts.items() if k not in ("profiles", "deletion_audit"))
        print(f"## Integrity checks benchmark (scale {args.scale:g})\n")
        print(f"Machine: {machine()}; PostgreSQL {server_version(dsn)}, default work_mem.")
        print(
            f"Data: {counts['profiles']:,} profiles, {children:,} child rows, "
            f"{counts['deletion_audit']:,} audit rows; loaded in {load_s:.0f}s.\n"
        )

        with connect(dsn, application_name="bench-integrity") as conn:
            sql_inlined = {c.name: inline(conn, c) for c in checks}
        statements = [sql_inlined[c.name] for c in checks]
        # Warm-up passes (psql and the runner) so that every variant reads from a warm cache.
        psql_times(psql, dsn, statements)
        with connect(dsn, application_name="bench-integrity") as conn:
            for check in checks:
                run_check(conn, check)

        # Interleaved, check by check (runner, then psql, N times): the machine is shared, so
        # load drifts over minutes; alternating keeps both sides under the same conditions.
        # The runner keeps one connection, as the exporter does; psql is one process per
        # statement, as a cron'd shell script is (its \timing excludes the connection set-up).
        runner: dict[str, list[float]] = {c.name: [] for c in checks}
        bare: dict[str, list[float]] = {c.name: [] for c in checks}
        violations: dict[str, int | None] = {}
        conn = connect(dsn, application_name="bench-integrity")
        try:
            for check in checks:
                for _ in range(args.repeat):
                    result = run_check(conn, check)
                    if not result.ok:
                        raise RuntimeError(f"{check.name}: {result.error}")
                    runner[check.name].append(result.duration)
                    violations[check.name] = result.violations
                    bare[check.name] += psql_times(psql, dsn, [sql_inlined[check.name]])[0]
            # The whole suite as it runs for real, sequentially, alternating runner and psql
            # (one psql session for all statements), `repeat` times.
            suite_runner: list[float] = []
            suite_psql: list[float] = []
            suite_psql_wall: list[float] = []

            def runner_pass() -> None:
                t0 = time.monotonic()
                for check in checks:
                    run_check(conn, check)
                suite_runner.append(time.monotonic() - t0)

            def psql_pass() -> None:
                times, wall = psql_times(psql, dsn, statements)
                suite_psql.append(sum(times))
                suite_psql_wall.append(wall)

            # Which side goes first alternates, so that neither always inherits the cache
            # state (and the neighbours' load) the other left behind.
            for i in range(args.repeat):
                for one_pass in (
                    (runner_pass, psql_pass) if i % 2 == 0 else (psql_pass, runner_pass)
                ):
                    one_pass()
        finally:
            conn.close()

        med = statistics.median
        plans = {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            for check in checks:
                plans[check.name] = plan_summary(conn, sql_inlined[check.name])
            # The same anti-join with hash joins and seq scans disabled: shows the foreign-key
            # indexes can drive it (merge anti-join over index-only scans), and what the
            # planner's own choice of a hash anti-join saves on a whole-table count.
            # And the planner's own choice with random_page_cost = 1.1, the usual setting for
            # SSD or fully cached databases (the default 4 assumes spinning disks).
            forced: dict[str, tuple[float, str]] = {}
            ssd: dict[str, tuple[float, str]] = {}
            for name in NOT_IN:
                for target, settings in (
                    (forced, ("enable_hashjoin = off", "enable_seqscan = off")),
                    (ssd, ("random_page_cost = 1.1",)),
                ):
                    runs = []
                    with conn.transaction():
                        for setting in settings:
                            conn.execute(f"SET LOCAL {setting}")
                        alt_plan = plan_summary(conn, sql_inlined[name])[0]
                        for _ in range(3):
                            t0 = time.monotonic()
                            conn.execute(sql_inlined[name]).fetchone()
                            runs.append(time.monotonic() - t0)
                    target[name] = (statistics.median(runs), alt_plan)
            not_in: dict[str, float | None] = {}
            not_in_est: dict[str, float] = {}
            not_in_plan: dict[str, tuple[str, bool]] = {}
            conn.execute(f"SET statement_timeout = '{int(args.not_in_timeout * 1000)}ms'")
            for name, (table, where) in NOT_IN.items():
                sql = f"SELECT count(*) FROM {table} WHERE {where}"
                not_in_plan[name] = plan_summary(conn, sql)
                t0 = time.monotonic()
                try:
                    conn.execute(sql).fetchone()
                    not_in[name] = time.monotonic() - t0
                    continue
                except psycopg.errors.QueryCanceled:
                    not_in[name] = None
                # Did not finish: time it on a random sample of rows and extrapolate. Each
                # outer row costs a re-scan of profiles up to its match, independent of the
                # other rows, so the total is linear in the number of child rows.
                total = counts[table]
                pct = min(100.0, 100.0 * NOT_IN_SAMPLE_ROWS / max(1, total))
                sample = f"{table} TABLESAMPLE BERNOULLI ({pct:.6f}) REPEATABLE (1)"
                rows = conn.execute(f"SELECT count(*) FROM {sample}").fetchone()[0]
                t0 = time.monotonic()
                with contextlib.suppress(psycopg.errors.QueryCanceled):
                    conn.execute(f"SELECT count(*) FROM {sample} WHERE {where}").fetchone()
                    not_in_est[name] = (time.monotonic() - t0) / max(1, rows) * total

        print("### Each check: exporter runner vs the same SQL in psql\n")
        print("| check | violations | runner s | psql s | runner/psql | plan | per-row scan |")
        print("|---|---:|---:|---:|---:|---|---|")
        for check in checks:
            r, b = med(runner[check.name]), med(bare[check.name])
            plan, per_row = plans[check.name]
            print(
                f"| {check.name} | {violations[check.name]} | {r:.3f} | {b:.3f} | "
                f"{r / b if b else float('nan'):.2f} | {plan} | {'YES' if per_row else 'no'} |"
            )
        sr = sum(med(runner[c.name]) for c in checks)
        sp = sum(med(bare[c.name]) for c in checks)
        wr, wp, ww = med(suite_runner), med(suite_psql), med(suite_psql_wall)
        print(
            f"\nSuite ({len(checks)} checks, sequential, median of {args.repeat} passes): "
            f"runner {wr:.2f}s, psql {wp:.2f}s (sum of \\timing; {ww:.2f}s process wall): "
            f"**runner/psql = {wr / wp:.2f}** (target <= 1.3). Sum of the per-check medians: "
            f"runner {sr:.2f}s, psql {sp:.2f}s, ratio {sr / sp:.2f}.\n"
        )
        print("### Orphan checks: NOT EXISTS anti-join vs the old NOT IN\n")
        print(
            f"NOT IN runs with statement_timeout {args.not_in_timeout:g}s; when cancelled, its "
            f"time is estimated from a random sample of ~{NOT_IN_SAMPLE_ROWS} child rows "
            "(TABLESAMPLE BERNOULLI), scaled linearly to the table.\n"
        )
        print(
            "| check | NOT EXISTS s | NOT IN s | NOT IN / NOT EXISTS | NOT IN plan "
            "| NOT EXISTS, hash join and seq scan off: s, plan "
            "| NOT EXISTS, random_page_cost 1.1: s, plan |"
        )
        print("|---|---:|---:|---:|---|---|---|")
        for name in NOT_IN:
            fast = med(bare[name])
            slow = not_in[name]
            plan, per_row = not_in_plan[name]
            if slow is not None:
                shown, ratio = f"{slow:.3f}", f"{slow / fast:,.1f}x"
            elif name in not_in_est:
                est = not_in_est[name]
                shown = f"> {args.not_in_timeout:g} (cancelled); est. {est:,.0f}"
                ratio = f"~{est / fast:,.0f}x"
            else:
                shown = f"> {args.not_in_timeout:g} (cancelled)"
                ratio = f"> {args.not_in_timeout / fast:,.0f}x"
            flag = " (re-scans a table per row)" if per_row else ""
            f_s, f_plan = forced[name]
            s_s, s_plan = ssd[name]
            print(
                f"| {name} | {fast:.3f} | {shown} | {ratio} | {plan}{flag} | "
                f"{f_s:.3f}: {f_plan} | {s_s:.3f}: {s_plan} |"
            )
    finally:
        if cluster is not None and not args.keep:
            cluster.destroy()
        elif cluster is not None:
            _log(f"cluster kept: {cluster.dsn('bench')} (data in {cluster.base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
