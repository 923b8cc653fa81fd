"""Run one integrity check: a READ ONLY transaction with a server-side statement_timeout.

Shared by the exporter's scheduler, the one-shot check-integrity report and the benchmark, so
that all three measure and report exactly the same thing.

Two guarantees do not depend on the checks file having been validated:
- The check's SQL is sent over the extended query protocol (Cursor.stream), which refuses more
  than one statement: no `COMMIT; DELETE ...` can leave the READ ONLY transaction or the
  transaction-local statement_timeout, even if a check bypasses checks.py.
- The SQL is wrapped in `SELECT * FROM (...) LIMIT n` (sqltext.bounded): a check that returns
  millions of rows makes the server stop at n, and rows are streamed, never loaded at once.

Before the SQL, in the same transaction, the runner looks up the check's `tables` with
to_regclass() (the search_path resolves them as it resolves the SQL's names). If one does not
exist the run ends there: the check is not applicable to this database, a state of its own
that is neither a finding nor an error (an application without the reference tables is not a
database full of violations, nor a pile of broken checks).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import Params

from deletion_monitor.common.redaction import redact
from deletion_monitor.integrity.checks import Check
from deletion_monitor.integrity.sqltext import bounded

APPLICATION_NAME = "deletion-integrity-exporter"
# Seconds past a check's timeout before the client cancels the query itself: the server's
# statement_timeout normally fires first; this only matters when the server cannot be heard.
CLIENT_CANCEL_GRACE = 5.0
# Rows per network round trip while streaming (libpq 17+ chunked mode; row by row before).
STREAM_CHUNK = 500 if psycopg.pq.version() >= 170000 else 1
# Connection settings shared by the scheduler's pool, check-integrity and --check-only.
CONNECT_KWARGS: dict[str, object] = {
    "autocommit": False,
    "connect_timeout": 5,
    # Keepalives so that a vanished server is noticed by the OS, not after hours.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


# What a run found, as the report and the metrics name it.
STATES = ("ok", "violations", "not_applicable", "error")
# The catalog lookup behind "not applicable": the names of `tables` that resolve to nothing.
_MISSING_TABLES = (
    "SELECT name FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(name, quoted, i) "
    "WHERE to_regclass(quoted) IS NULL ORDER BY i"
)


def quote_table(name: str) -> str:
    """`name` or `schema.name` as an SQL identifier that keeps its letter case."""
    # The checks file allows only letters, digits, _ and $ in a name: no quote to double.
    return ".".join(f'"{part}"' for part in name.split("."))


@dataclass
class CheckResult:
    """Outcome of one run. `ok`: the run completed without error (also when it found the check
    not applicable). `violations` is None when the run failed or the check did not apply."""

    check: Check
    ok: bool
    duration: float
    finished_at: float  # Unix time
    violations: int | None = None
    error: str | None = None
    # timeout | connection | sql | result: lets callers tell a broken check from a lost DB
    error_kind: str | None = None
    audited: int = 0  # completeness kind: deletions audited in this run
    failures: int = 0  # completeness kind: audited deletions with leftovers
    samples: list[str] = field(default_factory=list)
    rows_fetched: int = 0  # rows read from the server for the check's sql (bounded)
    truncated: bool = False  # completeness kind: more than max_rows rows; only max_rows read
    queue_wait: float = 0.0  # seconds the run waited for a free pool connection (scheduler)
    # Tables of check.tables that do not exist: non-empty means not applicable (sql not run).
    missing_tables: list[str] = field(default_factory=list)

    @property
    def applicable(self) -> bool:
        return not self.missing_tables

    @property
    def state(self) -> str:
        """One of STATES: error (the run failed), not_applicable, violations or ok."""
        if not self.ok:
            return "error"
        if self.missing_tables:
            return "not_applicable"
        return "violations" if self.violations else "ok"


class ResultShapeError(ValueError):
    """The check's SQL returned something other than what its kind promises."""


def connect(dsn: str, application_name: str = APPLICATION_NAME) -> psycopg.Connection:
    """A connection whose every transaction is READ ONLY (BEGIN READ ONLY)."""
    # arg-type: CONNECT_KWARGS is dict[str, object] and connect() types each keyword (autocommit
    # bool, libpq parameters str | int | None); its values are a bool and ints.
    conn = psycopg.connect(dsn, application_name=application_name, **CONNECT_KWARGS)  # type: ignore[arg-type]
    configure(conn)
    return conn


def configure(conn: psycopg.Connection) -> None:
    """Every transaction on `conn` starts as BEGIN READ ONLY (also the pool's configure hook)."""
    conn.read_only = True


def _as_count(value: object, check: Check) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ResultShapeError(
            f"check {check.name}: sql must return one integer column, got {type(value).__name__}"
        )
    if value != int(value) or value < 0:
        raise ResultShapeError(f"check {check.name}: violation count must be a whole number >= 0")
    return int(value)


def _evaluate(rows: list[tuple[object, ...]], check: Check, result: CheckResult) -> None:
    if check.kind == "completeness":
        if len(rows) > check.max_rows:
            # The wrapper asked for max_rows + 1: the extra row only says "there was more".
            result.truncated = True
            rows = rows[: check.max_rows]
        for row in rows:
            if len(row) != 2 or not isinstance(row[1], list | type(None)):
                raise ResultShapeError(
                    f"check {check.name}: completeness sql must return "
                    "(target_user_id, leftover_tables text[]) rows"
                )
            leftovers = [str(t) for t in row[1] or []]
            result.audited += 1
            if leftovers:
                result.failures += 1
                result.samples.append(f"{row[0]}: {', '.join(leftovers)}")
        result.violations = result.failures
        return
    if len(rows) != 1 or len(rows[0]) != 1:
        got = "more than one row" if len(rows) > 1 else f"{len(rows)} row(s)"
        raise ResultShapeError(
            f"check {check.name}: sql must return exactly one row with one column, got {got}"
        )
    result.violations = _as_count(rows[0][0], check)


def _fetch(
    cur: psycopg.Cursor, sql: str, params: Params | None, limit: int
) -> list[tuple[object, ...]]:
    # stream() always uses the extended protocol (one statement only), and with the LIMIT
    # wrapper the server never produces more than `limit` rows.
    return list(cur.stream(bounded(sql, limit), params, size=STREAM_CHUNK))


def missing_tables(cur: psycopg.Cursor, check: Check) -> list[str]:
    """The names in check.tables that resolve to no relation on this connection."""
    if not check.tables:
        return []
    names = list(check.tables)
    rows = cur.execute(_MISSING_TABLES, (names, [quote_table(n) for n in names])).fetchall()
    return [str(row[0]) for row in rows]


def run_check(
    conn: psycopg.Connection, check: Check, with_samples: bool = False, sample_limit: int = 5
) -> CheckResult:
    """Run `check` once on `conn`; never raises for a database or SQL problem.

    A check one of whose tables does not exist is not run: the result is ok, with
    `missing_tables` set and no violation count.

    The transaction is always rolled back: checks only read, and a rollback also ends a
    transaction that an error aborted. If error_kind is "connection", the caller must discard
    the connection.
    """
    started = time.monotonic()
    result = CheckResult(check=check, ok=False, duration=0.0, finished_at=0.0)
    timer = threading.Timer(check.timeout + CLIENT_CANCEL_GRACE, _cancel, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        with conn.cursor() as cur:
            # SET LOCAL semantics (is_local=true): the limit dies with the transaction, and a
            # bind parameter is possible here where SET would need the value pasted in.
            cur.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (str(max(1, int(check.timeout * 1000))),),
            )
            result.missing_tables = missing_tables(cur, check)
            if not result.missing_tables:
                # count: 2 rows are enough to tell "exactly one" from "more than one".
                limit = 2 if check.kind == "count" else check.max_rows + 1
                rows = _fetch(cur, check.sql, check.query_params(), limit)
                result.rows_fetched = len(rows)
                _evaluate(rows, check, result)
            if with_samples and check.sample_sql and result.violations:
                result.samples = [
                    str(row[0]) if len(row) == 1 else " ".join(map(str, row))
                    for row in _fetch(cur, check.sample_sql, check.query_params(), sample_limit)
                ]
        result.ok = True
    except pg_errors.QueryCanceled:
        result.error_kind = "timeout"
        result.error = (
            f"timed out after {check.timeout:g}s (statement_timeout, cancelled on the server)"
        )
    except ResultShapeError as exc:
        result.error_kind = "result"
        result.error = str(exc)
    except psycopg.OperationalError as exc:
        # Connection lost, server shut down, admin terminated the backend.
        result.error_kind = "connection"
        result.error = _one_line(exc)
    except psycopg.Error as exc:
        result.error_kind = "sql"
        state = f" [{exc.sqlstate}]" if getattr(exc, "sqlstate", None) else ""
        result.error = f"{type(exc).__name__}{state}: {_one_line(exc)}"
        if isinstance(exc, pg_errors.UndefinedTable):
            # Its listed tables all exist, so the SQL reads one the list lacks.
            result.error += " (a table the check reads is missing from its `tables` list?)"
    finally:
        timer.cancel()
        if not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                result.error_kind = result.error_kind or "connection"
        if conn.broken or conn.closed:
            result.error_kind = "connection"
            result.ok = False
            result.error = result.error or "connection lost"
    result.duration = time.monotonic() - started
    result.finished_at = time.time()
    if not result.ok:
        result.violations = None
        result.audited = result.failures = 0
        result.missing_tables = []
    return result


def _cancel(conn: psycopg.Connection) -> None:
    # Runs in a timer thread: the server-side statement_timeout did not end the query in time.
    # Best effort: whatever happens, the worker's own error handling reports the run.
    with contextlib.suppress(Exception):
        conn.cancel_safe(timeout=3)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)
