"""Run every check on its own interval in the background and keep the latest results.

One thread and one connection per check: a slow check (bounded by its own timeout) or a broken
one only ever occupies its own thread, so it can never delay another check's schedule. A
separate health thread probes the database with `SELECT 1` so that `deletion_integrity_up`
reacts within seconds, not after the next five-minute check.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field, replace

import psycopg

from deletion_monitor.integrity.checks import Check
from deletion_monitor.integrity.runner import CheckResult, connect, run_check
from deletion_monitor.redaction import redact

log = logging.getLogger("deletion_monitor.integrity")

# Retry delays after a lost connection: quick at first so recovery is seen within seconds,
# capped so that a long outage does not hammer the server with connection attempts.
RETRY_MIN = 1.0
RETRY_MAX = 30.0


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


@dataclass
class Snapshot:
    checks: list[CheckStatus]
    db_up: bool | None
    completeness_audited_total: int
    completeness_failures_total: int
    started_at: float


class IntegrityState:
    """Thread-safe latest results; a scrape reads a copy and never waits on the database."""

    def __init__(self, checks: list[Check]) -> None:
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
            st.duration = result.duration
            if result.ok:
                st.violations = result.violations
                st.last_success = result.finished_at
                st.up = True
                st.last_error = None
                st.samples = list(result.samples)
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
            )


class Scheduler:
    """Start with start(), stop with stop(); results land in `state`."""

    def __init__(
        self,
        dsn: str,
        checks: list[Check],
        state: IntegrityState | None = None,
        health_interval: float = 15.0,
    ) -> None:
        self.dsn = dsn
        self.checks = checks
        self.state = state or IntegrityState(checks)
        self.health_interval = health_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Scheduler:
        targets = [(self._health_loop, (), "integrity-health")]
        targets += [(self._check_loop, (c,), f"integrity-{c.name}") for c in self.checks]
        for target, args, name in targets:
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _check_loop(self, check: Check) -> None:
        conn: psycopg.Connection | None = None
        retry = RETRY_MIN
        next_run = time.monotonic()
        try:
            while not self._stop.wait(max(0.0, next_run - time.monotonic())):
                started = time.monotonic()
                result: CheckResult
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.dsn)
                except psycopg.Error as exc:
                    conn = None
                    msg = str(exc).strip().splitlines()
                    result = CheckResult(
                        check=check,
                        ok=False,
                        duration=time.monotonic() - started,
                        finished_at=time.time(),
                        error=redact(f"cannot connect: {msg[0] if msg else type(exc).__name__}"),
                        error_kind="connection",
                    )
                else:
                    result = run_check(conn, check)
                if result.error_kind == "connection":
                    if conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            conn.close()
                    conn = None
                    delay = min(check.interval, retry)
                    retry = min(RETRY_MAX, retry * 2)
                else:
                    retry = RETRY_MIN
                    delay = check.interval
                self.state.record(result)
                next_run = started + delay
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    def _health_loop(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.dsn, application_name="deletion-integrity-health")
                        conn.autocommit = True
                    conn.execute("SELECT 1")
                    self.state.set_db_up(True)
                except psycopg.Error:
                    if conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            conn.close()
                    conn = None
                    self.state.set_db_up(False)
                if self._stop.wait(self.health_interval):
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
