"""The partitioned audit table (deletion_audit_partitioned.sql, deletion_audit_partman.sql) against
a real PostgreSQL and the real `deletion-monitor audit-exporter` subprocess.

The exporter must not be able to tell a partitioned table from a plain one; retention, by the
plain-SQL procedure or by pg_partman, must drop exactly the months past the retention and never
the default partition, while a running exporter's counters stay where they were.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb
from support.partitions import (
    PARTMAN_SQL,
    apply_partitioned,
    create_partitioned_table,
    drop_oldest_partition,
    month_start,
    partitions,
)
from test_audit_exporter import assert_exact, edge_rows, insert, truth
from test_audit_exporter_cli import CLI

from deletion_monitor.audit.exporter import scrape_values
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port

Sample = tuple[str, tuple[tuple[str, str], ...]]
# Counters and histograms that describe this process, not the table (their _created is the
# process start): they legitimately differ between two exporters.
PROCESS_LOCAL = ("deletion_audit_poll", "deletion_audit_checkpoint")

# occurred_at values the contract must store and the exporter must count: month edges (the first
# and the last microsecond of a month, in UTC and as another zone writes them), the epoch, the
# last valid instant, and the invalid ones, which only the default partition can hold.
EDGE_TIMES = [
    datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    # Written in UTC+1 as 1 March 00:30: February in UTC, and partitions are UTC months.
    datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]
INVALID_TIMES = ["infinity", "-infinity", "0044-03-15 12:00:00+00 BC", "10000-01-01 00:00:00+00"]


# -- helpers ---------------------------------------------------------------------------------


def start_exporter(dsn: str, tmp_path: Path, name: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    proc = ManagedProcess(
        [*CLI, "--dsn", dsn, "--listen", f"127.0.0.1:{port}", "--poll-interval", "0.2"],
        tmp_path / f"{name}.log",
    )
    return proc, port


def exposition(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def table_series(text: str) -> dict[Sample, float]:
    """Every sample of the deletion_* counters and histograms (with their _created samples),
    process-local families left out."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("deletion_") or family.name.startswith(PROCESS_LOCAL):
            continue
        created_of_counter = family.type == "gauge" and family.name.endswith("_created")
        if family.type not in ("counter", "histogram") and not created_of_counter:
            continue
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_scrape(
    proc: ManagedProcess, port: int, done: Callable[[dict], bool], timeout: float = 60.0
) -> str:
    """The exposition text once `done(values)` holds (values as scrape_values gives them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.alive(), proc.log_tail()
        try:
            text = exposition(port)
            if done(dict(scrape_values(text))):
                return text
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"exporter condition not met in {timeout}s: {proc.log_tail()}")


def ingested(n: int) -> Callable[[dict], bool]:
    return lambda v: v.get(("deletion_audit_rows_ingested_total", ())) == n


def polls_after(text: str, more: int) -> Callable[[dict], bool]:
    """At least `more` polls completed after the scrape `text` was taken."""
    before = dict(scrape_values(text)).get(("deletion_audit_poll_duration_seconds_count", ()), 0)
    return lambda v: v.get(("deletion_audit_poll_duration_seconds_count", ()), 0) >= before + more


def count(dsn: str, where: str = "true") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM deletion_audit WHERE {where}").fetchone()[0]


def tableoid_of(dsn: str) -> dict[int, str]:
    """id -> name of the partition holding the row."""
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT id, tableoid::regclass::text FROM deletion_audit"))


def edge_and_invalid_rows() -> list[dict]:
    """edge_rows() of the plain exporter tests with a fixed occurred_at (the default now()
    would differ between two databases), then the month edges and the invalid instants."""
    rows = [{"occurred_at": datetime(2026, 2, 10, 12, tzinfo=UTC), **row} for row in edge_rows()]
    rows += [{"occurred_at": at, "target_user_type": "CLIENT"} for at in EDGE_TIMES]
    rows += [
        {
            "occurred_at": at,
            "target_user_type": "DRIVER",
            "outcome": "failure",
            "error_type": "timeout",
        }
        for at in EDGE_TIMES[:2]
    ]
    rows += [{"occurred_at": at} for at in INVALID_TIMES]
    return rows


@pytest.fixture
def partitioned_dsn(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> str:
    """A database of its own (beside pg_dsn/audit_dsn) holding the partitioned contract."""
    dsn = pg_cluster.create_database(f"part_{request.node.name}"[:60].lower())
    apply_partitioned(dsn)
    return dsn


@pytest.fixture
def exporters() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop()


# -- the contract ----------------------------------------------------------------------------


def test_same_columns_and_indexes_as_the_plain_table(audit_dsn: str, partitioned_dsn: str) -> None:
    columns = """
        SELECT column_name, data_type, is_nullable, column_default, is_identity,
               identity_generation, col_description('deletion_audit'::regclass, ordinal_position)
        FROM information_schema.columns WHERE table_name = 'deletion_audit'
        ORDER BY ordinal_position"""
    indexes = """
        SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'deletion_audit'::regclass ORDER BY 1"""
    with psycopg.connect(audit_dsn) as plain, psycopg.connect(partitioned_dsn) as part:
        assert part.execute(columns).fetchall() == plain.execute(columns).fetchall()
        plain_idx = dict(plain.execute(indexes).fetchall())
        part_idx = dict(part.execute(indexes).fetchall())
        # Same names; the same definitions except the key, which has to include occurred_at.
        assert part_idx.keys() == plain_idx.keys()
        for name in plain_idx.keys() - {"deletion_audit_pkey"}:
            assert part_idx[name] == plain_idx[name].replace(" ON ", " ON ONLY ", 1)
        assert part_idx["deletion_audit_pkey"].endswith("(id, occurred_at)")
        # The cursor's (tx, id) index exists on every partition, the default one included.
        (missing,) = part.execute(
            """SELECT count(*) FROM pg_inherits p WHERE p.inhparent = 'deletion_audit'::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = p.inhrelid
                               AND pg_get_indexdef(i.indexrelid) LIKE '%(tx, id)')"""
        ).fetchone()
        assert missing == 0
    # Idempotent, and the current month and 3 ahead exist.
    apply_partitioned(partitioned_dsn)
    now = datetime.now(UTC)
    monthly = [p.range_from for p in partitions(partitioned_dsn) if p.range_from is not None]
    assert monthly == [month_start(now, -k) for k in range(4)]


def test_one_or_the_other(audit_dsn: str) -> None:
    """Applying the partitioned file over a plain table fails with the reason, changes nothing."""
    with pytest.raises(psycopg.errors.RaiseException, match="not partitioned"):
        apply_partitioned(audit_dsn)
    with psycopg.connect(audit_dsn) as conn:
        (kind,) = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'deletion_audit'::regclass"
        ).fetchone()
        assert kind == "r"
        assert conn.execute("SELECT to_regclass('deletion_audit_default')").fetchone() == (None,)


def test_every_row_is_stored_in_its_month_or_the_default(partitioned_dsn: str) -> None:
    with psycopg.connect(partitioned_dsn, autocommit=True) as conn:
        for month in ("2025-12-15", "2026-01-15", "2026-02-15", "2026-03-15"):
            conn.execute("SELECT deletion_audit_create_partition(%s)", (month,))
    insert(partitioned_dsn, [{"occurred_at": at} for at in EDGE_TIMES + INVALID_TIMES])
    where = tableoid_of(partitioned_dsn)
    got = [where[i] for i in sorted(where)]
    assert got == [
        "deletion_audit_p2026_03",
        "deletion_audit_p2026_02",
        "deletion_audit_p2026_01",
        "deletion_audit_p2025_12",
        "deletion_audit_p2026_02",
        *["deletion_audit_default"] * 6,  # the epoch and 9999: no partition; then the invalid
    ]
    # A month created after its rows arrived takes them out of the default partition, with
    # their id and tx (what the exporter identifies a row by).
    with psycopg.connect(partitioned_dsn, autocommit=True) as conn:
        before = conn.execute(
            "SELECT id, tx::text FROM deletion_audit WHERE occurred_at = '1970-01-01Z'"
        ).fetchall()
        conn.execute("SELECT deletion_audit_create_partition('1970-01-01Z')")
        after = conn.execute(
            "SELECT id, tx::text, tableoid::regclass::text FROM deletion_audit "
            "WHERE occurred_at = '1970-01-01Z'"
        ).fetchall()
    assert [(i, tx) for i, tx, _ in after] == before
    assert {part for _, _, part in after} == {"deletion_audit_p1970_01"}
    assert count(partitioned_dsn) == len(EDGE_TIMES) + len(INVALID_TIMES)


# -- what the exporter sees ------------------------------------------------------------------


def test_exporter_serves_identical_series_for_plain_and_partitioned(
    audit_dsn: str, partitioned_dsn: str, tmp_path: Path, exporters: list[ManagedProcess]
) -> None:
    part_dsn = partitioned_dsn
    months = [month_start(datetime(2026, 3, 5, tzinfo=UTC), back) for back in range(6)]
    with psycopg.connect(part_dsn, autocommit=True) as conn:
        for lo in months:
            conn.execute("SELECT deletion_audit_create_partition(%s)", (lo,))
    # The same rows, in the same order, into both: generated workload over six months (one COPY
    # per month), then the hand-written edges and invalid instants.
    for dsn in (audit_dsn, part_dsn):
        for seed, lo in enumerate(months):
            workload.insert_rows(
                dsn,
                300,
                seed=seed,
                invalid_rate=0.03,
                forbidden_rate=0.01,
                start=lo,
                end=month_start(lo, -1),
            )
        insert(dsn, edge_and_invalid_rows())
    total = count(audit_dsn)
    assert count(part_dsn) == total
    assert len({p for p in tableoid_of(part_dsn).values()}) == 7  # six months and the default

    plain, plain_port = start_exporter(audit_dsn, tmp_path, "plain")
    part, part_port = start_exporter(part_dsn, tmp_path, "partitioned")
    exporters += [plain, part]
    plain_text = wait_scrape(plain, plain_port, ingested(total))
    part_text = wait_scrape(part, part_port, ingested(total))
    plain_series, part_series = table_series(plain_text), table_series(part_text)
    assert len(plain_series) > 100
    assert part_series == plain_series
    # ... and both are the truth (an independent GROUP BY), invalid instants included.
    assert_exact(dict(scrape_values(part_text)), truth(part_dsn))
    assert dict(scrape_values(part_text))[
        ("deletion_audit_invalid_rows_total", (("reason", "bad_occurred_at"),))
    ] == len(INVALID_TIMES)

    # The tail too: the same new rows into both, across partitions and into the default.
    for dsn in (audit_dsn, part_dsn):
        insert(dsn, edge_and_invalid_rows())
    plain_text = wait_scrape(plain, plain_port, ingested(count(audit_dsn)))
    part_text = wait_scrape(part, part_port, ingested(count(part_dsn)))
    assert table_series(part_text) == table_series(plain_text)


def test_concurrent_writers_are_each_counted_once(
    partitioned_dsn: str, tmp_path: Path, exporters: list[ManagedProcess]
) -> None:
    """Four writers at once, while the exporter tails: single-row and multi-row transactions,
    rows of several months and invalid instants, some transactions rolled back."""
    now = datetime.now(UTC)
    with psycopg.connect(partitioned_dsn, autocommit=True) as conn:
        for back in range(1, 4):
            conn.execute("SELECT deletion_audit_create_partition(%s)", (month_start(now, back),))
    proc, port = start_exporter(partitioned_dsn, tmp_path, "exporter")
    exporters.append(proc)
    wait_scrape(proc, port, ingested(0))
    committed = [0] * 4
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            with psycopg.connect(partitioned_dsn) as conn:
                for i in range(120):
                    size = rng.choice((1, 1, 1, 3))
                    rows = []
                    for _ in range(size):
                        at: object = month_start(now, rng.randrange(0, 4)) + timedelta(
                            minutes=rng.randrange(0, 28 * 24 * 60)
                        )
                        if rng.random() < 0.05:
                            at = rng.choice(INVALID_TIMES)
                        rows.append((at, rng.choice(("CLIENT", "DRIVER", "VENDOR"))))
                    for at, user_type in rows:
                        conn.execute(
                            "INSERT INTO deletion_audit (occurred_at, outcome, duration_seconds,"
                            " target_user_type, rows_deleted) VALUES (%s, 'success', %s, %s, %s)",
                            (at, rng.random() * 3, user_type, Jsonb({"sessions": i % 4})),
                        )
                    if rng.random() < 0.1:
                        conn.rollback()
                    else:
                        conn.commit()
                        committed[n] += size
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert count(partitioned_dsn) == sum(committed)
    text = wait_scrape(proc, port, ingested(sum(committed)))
    assert_exact(dict(scrape_values(text)), truth(partitioned_dsn))
    # Stays there: nothing read twice on later polls.
    text = wait_scrape(proc, port, polls_after(text, 5))
    assert dict(scrape_values(text))[("deletion_audit_rows_ingested_total", ())] == sum(committed)


# -- retention -------------------------------------------------------------------------------


def plain_retention(dsn: str, retention: str, now: datetime) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CALL deletion_audit_maintenance(p_retention => %s::interval, p_now => %s)",
            (retention, now),
        )


def partman_retention(dsn: str, retention: str, now: datetime) -> None:
    # As the documented cron line runs it: autocommit, UTC, a lock_timeout.
    with psycopg.connect(dsn, autocommit=True, options="-c timezone=UTC -c lock_timeout=5s") as c:
        c.execute(
            "UPDATE partman.part_config SET retention = %s WHERE parent_table = "
            "'public.deletion_audit'",
            (retention,),
        )
        c.execute("CALL partman.run_maintenance_proc()")


@pytest.mark.parametrize("tool", ["plain_sql", "partman"])
def test_retention_drops_exactly_the_expired_months_while_the_exporter_runs(
    tool: str, pg_dsn: str, tmp_path: Path, exporters: list[ManagedProcess]
) -> None:
    now = datetime.now(UTC)
    months = create_partitioned_table(pg_dsn, months=6, rows_per_month=200, seed=7, now=now)
    insert(pg_dsn, [{"occurred_at": at} for at in INVALID_TIMES])  # held by the default
    if tool == "partman":
        # 'infinity' in the default partition is what broke pg_partman's maintenance before
        # deletion_audit_partman.sql set ignore_default_data.
        apply_sql_file(pg_dsn, PARTMAN_SQL)
    run_retention = plain_retention if tool == "plain_sql" else partman_retention
    before_parts = {p.name: p for p in partitions(pg_dsn)}
    total = count(pg_dsn)

    proc, port = start_exporter(pg_dsn, tmp_path, "exporter")
    exporters.append(proc)
    before = wait_scrape(proc, port, ingested(total))

    # Retention 2 months: the months whose END is at least 2 months ago go, i.e. 3 to 6 months
    # back; 1 and 2 months back, this month, the premade ones and the default stay.
    run_retention(pg_dsn, "2 months", now)
    expired = {p.name for p in months[:4]}
    after_parts = {p.name: p for p in partitions(pg_dsn)}
    assert set(before_parts) - set(after_parts) == expired
    assert all(after_parts[n] == before_parts[n] for n in after_parts if n in before_parts)
    default = after_parts["deletion_audit_default"]
    assert default.rows == len(INVALID_TIMES)
    assert count(pg_dsn) == total - sum(before_parts[name].rows for name in expired)
    # A second run the same day changes nothing (cron may run it twice).
    run_retention(pg_dsn, "2 months", now)
    assert {p.name: p for p in partitions(pg_dsn)} == after_parts
    # Months ahead are still made: this month and at least 3 more.
    ahead = [p.range_from for p in after_parts.values() if p.range_from and p.range_from >= now]
    assert len(ahead) >= 3

    # The running exporter: every table series exactly as before for several polls (nothing
    # lowered, nothing re-read), then new rows counted on top.
    after = wait_scrape(proc, port, polls_after(before, 5))
    assert table_series(after) == table_series(before)
    insert(pg_dsn, [{"occurred_at": now - timedelta(minutes=1), "target_user_type": "ADMIN"}] * 3)
    after = wait_scrape(proc, port, ingested(total + 3))
    old, new = table_series(before), table_series(after)
    lowered = {key: (old[key], new.get(key)) for key in old if not new.get(key, -1) >= old[key]}
    assert not lowered
    key = ("deletion_requests_total", (("user_type", "ADMIN"),))
    assert new[key] == old.get(key, 0) + 3


def test_retention_waits_for_a_lock_at_most_lock_timeout_and_retries_next_run(
    pg_dsn: str,
) -> None:
    """A long reader of deletion_audit (an exporter's start-up aggregate) holds ACCESS SHARE: the
    drop gives up after p_lock_timeout instead of queueing the application's inserts behind it,
    the call fails (cron reports it), and the next run drops the partition."""
    now = datetime.now(UTC)
    months = create_partitioned_table(pg_dsn, months=4, rows_per_month=20, now=now)
    with psycopg.connect(pg_dsn) as reader:
        reader.execute("SELECT count(*) FROM deletion_audit")  # transaction stays open
        # Without lock_timeout the CALL would wait for the reader for ever: statement_timeout
        # turns that into QueryCanceled, which fails the test instead of hanging it.
        with (
            psycopg.connect(pg_dsn, autocommit=True, options="-c statement_timeout=20s") as conn,
            pytest.raises(
                psycopg.errors.RaiseException, match=r"2 step\(s\) skipped on lock_timeout"
            ),
        ):
            conn.execute(
                "CALL deletion_audit_maintenance(p_retention => '2 months', "
                "p_lock_timeout => '300ms', p_now => %s)",
                (now,),
            )
        assert {p.name for p in partitions(pg_dsn)} >= {m.name for m in months}
    plain_retention(pg_dsn, "2 months", now)
    gone = {p.name for p in months} - {p.name for p in partitions(pg_dsn)}
    assert gone == {months[0].name, months[1].name}


def test_support_helper_drops_the_oldest_month(pg_dsn: str) -> None:
    """tests/support/partitions.py, which the checkpoint tests reuse, does what it says."""
    months = create_partitioned_table(pg_dsn, months=3, rows_per_month=50)
    assert [m.rows for m in months] == [50, 50, 50]
    dropped = drop_oldest_partition(pg_dsn)
    assert dropped == months[0]
    assert count(pg_dsn) == 100
    assert dropped.name not in {p.name for p in partitions(pg_dsn)}
    with (
        psycopg.connect(pg_dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="never dropped"),
    ):
        conn.execute("SELECT deletion_audit_drop_partition('deletion_audit_default')")
