"""The partitioned audit table for tests: create it with rows over N past months, drop the oldest.

Shared by tests/integration/test_audit_partitioned.py and by the exporter's checkpoint tests
(drop a partition, restart, nothing goes down). Everything goes through the shipped SQL
(deletion_audit_partitioned.sql and its functions), never through hand-written DDL, so a test
using these helpers exercises the contract the operators apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import apply_sql_file
from support.paths import SCHEMA_DIR

PARTITIONED_SQL = SCHEMA_DIR / "deletion_audit_partitioned.sql"
PARTMAN_SQL = SCHEMA_DIR / "deletion_audit_partman.sql"


@dataclass(frozen=True)
class Partition:
    name: str
    range_from: datetime | None  # None: the default partition
    range_to: datetime | None
    rows: int


def month_start(at: datetime, months_back: int = 0) -> datetime:
    """Start (UTC) of the calendar month `months_back` months before the month of `at`."""
    index = at.astimezone(UTC).year * 12 + at.astimezone(UTC).month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def apply_partitioned(dsn: str) -> None:
    """Apply deletion_audit_partitioned.sql (the current month and 3 ahead exist afterwards)."""
    apply_sql_file(dsn, PARTITIONED_SQL)


def partitions(dsn: str) -> list[Partition]:
    """Every partition of deletion_audit, the default one first, then by range; rows in each."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT partition_name::text, range_from, range_to FROM deletion_audit_partitions()"
        ).fetchall()
        out = []
        for name, lo, hi in found:
            (rows,) = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone() or (0,)
            out.append(Partition(name, lo, hi, rows))
        return out


def create_partitioned_table(
    dsn: str,
    months: int,
    rows_per_month: int,
    *,
    now: datetime | None = None,
    seed: int = 0,
    invalid_rate: float = 0.02,
) -> list[Partition]:
    """deletion_audit, partitioned, with `rows_per_month` workload rows in each of the `months`
    calendar months before the current one (oldest first), plus the current month's partitions
    from the schema file. Returns the monthly partitions holding those rows, oldest first.

    The rows of each month are one COPY (one transaction), spread over the month away from its
    edges, so that every row lands in the partition of its month.
    """
    now = now or datetime.now(UTC)
    apply_partitioned(dsn)
    created = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for back in range(months, 0, -1):
            lo = month_start(now, back)
            conn.execute("SELECT deletion_audit_create_partition(%s)", (lo,))
            created.append(lo)
    for i, lo in enumerate(created):
        hi = month_start(lo, -1)
        workload.insert_rows(
            dsn,
            rows_per_month,
            seed=seed + i,
            invalid_rate=invalid_rate,
            start=lo + timedelta(hours=1),
            end=hi - timedelta(hours=1),
        )
    by_start = {p.range_from: p for p in partitions(dsn)}
    return [by_start[lo] for lo in created]


def drop_oldest_partition(dsn: str) -> Partition:
    """Detach and drop the oldest monthly partition (deletion_audit_drop_partition); returns it
    as it was just before (its row count included). The default partition is never chosen."""
    oldest = next(p for p in partitions(dsn) if p.range_from is not None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT deletion_audit_drop_partition(%s::regclass)", (oldest.name,))
    return oldest
