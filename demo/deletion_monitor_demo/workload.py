"""Synthetic but realistic deletion audit rows for the demo, the benchmarks and the tests.

API (small on purpose):
- generate(n, ...) -> iterator of AuditRow: the statistical mix below, deterministic per seed.
- copy_rows(dsn_or_conn, rows, table) -> int: bulk insert with COPY (~20k rows/s on a busy
  2-core box, bound by Python row generation; bench/bench_audit.py repeats a rendered block).
- insert_rows(dsn, n, ...) -> int: generate + copy_rows.
- stream_rows(dsn, rate, ...) -> int: one transaction per row at `rate` rows/s, occurred_at = now(),
  as the application writes them; stops after `duration` seconds or when `stop` is set.

The mix, from the reference application the strategy was written for (reference_app.sql):
- target user types weighted CLIENT 50, VENDOR 20, DRIVER 18, HELPDESK 5, ADMIN 6, SUPER_ADMIN 1;
  a SUPER_ADMIN target always fails with business_logic/403 (the business rule), and nobody
  deletes themself, so the default workload has no forbidden successes (`forbidden_rate` adds some).
- outcome: `error_rate` (default 3 %) failures, classed authorization 30 %, business_logic 25 %,
  timeout 15 %, not_found 15 %, constraint 10 %, database 5 %.
- duration: successes log-normal, median 1.2 s (90 % within ~0.4-3.5 s, a few > 10 s);
  timeouts 10-30 s; authorization / not_found fast (20-300 ms); constraint 0.5-5 s.
- rows_deleted: the cascade per table (profiles, accounts, sessions, user_addresses, user_audits,
  file_uploads, addresses; catering_requests / on_demand_requests for clients, dispatches for
  drivers), with occasional large cascades (>= 100 rows); empty on failure (rolled back).
- app_version: the versions in `app_versions` take equal consecutive slices of the time range.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

COLUMNS: tuple[str, ...] = (
    "occurred_at",
    "outcome",
    "error_type",
    "duration_seconds",
    "target_user_id",
    "target_user_type",
    "performed_by",
    "performed_by_type",
    "rows_deleted",
    "http_status",
    "app_version",
)
USER_TYPE_WEIGHTS: dict[str, int] = {
    "CLIENT": 50,
    "VENDOR": 20,
    "DRIVER": 18,
    "ADMIN": 6,
    "HELPDESK": 5,
    "SUPER_ADMIN": 1,
}
ERROR_WEIGHTS: dict[str, int] = {
    "authorization": 30,
    "business_logic": 25,
    "timeout": 15,
    "not_found": 15,
    "constraint": 10,
    "database": 5,
}
HTTP_STATUS: dict[str, int] = {
    "authorization": 403,
    "business_logic": 409,
    "timeout": 504,
    "not_found": 404,
    "constraint": 409,
    "database": 500,
    "unknown": 500,
}
# Who performs deletions: administrators and help desk staff.
PERFORMER_WEIGHTS: dict[str, int] = {"ADMIN": 60, "HELPDESK": 30, "SUPER_ADMIN": 10}


@dataclass
class AuditRow:
    """One deletion_audit row without the id and tx the database assigns."""

    occurred_at: datetime | None  # None: the database default now()
    outcome: str
    error_type: str | None
    duration_seconds: float | None
    target_user_id: str
    target_user_type: str
    performed_by: str
    performed_by_type: str
    rows_deleted: dict[str, Any] | None
    http_status: int
    app_version: str | None


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _cascade(rng: random.Random, user_type: str) -> dict[str, int]:
    rows = {
        "profiles": 1,
        "accounts": rng.choice((1, 1, 1, 2)),
        "sessions": rng.randint(0, 12),
        "user_addresses": rng.randint(0, 3),
        "user_audits": rng.randint(0, 10),
        "file_uploads": rng.randint(0, 4),
        "addresses": rng.randint(0, 2),
    }
    if user_type == "CLIENT":
        rows["catering_requests"] = int(rng.expovariate(1 / 8))
        rows["on_demand_requests"] = int(rng.expovariate(1 / 5))
    elif user_type == "DRIVER":
        rows["dispatches"] = int(rng.expovariate(1 / 30))
    if rng.random() < 0.02:  # long-lived accounts: the "complex deletions" of the spec
        rows["user_audits"] += rng.randint(100, 800)
    return rows


def _duration(rng: random.Random, error_type: str | None) -> float:
    if error_type is None:
        d = rng.lognormvariate(math.log(1.2), 0.65)
        if rng.random() < 0.005:
            d *= 8  # a few pathological cascades beyond 10 s
        return round(d, 4)
    if error_type == "timeout":
        return round(rng.uniform(10, 30), 4)
    if error_type in ("authorization", "not_found"):
        return round(rng.uniform(0.02, 0.3), 4)
    if error_type == "constraint":
        return round(rng.uniform(0.5, 5), 4)
    return round(rng.lognormvariate(math.log(0.4), 0.8), 4)


def generate(
    n: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    error_rate: float = 0.03,
    invalid_rate: float = 0.0,
    forbidden_rate: float = 0.0,
    app_versions: Sequence[str] = ("2.3.0", "2.3.1", "2.4.0"),
) -> Iterator[AuditRow]:
    """`n` rows spread evenly (with jitter) over [start, end) (default: the 7 days before now).

    invalid_rate: share of malformed rows (negative duration or unknown outcome) the exporter
    must count and skip. forbidden_rate: share of successful self/SUPER_ADMIN deletions.
    """
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=7)
    step = (end - start).total_seconds() / max(n, 1)
    types, type_w = list(USER_TYPE_WEIGHTS), list(USER_TYPE_WEIGHTS.values())
    errors, error_w = list(ERROR_WEIGHTS), list(ERROR_WEIGHTS.values())
    performers, perf_w = list(PERFORMER_WEIGHTS), list(PERFORMER_WEIGHTS.values())
    for i in range(n):
        at = start + timedelta(seconds=(i + rng.random()) * step)
        target_type = rng.choices(types, type_w)[0]
        performer, performer_type = _uuid(rng), rng.choices(performers, perf_w)[0]
        target = _uuid(rng)
        error: str | None = None
        if target_type == "SUPER_ADMIN":
            error = "business_logic"  # the endpoint refuses to delete a SUPER_ADMIN
        elif rng.random() < error_rate:
            error = rng.choices(errors, error_w)[0]
        if forbidden_rate and rng.random() < forbidden_rate:
            error = None
            if rng.random() < 0.5:
                target_type = "SUPER_ADMIN"
            else:
                performer = target
        duration = _duration(rng, error)
        outcome = "success" if error is None else "failure"
        if invalid_rate and rng.random() < invalid_rate:
            if rng.random() < 0.5:
                duration = -duration
            else:
                outcome = "partial"
        row = AuditRow(
            occurred_at=at,
            outcome=outcome,
            error_type=error,
            duration_seconds=duration,
            target_user_id=target,
            target_user_type=target_type,
            performed_by=performer,
            performed_by_type=performer_type,
            rows_deleted=_cascade(rng, target_type) if error is None else None,
            http_status=200 if error is None else HTTP_STATUS[error],
            app_version=app_versions[min(len(app_versions) - 1, i * len(app_versions) // n)]
            if app_versions
            else None,
        )
        yield row


def _values(row: AuditRow) -> tuple[Any, ...]:
    values = list(astuple(row))
    idx = COLUMNS.index("rows_deleted")
    if values[idx] is not None:
        values[idx] = json.dumps(values[idx], separators=(",", ":"))
    return tuple(values)


def copy_rows(
    target: str | psycopg.Connection[Any],
    rows: Iterable[AuditRow],
    table: str = "deletion_audit",
) -> int:
    """COPY `rows` into `table` in one transaction; returns the number of rows written."""
    own = isinstance(target, str)
    conn = psycopg.connect(target) if isinstance(target, str) else target
    count = 0
    try:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row(_values(row))
                count += 1
        conn.commit()
    finally:
        if own:
            conn.close()
    return count


def insert_rows(dsn: str, n: int, table: str = "deletion_audit", **kwargs: Any) -> int:
    """Generate `n` rows (kwargs as for generate()) and COPY them into `table`."""
    return copy_rows(dsn, generate(n, **kwargs), table)


def stream_rows(
    dsn: str,
    rate: float,
    *,
    duration: float | None = None,
    stop: threading.Event | None = None,
    table: str = "deletion_audit",
    seed: int = 0,
    **kwargs: Any,
) -> int:
    """Insert rows one transaction each at `rate` per second with occurred_at = now().

    Runs until `duration` seconds passed or `stop` is set; returns the number of rows written.
    """
    stop = stop or threading.Event()
    rows = generate(10**9, seed=seed, **kwargs)
    stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(*table.split(".")),
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS[1:])),
        sql.SQL(", ").join(sql.Placeholder() * (len(COLUMNS) - 1)),
    )
    written, started = 0, time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            due = int(elapsed * rate) + 1
            while written < due:
                conn.execute(stmt, _values(next(rows))[1:])
                written += 1
            stop.wait(max(0.0, (written / rate) - (time.monotonic() - started)))
    return written
