"""Rows that once stopped or corrupted the audit exporter, on a real PostgreSQL.

- tx values that span a power of ten (999 / 1000): the start-up aggregate stopped early because
  the cursor end was ordered by its text alias;
- values PostgreSQL stores but Python or float math cannot handle (infinite or BC timestamps,
  durations whose sum overflows, counts beyond float range): each one failed every poll, for good;
- a merge that failed halfway was merged again on retry (double counting).
Each test compares a scrape with the independent GROUP BY truth of
tests/integration/test_audit_exporter.py.
"""

# ruff: noqa: F811  (run_exporter is a fixture imported from test_audit_exporter)
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import psycopg
import pytest
from support.paths import SCHEMA_DIR
from test_audit_exporter import (  # noqa: F401
    assert_exact,
    ingested,
    insert,
    k,
    run_exporter,
    scrape,
    truth,
    wait_for,
)

from deletion_monitor.audit import state as audit_state
from deletion_monitor.audit.exporter import ExporterConfig, connect
from deletion_monitor.audit.poller import AuditExporter
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file

# First transaction id of pg_xact segment 100 (2**20 ids per segment): above 10**8, and the first
# id on its clog page, so the server creates that page itself after pg_resetwal -x.
HIGH_NEXT_XID = 100 * 2**20
_names = itertools.count()


@pytest.fixture(scope="module")
def high_xid_cluster() -> Iterator[PgCluster]:
    """A cluster whose next transaction id is above 10**8, so tx values up to 10**8 are past."""
    cluster = PgCluster()
    cluster.init()
    cluster._run("pg_resetwal", "-x", str(HIGH_NEXT_XID), "-D", str(cluster.data))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def insert_sql(dsn: str, rows: list[dict[str, str | None]]) -> None:
    """Insert rows given as SQL literals (cast by the column's type), one transaction each."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        types = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'deletion_audit'::regclass AND attnum > 0"
            ).fetchall()
        )
        for row in rows:
            row = {"outcome": "success", "duration_seconds": "1.0", **row}
            marks = ", ".join(f"%s::{types[c]}" for c in row)
            conn.execute(
                f"INSERT INTO deletion_audit ({', '.join(row)}) VALUES ({marks})",
                list(row.values()),
            )


def test_first_scrape_after_start_counts_every_row_across_powers_of_ten(
    high_xid_cluster: PgCluster, run_exporter
) -> None:
    dsn = high_xid_cluster.create_database(f"pow{next(_names)}")
    apply_sql_file(dsn, SCHEMA_DIR / "deletion_audit.sql")
    tx_values = (9, 10, 999, 1000, 99_999_999, 100_000_000)
    insert_sql(dsn, [{"tx": str(tx), "target_user_type": "CLIENT"} for tx in tx_values])
    workload.insert_rows(dsn, 50, seed=21)  # and rows with this cluster's own (higher) tx
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT min(tx::text::numeric) FROM deletion_audit").fetchone()[0] == 9
    # A poll interval longer than the test: the first scrape with counters is the start-up
    # aggregate alone, no tail poll can have completed it.
    _, port = run_exporter(dsn, poll_interval=60)
    first = wait_for(port, lambda v: k("deletion_requests_total", user_type="CLIENT") in v)
    assert first[k("deletion_audit_rows_ingested_total")] == 56
    assert_exact(first, truth(dsn))


@pytest.mark.parametrize("batch_size", [0, 2])
def test_one_tail_poll_reads_every_row_across_powers_of_ten(
    high_xid_cluster: PgCluster, batch_size: int
) -> None:
    """One poll reads every committed row: no batch end chosen by text order ends it early."""
    dsn = high_xid_cluster.create_database(f"pow{next(_names)}")
    apply_sql_file(dsn, SCHEMA_DIR / "deletion_audit.sql")
    exporter = AuditExporter(ExporterConfig(dsn=dsn, batch_size=batch_size))
    exporter._conn = connect(exporter.cfg)  # driven by hand: no poller thread, no timing
    try:
        exporter.initial_load()  # empty table: the cursor stays at (0, 0)
        tx_values = (99, 100, 999, 1000, 9999, 10000, 99_999_999, 100_000_000)
        insert_sql(dsn, [{"tx": str(tx), "target_user_type": "VENDOR"} for tx in tx_values])
        assert exporter.poll_once() == len(tx_values)
        assert exporter._cursor is not None and exporter._cursor[0] == 100_000_000
        assert exporter.store.snapshot().requests == {"VENDOR": len(tx_values)}
    finally:
        exporter._close()


# Each case: the hostile rows (SQL literals) and the invalid reason they must be counted under.
HOSTILE = {
    "infinity": ([{"occurred_at": "infinity"}], "bad_occurred_at"),
    "-infinity": ([{"occurred_at": "-infinity"}], "bad_occurred_at"),
    "year 10000": ([{"occurred_at": "10000-01-01 00:00:00+00"}], "bad_occurred_at"),
    "BC": ([{"occurred_at": "0044-03-15 12:00:00+00 BC"}], "bad_occurred_at"),
    "two durations of 1e308": (
        [{"duration_seconds": "1e308"}, {"duration_seconds": "1e308"}],
        "duration_too_large",
    ),
    "count 1e400": ([{"rows_deleted": '{"profiles": 1e400}'}], "rows_deleted_too_large"),
    "count of 16 digits": (
        [{"rows_deleted": '{"profiles": 1, "sessions": 1234567890123456}'}],
        "rows_deleted_too_large",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_row_is_counted_invalid_and_ingestion_goes_on(
    case: str, audit_dsn: str, run_exporter
) -> None:
    hostile, reason = HOSTILE[case]
    ok = {"target_user_type": "DRIVER", "rows_deleted": '{"profiles": 1}'}
    # Start-up path: valid rows around the hostile ones.
    insert_sql(audit_dsn, [ok, *hostile, ok])
    _, port = run_exporter(audit_dsn)
    values = wait_for(port, ingested(2 + len(hostile)), timeout=10)
    assert values[k("deletion_audit_invalid_rows_total", reason=reason)] == len(hostile)
    assert_exact(values, truth(audit_dsn))
    # Tail path: the same hostile rows again, then valid ones: still read, still exact.
    insert_sql(audit_dsn, [*hostile, ok, ok])
    values = wait_for(port, ingested(4 + 2 * len(hostile)), timeout=10)
    assert values[k("deletion_audit_invalid_rows_total", reason=reason)] == 2 * len(hostile)
    assert values[k("deletion_requests_total", user_type="DRIVER")] == 4
    assert values[k("deletion_audit_up")] == 1
    assert_exact(values, truth(audit_dsn))


def test_extreme_but_valid_timestamps_are_counted(audit_dsn: str, run_exporter) -> None:
    """The ends of the valid range and the epoch itself are ordinary rows."""
    edges = ["0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00", "1970-01-01 00:00:00+00"]
    insert_sql(audit_dsn, [{"occurred_at": at, "app_version": at[:4]} for at in edges])
    _, port = run_exporter(audit_dsn)
    values = wait_for(port, ingested(3), timeout=10)
    assert_exact(values, truth(audit_dsn))
    assert values[k("deletion_app_version_first_seen_timestamp_seconds", app_version="1970")] == 0
    assert values[k("deletion_audit_last_row_timestamp_seconds")] == pytest.approx(253402300800)


def test_rows_at_the_epoch_are_counted_once(audit_dsn: str, run_exporter) -> None:
    """occurred_at = 0.0 s: once dropped as 'falsy', which failed the merge halfway."""
    _, port = run_exporter(audit_dsn)
    wait_for(port, ingested(0))
    epoch = {"occurred_at": "1970-01-01 00:00:00+00", "target_user_type": "ADMIN"}
    insert_sql(audit_dsn, [epoch, epoch])
    values = wait_for(port, ingested(2), timeout=10)
    time.sleep(0.5)  # several more polls: a failed, retried merge would keep adding
    values = scrape(port)
    assert values[k("deletion_audit_rows_ingested_total")] == 2
    assert values[k("deletion_audit_up")] == 1
    assert values[k("deletion_audit_last_row_timestamp_seconds")] == 0
    assert values[k("deletion_requests_created", user_type="ADMIN")] == 0
    assert_exact(values, truth(audit_dsn))


class FailOnce:
    """Wraps audit_state._add: raises on its n-th call after arm(), once."""

    def __init__(self) -> None:
        self.real = audit_state._add
        self.calls = 0
        self.fail_at: int | None = None
        self.failed = 0

    def arm(self, n: int) -> None:
        self.calls, self.fail_at = 0, n

    def __call__(self, d: dict, key: object, n: int) -> None:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            self.fail_at = None
            self.failed += 1
            raise RuntimeError("injected failure in the middle of a merge")
        self.real(d, key, n)


def test_a_merge_failing_halfway_is_not_counted_twice(
    audit_dsn: str, run_exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail = FailOnce()
    monkeypatch.setattr(audit_state, "_add", fail)
    workload.insert_rows(audit_dsn, 300, seed=22, invalid_rate=0.05)
    fail.arm(5)  # several counters already merged when it raises
    _, port = run_exporter(audit_dsn, max_backoff=0.2)
    values = wait_for(port, ingested(300), timeout=10)
    assert fail.failed == 1 and values[k("deletion_audit_poll_errors_total")] >= 1
    assert_exact(values, truth(audit_dsn))

    workload.insert_rows(audit_dsn, 200, seed=23, invalid_rate=0.05)  # the tail path
    fail.arm(7)
    values = wait_for(port, ingested(500), timeout=10)
    time.sleep(0.5)
    values = scrape(port)
    assert fail.failed == 2
    assert values[k("deletion_audit_rows_ingested_total")] == 500
    assert_exact(values, truth(audit_dsn))


def test_table_names_that_look_like_bad_values_are_valid(audit_dsn: str, run_exporter) -> None:
    """The cheap regex also sees `": x` inside a key; such a row is checked value by value."""
    j = psycopg.types.json.Jsonb
    insert(
        audit_dsn,
        [
            {"rows_deleted": j({'odd": x': 1, "sessions": 2})},
            {"rows_deleted": j({'odd": -1': 3})},
            {"rows_deleted": j({'odd": 1234567890123456': 4})},
            {"rows_deleted": j({'odd": x': 1.5})},  # and a real bad value: invalid
        ],
    )
    _, port = run_exporter(audit_dsn)
    values = wait_for(port, ingested(4), timeout=10)
    assert values[k("deletion_audit_invalid_rows_total", reason="bad_rows_deleted")] == 1
    assert values[k("deletion_rows_deleted_total", table='odd": x')] == 1
    assert_exact(values, truth(audit_dsn))
