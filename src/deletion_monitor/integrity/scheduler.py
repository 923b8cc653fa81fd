"""Run every check on its own interval in the background and keep the latest results.

Checks share a bounded connection pool (psycopg_pool, --pool-size, default 3): one permanent
connection per check made 200 checks hold 201 connections, more than a default PostgreSQL's
max_connections of 100, and locked the application out. `pool_size` worker threads take the
check that is due soonest from one queue, each with a pooled connection, so the exporter never
holds more than pool_size + 1 connections (the +1 is the health probe).

A check that is due waits in the queue for a free worker. That wait is not a failure unless it
exceeds the check's own timeout: then the run is recorded as failed (error kind "pool", the
errors counter and check_up say so) and the check is rescheduled one interval later instead of
piling up behind the others; deletion_integrity_check_queue_wait_seconds shows the wait. A slow
check still ends at its own timeout, so it delays the others by at most that.

A separate health thread probes the database with `SELECT 1` on its own connection so that
`deletion_integrity_up` reacts within seconds, even while every pooled connection is busy.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field, replace

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from deletion_monitor.common.redaction import error_line
from deletion_monitor.integrity.checks import Check
from deletion_monitor.integrity.runner import (
    APPLICATION_NAME,
    CONNECT_KWARGS,
    CheckResult,
    configure,
    connect,
    run_check,
)

log = logging.getLogger("deletion_monitor.integrity")

# Retry delays after a lost connection: quick at first so recovery is seen within seconds,
# capped so that a long outage does not hammer the server with connection attempts.
RETRY_MIN = 1.0
RETRY_MAX = 30.0
DEFAULT_POOL_SIZE = 3
MAX_POOL_SIZE = 50
# A pool that could not connect gives up after this long and retries on the next request, so
# that a database back from an outage is used within seconds, not after a long back-off.
POOL_RECONNECT_TIMEOUT = 5.0


@dataclass
class CheckStatus:
    """What the collector exports for one check. Values survive failed runs on purpose: the
    last known violation count stays visible while `check_up` and the last-success timestamp
    say how fresh it is."""

    check: Check
    violations: int | None = None
    duration: float | None = None
    last_success: float | None = None
    errors_total: int = 0
    up: bool | None = None
    last_error: str | None = None
    samples: list[str] = field(default_factory=list)
    rows_fetched: int | None = None
    truncated_total: int = 0
    queue_wait: float | None = None
    # False while the check's tables do not all exist (no violation value then); None until
    # the first completed run; a failed run leaves it as it was.
    applicable: bool | None = None
    missing_tables: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    checks: list[CheckStatus]
    db_up: bool | None
    completeness_audited_total: int
    completeness_failures_total: int
    started_at: float
    pool_size: int = 0


class IntegrityState:
    """Thread-safe latest results; a scrape reads a copy and never waits on the database."""

    def __init__(self, checks: list[Check], pool_size: int = 0) -> None:
        self.pool_size = pool_size
        self.last_connect_error: str | None = None
        self._lock = threading.Lock()
        self._status = {c.name: CheckStatus(check=c) for c in checks}
        self._db_up: bool | None = None
        self._audited = 0
        self._failures = 0
        self.started_at = time.time()

    def record(self, result: CheckResult) -> None:
        name = result.check.name
        with self._lock:
            st = self._status[name]
            previous_error = st.last_error
            was_applicable = st.applicable
            st.duration = result.duration
            st.queue_wait = result.queue_wait
            newly_truncated = result.truncated and not st.truncated_total
            if result.truncated:
                st.truncated_total += 1
            if result.ok:
                # A not-applicable run completed too: check_up 1 and a fresh last-success time
                # keep it out of the failing and stale alerts. Its violations are None: a count
                # from before its table went away would no longer describe anything.
                st.violations = result.violations
                st.last_success = result.finished_at
                st.up = True
                st.last_error = None
                st.samples = list(result.samples)
                st.rows_fetched = result.rows_fetched if result.applicable else None
                st.applicable = result.applicable
                st.missing_tables = list(result.missing_tables)
                self._audited += result.audited
                self._failures += result.failures
            else:
                st.errors_total += 1
                st.up = False
                st.last_error = result.error
            # The server answered (even with an SQL error): it is up. Only a connection-level
            # failure says anything about reachability.
            if result.ok or result.error_kind in ("sql", "timeout", "result"):
                self._db_up = True
            elif result.error_kind == "connection":
                self._db_up = False
        # Log state changes, not every run: a check broken for a day must not write a line
        # every interval, and its errors counter already counts every failed run.
        if newly_truncated:
            log.warning(
                "integrity check %s returned more than max_rows (%d) rows: only those were read",
                name,
                result.check.max_rows,
                extra={"check": name},
            )
        if result.ok and result.applicable != was_applicable:
            self._log_applicability(result, was_applicable)
        if not result.ok and result.error != previous_error:
            log.error(
                "integrity check %s failed (%s): %s",
                name,
                result.error_kind,
                result.error,
                extra={"check": name, "error_kind": result.error_kind},
            )
        elif result.ok and previous_error is not None:
            log.info("integrity check %s recovered", name, extra={"check": name})
        elif result.ok:
            log.debug(
                "integrity check %s: %s violation(s) in %.3fs",
                name,
                result.violations,
                result.duration,
                extra={"check": name},
            )

    @staticmethod
    def _log_applicability(result: CheckResult, was_applicable: bool | None) -> None:
        name = result.check.name
        missing = ", ".join(result.missing_tables)
        if result.applicable:
            if was_applicable is False:
                log.info("integrity check %s applies again", name, extra={"check": name})
        elif was_applicable:
            # It ran before: a renamed or dropped table silently ends its coverage otherwise.
            log.warning(
                "integrity check %s no longer applies (no table %s): its violations are no "
                "longer reported",
                name,
                missing,
                extra={"check": name, "missing_tables": missing},
            )
        else:
            log.info(
                "integrity check %s does not apply to this database (no table %s)",
                name,
                missing,
                extra={"check": name, "missing_tables": missing},
            )

    def set_db_up(self, up: bool) -> None:
        with self._lock:
            changed = self._db_up is not None and self._db_up != up
            self._db_up = up
        if changed:
            log.log(
                logging.INFO if up else logging.ERROR,
                "database %s",
                "reachable again" if up else "unreachable",
            )

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                checks=[replace(st, samples=list(st.samples)) for st in self._status.values()],
                db_up=self._db_up,
                completeness_audited_total=self._audited,
                completeness_failures_total=self._failures,
                started_at=self.started_at,
                pool_size=self.pool_size,
            )


class Scheduler:
    """Start with start(), stop with stop(); results land in `state`."""

    def __init__(
        self,
        dsn: str,
        checks: list[Check],
        state: IntegrityState | None = None,
        health_interval: float = 15.0,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if not 1 <= pool_size <= MAX_POOL_SIZE:
            raise ValueError(f"pool_size must be between 1 and {MAX_POOL_SIZE}, got {pool_size}")
        self.dsn = dsn
        self.checks = checks
        self.pool_size = pool_size
        self.state = state or IntegrityState(checks, pool_size)
        self.state.pool_size = pool_size
        self.health_interval = health_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        # (due, tie-breaker, check): the check due soonest first; equal times in file order.
        self._queue: list[tuple[float, int, Check]] = []
        self._seq = itertools.count()
        self._retry: dict[str, float] = {}
        self._pool: ConnectionPool | None = None

    def start(self) -> Scheduler:
        self._pool = ConnectionPool(
            self.dsn,
            min_size=0,  # connect on demand: a database that is down does not block start-up
            max_size=self.pool_size,
            kwargs={**CONNECT_KWARGS, "application_name": APPLICATION_NAME},
            configure=configure,
            # A connection idle since before a database restart is dead: test it on checkout
            # (one round trip) rather than fail the check that gets it.
            check=ConnectionPool.check_connection,
            reconnect_timeout=POOL_RECONNECT_TIMEOUT,
            name="deletion-integrity",
            open=False,
        )
        self._pool.open(wait=False)
        now = time.monotonic()
        with self._cond:
            for check in self.checks:
                heapq.heappush(self._queue, (now, next(self._seq), check))
        targets = [(self._health_loop, "integrity-health")]
        targets += [(self._worker, f"integrity-worker-{i}") for i in range(self.pool_size)]
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self._pool is not None:
            self._pool.close(timeout=max(0.0, deadline - time.monotonic()))

    def _next_due(self) -> tuple[float, Check] | None:
        """Block until a check is due (or stop); pop and return it."""
        with self._cond:
            while not self._stop.is_set():
                if self._queue and self._queue[0][0] <= time.monotonic():
                    due, _, check = heapq.heappop(self._queue)
                    return due, check
                wait = self._queue[0][0] - time.monotonic() if self._queue else None
                self._cond.wait(wait)
        return None

    def _worker(self) -> None:
        while (item := self._next_due()) is not None:
            due, check = item
            started = time.monotonic()
            waited = started - due
            if waited > check.timeout:
                result = CheckResult(
                    check=check,
                    ok=False,
                    duration=0.0,
                    finished_at=time.time(),
                    # No wait time in the text: the state-change log compares error texts, and
                    # the wait is in deletion_integrity_check_queue_wait_seconds.
                    error=(
                        f"waited longer than its timeout ({check.timeout:g}s) for a database "
                        f"connection: the pool ({self.pool_size}) is saturated; raise "
                        "--pool-size or lengthen the intervals"
                    ),
                    error_kind="pool",
                )
            else:
                result = self._run(check, remaining=check.timeout - waited)
            result.queue_wait = max(0.0, waited)
            if result.error_kind == "connection":
                retry = self._retry.get(check.name, RETRY_MIN)
                delay = min(check.interval, retry)
                self._retry[check.name] = min(RETRY_MAX, retry * 2)
            else:
                self._retry.pop(check.name, None)
                delay = check.interval
            self.state.record(result)
            with self._cond:
                heapq.heappush(self._queue, (started + delay, next(self._seq), check))
                self._cond.notify()

    def _run(self, check: Check, remaining: float) -> CheckResult:
        assert self._pool is not None
        started = time.monotonic()
        try:
            # Workers never outnumber the pool, so this waits only while a connection is being
            # (re)made; a database that is down ends it at the check's own timeout.
            conn = self._pool.getconn(timeout=max(0.5, remaining))
        except (PoolTimeout, PoolClosed, psycopg.Error) as exc:
            reason = self.state.last_connect_error or error_line(exc)
            return CheckResult(
                check=check,
                ok=False,
                duration=time.monotonic() - started,
                finished_at=time.time(),
                error=f"cannot connect: {reason}",
                error_kind="connection",
            )
        try:
            return run_check(conn, check)
        finally:
            # The pool discards a broken or closed connection and rolls back a stray transaction.
            with contextlib.suppress(Exception):
                self._pool.putconn(conn)

    def _health_loop(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.dsn, application_name="deletion-integrity-health")
                        conn.autocommit = True
                    conn.execute("SELECT 1")
                    self.state.last_connect_error = None
                    self.state.set_db_up(True)
                except psycopg.Error as exc:
                    if conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            conn.close()
                    conn = None
                    # The pool only says "no connection in N s"; this says why.
                    self.state.last_connect_error = error_line(exc)
                    self.state.set_db_up(False)
                if self._stop.wait(self.health_interval):
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
