"""Chunks of one snapshot aggregated on several backends at once.

A long range (the start-up aggregate, a burst or a backlog on the tail) is cut into chunks; one
backend aggregates about 50 000-70 000 rows a second here (the bare GROUP BY over the same rows
too), so a single connection cannot ingest faster than that, however the SQL is written. The
chunks are independent aggregates, so they can run on several connections, as `pg_dump -j`
does: the poller's transaction exports its snapshot (pg_export_snapshot()), each helper
connection opens a repeatable-read transaction on that same snapshot (SET TRANSACTION SNAPSHOT),
and every chunk reads exactly the rows it would have read on the poller's own connection.
Results come back in chunk order, so the merge (and the table-name cap that depends on the order
tables first appear) is the sequential one.

Any failure to set the helpers up (no connection slot left, a server that cannot export
snapshots) falls back to the poller's connection alone, logged once: slower, never different.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import sql

log = logging.getLogger("deletion_monitor.audit.exporter")

Job = TypeVar("Job")
Result = TypeVar("Result")
Connection = psycopg.Connection[Any]


class SnapshotHelpers:
    """Up to `size - 1` helper connections (the poller's own is the first worker)."""

    def __init__(self, open_connection: Callable[[], Connection], size: int) -> None:
        self.size = max(1, size)
        self._open = open_connection
        self._helpers: list[Connection] = []
        self._fallback_logged = False

    def run(
        self,
        conn: Connection,
        jobs: Sequence[Job],
        work: Callable[[Connection, Job], Result],
    ) -> Generator[Result, None, None]:
        """work(connection, job) for every job, results in job order.

        `conn` is in a repeatable-read transaction that has run its first statement (its
        snapshot is fixed). Closing the iterator early (the exporter stopping) runs no new job
        and waits for the running ones.
        """
        helpers = self._join(conn) if self.size > 1 and len(jobs) > 1 else []
        if not helpers:
            for job in jobs:
                yield work(conn, job)
            return
        free: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        for c in [conn, *helpers]:
            free.put(c)

        def task(job: Job) -> Result:
            c = free.get()
            try:
                return work(c, job)
            finally:
                free.put(c)

        pool = ThreadPoolExecutor(max_workers=len(helpers) + 1, thread_name_prefix="audit-chunk")
        futures: list[Future[Result]] = [pool.submit(task, job) for job in jobs]
        ok = False
        try:
            for future in futures:
                yield future.result()
            ok = True
        finally:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
            self._leave(helpers, broken=not ok)

    def _join(self, conn: Connection) -> list[Connection]:
        """Helpers in a transaction on `conn`'s snapshot; [] (sequential) when that fails."""
        try:
            snapshot = conn.execute("SELECT pg_export_snapshot() AS id").fetchone()
            assert snapshot is not None
            while len(self._helpers) < self.size - 1:
                self._helpers.append(self._open())
            for helper in self._helpers:
                helper.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                helper.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot["id"]))
                )
            return list(self._helpers)
        except Exception as exc:
            self.close()
            if not self._fallback_logged:
                self._fallback_logged = True
                log.warning(
                    "aggregating on one connection: helper connections on the poll's snapshot "
                    "could not be opened",
                    extra={"error_class": type(exc).__name__},
                )
            return []

    def _leave(self, helpers: list[Connection], broken: bool) -> None:
        if broken:
            self.close()
            return
        try:
            for helper in helpers:
                helper.execute("COMMIT")
        except Exception:
            self.close()

    def cancel(self) -> None:
        """Cancel the statements the helpers run (the exporter is stopping)."""
        for helper in list(self._helpers):
            with contextlib.suppress(Exception):
                helper.cancel_safe(timeout=2)

    def close(self) -> None:
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            with contextlib.suppress(Exception):
                helper.close()
