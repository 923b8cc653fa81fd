"""The audit exporter's poller: the thread that tails the audit table into exact metrics.

How it stays exact and lossless (docs/audit-log.md has the long version):
- Start-up: in ONE repeatable-read snapshot, take xmin = pg_snapshot_xmin(pg_current_snapshot()),
  aggregate every row with tx < xmin on the server (GROUP BY, no rows fetched) and set the cursor
  to the largest (tx, id) below xmin. Every transaction with an id below xmin has finished, so
  that set of rows can never grow; rows with tx >= xmin are left to the tail.
- Tail: every --poll-interval, aggregate the next batch of rows with
  (tx, id) > cursor AND tx < xmin-of-this-statement, in (tx, id) order, and move the cursor to the
  batch's last row. A transaction that took a lower id but commits late has a tx >= xmin while it
  is open, so the cursor waits for it (deletion_audit_cursor_lag_seconds) instead of passing it.
- Start-up and tail classify rows with the same SQL, so a restart rebuilds identical counters.
- A scrape renders the in-memory state (audit_state.AuditCollector) and never queries the DB.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector
from psycopg import sql as pgsql

from deletion_monitor.audit import checkpoint as ckpt
from deletion_monitor.audit.exporter import ExporterConfig, connect, safe_error, table_identifier
from deletion_monitor.audit.parallel import SnapshotHelpers
from deletion_monitor.audit.sql import query_params, statements
from deletion_monitor.audit.state import (
    AuditCollector,
    AuditState,
    AuditStateStore,
    Delta,
    delta_rows,
)
from deletion_monitor.common.httpserver import start_metrics_server
from deletion_monitor.common.redaction import password_on_command_line

# One logger for the whole audit exporter (poller and command), named as before the split.
log = logging.getLogger("deletion_monitor.audit.exporter")

Cursor = tuple[int, int]  # (tx, id)
# Seconds between "initial load progress" log lines during a long start-up.
LOAD_PROGRESS_LOG_SECONDS = 10.0
# Lag marks kept (one per poll that saw a newer held-back row): a day of 5 s polls.
_MAX_LAG_MARKS = 20_000
# The longest wait between two polls (also the top of --poll-interval): an infinite or huge
# --poll-interval once made the poller wait forever (or crash in Event.wait) while
# deletion_audit_up stayed 1.
MAX_POLL_INTERVAL = 3600.0


class AuditExporter:
    """The poller thread plus the state it feeds; serve() adds the HTTP endpoint.

    With a checkpoint store, start-up resumes from a validated checkpoint (constant time,
    whatever the table's size) and the state is checkpointed every `checkpoint_interval`
    seconds and on stop(); without one, or when the checkpoint is refused, start-up aggregates
    the whole table (initial_load).
    """

    def __init__(
        self,
        cfg: ExporterConfig,
        checkpoints: ckpt.CheckpointStore | None = None,
        checkpoint_interval: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.checkpoints = checkpoints
        self.checkpoint_interval = checkpoint_interval
        self.ident = table_identifier(cfg.table)
        self.store = AuditStateStore(
            AuditState(
                duration_bounds=tuple(cfg.duration_buckets),
                max_tables=cfg.max_tables,
                max_app_versions=cfg.max_app_versions,
            )
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AuditCollector(self.store))
        self.registry.register(ProcessCollector(registry=None))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._conn: psycopg.Connection[Any] | None = None
        # Extra connections on the poll's snapshot for ranges of several chunks (parallel.py).
        self._helpers = SnapshotHelpers(self._open_helper, cfg.aggregate_connections)
        self._cursor: Cursor | None = None  # None until the start-up aggregate has run
        # Lag marks: (newest held-back (tx, id) seen, when first seen), in time order and so in
        # increasing (tx, id). The first mark above the cursor tells when the oldest row still
        # held back was first seen (see _held_fields).
        self._held_marks: list[tuple[Cursor, float]] = []
        self._foreign_logged: int = 0
        self._unaccounted_logged: int = 0
        self._next_reconcile = 0.0
        self._params = query_params(cfg.duration_buckets, cfg.large_cascade_rows)
        self._sql = statements(self.ident)
        self._fingerprint = ckpt.classification_fingerprint(
            {
                **self._params,
                "max_tables": cfg.max_tables,
                "max_app_versions": cfg.max_app_versions,
            },
            {name: stmt.as_string(None) for name, stmt in self._sql.items()},
        )
        self._sql["cursor_row"] = pgsql.SQL(ckpt.CURSOR_ROW_SQL).format(table=self.ident)
        self._identity: ckpt.Identity | None = None  # read at start-up, written with each one
        self._next_checkpoint = 0.0
        self._checkpoint_lock = threading.Lock()  # the poller's periodic write vs stop()'s
        self._checkpoint_error_logged = False

    # -- lifecycle ------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint and the poller; returns the bound port."""
        # Deep listen queue, HEAD, /-/healthy: see deletion_monitor.common.httpserver.
        self._server = start_metrics_server(host, port, self.registry, "deletion audit exporter")
        # Logged here, on the serving path only, so that a failed start keeps its one-line error.
        argv_warning = password_on_command_line(self.cfg.dsn)
        if argv_warning:
            log.warning(argv_warning)
        self.start_polling()
        return int(self._server.server_port)

    def start_polling(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and not conn.closed:
            # A start-up aggregate over millions of rows must not delay shutdown: cancel it.
            with contextlib.suppress(Exception):
                conn.cancel_safe(timeout=2)
        self._helpers.cancel()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._thread is None or not self._thread.is_alive():
            # The poller has finished: the state is final. One last checkpoint, so a planned
            # restart (deploy, reschedule) resumes exactly where this process stopped.
            self.write_checkpoint(reason="shutdown")
        if self.checkpoints is not None:
            self.checkpoints.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._close()

    def _open_helper(self) -> psycopg.Connection[Any]:
        conn = connect(self.cfg)
        plan_hashed_grouping_sets(conn)
        return conn

    def _close(self) -> None:
        self._helpers.close()
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    # -- poller ---------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        was_down = False
        while not self._stop.is_set():
            try:
                failures, was_down, delay = self._cycle(failures, was_down)
            except Exception as exc:
                # Last resort: a bug in the error path itself (logging, bookkeeping) must not end
                # the thread either; a dead poller behind a live HTTP server looks healthy.
                failures += 1
                delay = self.cfg.max_backoff
                with contextlib.suppress(Exception):
                    log.error("poller error; retrying", extra={"error_class": type(exc).__name__})
            # Clamp: Event.wait() raises on a NaN, infinite or huge timeout.
            finite = math.isfinite(delay)
            self._stop.wait(min(max(delay, 0.0), MAX_POLL_INTERVAL) if finite else 1.0)
        self._close()

    def _cycle(self, failures: int, was_down: bool) -> tuple[int, bool, float]:
        """One poll (or start-up load) with its error handling: (failures, was_down, delay)."""
        started = time.monotonic()
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.cfg)
                plan_hashed_grouping_sets(self._conn)
            if self._cursor is None:
                self.start_up()
            else:
                self.poll_once()
            self.store.poll_finished(time.monotonic() - started, ok=True)
            if self._cursor is not None and time.monotonic() >= self._next_checkpoint:
                self.write_checkpoint(reason="periodic")
            if was_down:
                log.info("database reachable again; caught up", extra={"table": self.cfg.table})
            return 0, False, self.cfg.poll_interval
        except Exception as exc:
            # Database errors and anything unexpected alike: count it, report up=0, keep
            # serving the last values and retry.
            self.store.poll_finished(time.monotonic() - started, ok=False)
            self._close()
            failures += 1
            delay = backoff_delay(failures, self.cfg.poll_interval, self.cfg.max_backoff)
            if not self._stop.is_set():
                log.warning(
                    "database poll failed; serving last values",
                    extra={
                        "error": safe_error(exc, self.cfg.dsn),
                        "error_class": type(exc).__name__,
                        "consecutive_failures": failures,
                        "retry_in_seconds": round(delay, 3),
                    },
                    exc_info=not isinstance(exc, psycopg.Error),
                )
            return failures, True, delay

    def _aggregate(
        self, conn: psycopg.Connection[Any], lo: Cursor, hi: Cursor, store: AuditStateStore
    ) -> Delta:
        return self._delta(conn, lo, hi, self._aggregate_rows(conn, (lo, hi)), store)

    def _range_params(self, lo: Cursor, hi: Cursor) -> dict[str, Any]:
        return {
            **self._params,
            "lo_tx": str(lo[0]),
            "lo_id": lo[1],
            "hi_tx": str(hi[0]),
            "hi_id": hi[1],
        }

    def _aggregate_rows(
        self, conn: psycopg.Connection[Any], bounds: tuple[Cursor, Cursor]
    ) -> tuple[list[Any], list[tuple[str, int]]]:
        """The aggregate statement over (lo, hi]: (label groups, per-table sums). Runs on the
        poller's connection or on a helper on the same snapshot (parallel.py)."""
        # One statement for every family (see AGGREGATE_SQL): the 'table' rows are the
        # per-table sums, the others the label groups.
        groups, tables = [], []
        for r in conn.execute(self._sql["agg"], self._range_params(*bounds)).fetchall():
            if r["kind"] == "table":
                tables.append((r["table_name"], int(r["tsum"])))
            else:
                groups.append(r)
        return groups, tables

    def _delta(
        self,
        conn: psycopg.Connection[Any],
        lo: Cursor,
        hi: Cursor,
        rows: tuple[list[Any], list[tuple[str, int]]],
        store: AuditStateStore,
    ) -> Delta:
        """A chunk's rows as a Delta for `store`, merged in chunk order: when the table-name
        cap is reached, new tables keep their names in order of first appearance."""
        groups, tables = rows
        known = store.table_names()
        new = [t for t, _ in tables if t not in known]
        if len(known) + len(new) > self.cfg.max_tables:
            params = self._range_params(lo, hi)
            order = [r["table_name"] for r in conn.execute(self._sql["first"], params)]
            rank = {name: i for i, name in enumerate(order)}
            tables.sort(key=lambda t: (t[0] not in known, rank.get(t[0], 0)))
        return Delta(groups=groups, tables=tables)

    def _chunk_bounds(
        self, conn: psycopg.Connection[Any], lo: Cursor, hi: Cursor
    ) -> list[tuple[Cursor, Cursor]]:
        """(lo, hi] cut into ranges of --initial-chunk-rows rows, in (tx, id) order."""
        skip = max(self.cfg.initial_chunk_rows, 1) - 1
        bounds: list[tuple[Cursor, Cursor]] = []
        while lo < hi:
            row = conn.execute(
                self._sql["chunk_end"],
                {
                    "lo_tx": str(lo[0]),
                    "lo_id": lo[1],
                    "hi_tx": str(hi[0]),
                    "hi_id": hi[1],
                    "skip": skip,
                },
            ).fetchone()
            upto: Cursor = (int(row["tx"]), int(row["id"])) if row else hi
            bounds.append((lo, upto))
            lo = upto
        return bounds

    def _new_state(self) -> AuditState:
        return AuditState(
            duration_bounds=tuple(self.cfg.duration_buckets),
            max_tables=self.cfg.max_tables,
            max_app_versions=self.cfg.max_app_versions,
        )

    # -- start-up: a checkpoint or the full aggregation ---------------------------------------
    def start_up(self) -> None:
        """Resume from a validated checkpoint, else aggregate the whole table."""
        if self.checkpoints is None:
            self.store.update(
                startup_source="full_aggregation", startup_reason=ckpt.REASON_NOT_CONFIGURED
            )
            log.info(
                "no checkpoint store (--state-file or --checkpoint-table): aggregating the "
                "whole audit table at start-up",
                extra={"table": self.cfg.table},
            )
            self.initial_load()
            return
        if not self.resume_from_checkpoint():
            self.initial_load()

    def resume_from_checkpoint(self) -> bool:
        """Load and validate the checkpoint in one snapshot; catch up; then serve. False (and one
        log line saying why) when there is none or it is refused."""
        assert self._conn is not None and self.checkpoints is not None
        started = time.monotonic()
        conn = self._conn
        refusal: ckpt.Refusal | None = None
        restored: AuditState | None = None
        with conn.transaction():
            self._identity, next_tx = ckpt.read_identity(conn, self.ident, self._fingerprint)
            try:
                document = self.checkpoints.load(conn)
            except ckpt.CheckpointError as exc:
                document, refusal = None, ckpt.Refusal(ckpt.REASON_UNREADABLE, str(exc))
            if document is None and refusal is None:
                refusal = ckpt.Refusal(ckpt.REASON_NONE_YET, "no checkpoint written yet")
            if document is not None:
                try:
                    cursor_id = int(document["state"]["cursor"][1])
                    row = conn.execute(self._sql["cursor_row"], {"id": cursor_id}).fetchone()
                    refusal = ckpt.validate(
                        document,
                        self._identity,
                        next_tx,
                        None if row is None else int(row["tx"]),
                    )
                    if refusal is None:
                        restored = ckpt.state_from_dict(document["state"], self._new_state())
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    refusal = ckpt.Refusal(
                        ckpt.REASON_UNREADABLE, f"malformed checkpoint ({type(exc).__name__})"
                    )
        if refusal is not None or restored is None:
            assert refusal is not None
            level = logging.INFO if refusal.reason == ckpt.REASON_NONE_YET else logging.WARNING
            log.log(
                level,
                f"checkpoint not used: {refusal.detail}; aggregating the whole audit table",
                extra={
                    "table": self.cfg.table,
                    "reason": refusal.reason,
                    "checkpoint": self.checkpoints.description,
                },
            )
            self.store.update(startup_source="full_aggregation", startup_reason=refusal.reason)
            return False
        # Adopted but not served: the checkpoint may be older than what the previous process
        # served; served once the tail has read every committed row after its cursor.
        self.store.publish_rows(
            restored,
            loaded=False,
            startup_source="checkpoint",
            startup_reason=ckpt.REASON_RESTORED,
        )
        assert restored.cursor is not None
        self._cursor = restored.cursor
        # The first reconciliation counts every row behind the cursor (a full scan): one
        # --reconcile-interval from now, not inside the constant-time start-up.
        self._next_reconcile = time.monotonic() + self.cfg.reconcile_interval
        caught_up = self.poll_once()
        elapsed = time.monotonic() - started
        snap = self.store.snapshot()
        self.store.update(
            loaded=True,
            initial_load_seconds=elapsed,
            load_rows_done=snap.ingested,
            load_rows_estimated=snap.ingested,
        )
        log.info(
            "resumed from checkpoint",
            extra={
                "table": self.cfg.table,
                "checkpoint": self.checkpoints.description,
                "rows": snap.ingested,
                "rows_since_checkpoint": caught_up,
                "seconds": round(elapsed, 3),
            },
        )
        return True

    def write_checkpoint(self, reason: str = "periodic") -> bool:
        """Persist one consistent snapshot (cursor + aggregates); errors are counted, logged
        once per run of failures, and never stop the exporter."""
        if self.checkpoints is None or self._identity is None:
            return False
        with self._checkpoint_lock:
            self._next_checkpoint = time.monotonic() + self.checkpoint_interval
            snap = self.store.snapshot()
            if not snap.loaded or snap.cursor is None:
                return False
            document = ckpt.build_checkpoint(snap, self._identity)
            try:
                size = self.checkpoints.save(document)
            except Exception as exc:
                self.store.update(checkpoint_write_errors=snap.checkpoint_write_errors + 1)
                if not self._checkpoint_error_logged:
                    self._checkpoint_error_logged = True
                    log.warning(
                        "checkpoint write failed; retrying at the next interval",
                        extra={
                            "checkpoint": self.checkpoints.description,
                            "error": safe_error(exc, self.cfg.dsn),
                            "error_class": type(exc).__name__,
                        },
                    )
                return False
            if self._checkpoint_error_logged or reason == "shutdown":
                log.info(
                    "checkpoint written",
                    extra={"checkpoint": self.checkpoints.description, "reason": reason},
                )
            self._checkpoint_error_logged = False
            now = self.store.snapshot()
            self.store.update(
                checkpoint_writes=now.checkpoint_writes + 1,
                checkpoint_last_write_ts=time.time(),
                checkpoint_bytes=size,
            )
            return True

    def initial_load(self) -> None:
        """Aggregate everything below xmin in one repeatable-read snapshot; set the cursor.

        The rows are aggregated in chunks of (tx, id) ranges inside that one snapshot, merged
        into a private state and published only at the end: no deletion series is served
        before the totals are complete, while up (the database answers) and the progress
        gauges move after every chunk.
        """
        assert self._conn is not None
        started = time.monotonic()
        conn = self._conn
        private = AuditStateStore(self._new_state())
        done = 0
        with conn.transaction():
            # The first statement fixes the snapshot; every chunk below runs in the same one.
            end = conn.execute(self._sql["start_end"]).fetchone()
            hi: Cursor = (int(end["tx"]), int(end["id"])) if end else (0, 0)
            row = conn.execute(
                self._sql["estimate"], {"table": self.ident.as_string(conn)}
            ).fetchone()
            estimate = int(row["estimate"]) if end and row else 0
            self.store.update(up=1, load_rows_done=0, load_rows_estimated=estimate)
            log.info(
                "initial load started",
                extra={"table": self.cfg.table, "rows_estimated": estimate},
            )
            last_log = time.monotonic()
            bounds = self._chunk_bounds(conn, (0, 0), hi)
            results = self._helpers.run(conn, bounds, self._aggregate_rows)
            with contextlib.closing(results):
                for (lo, upto), rows in zip(bounds, results, strict=True):
                    if self._stop.is_set():
                        return  # shutting down: nothing half-loaded is ever published
                    delta = self._delta(conn, lo, upto, rows, private)
                    private.apply(delta)
                    done += delta_rows(delta)
                    estimate = max(estimate, done)  # reltuples may be stale: never below done
                    self.store.update(up=1, load_rows_done=done, load_rows_estimated=estimate)
                    if time.monotonic() - last_log >= LOAD_PROGRESS_LOG_SECONDS:
                        last_log = time.monotonic()
                        log.info(
                            "initial load progress",
                            extra={
                                "table": self.cfg.table,
                                "rows_done": done,
                                "rows_estimated": estimate,
                                "seconds": round(last_log - started, 1),
                            },
                        )
                    self._load_chunk_done(done)
            # Held-back and foreign rows as of the same snapshot, so that the first scrape with
            # counters has every gauge too (no series appears a poll later than the rest).
            held_fields = self._held_fields(conn, hi)
        elapsed = time.monotonic() - started
        self.store.publish_rows(
            private.snapshot(),
            cursor=hi,
            initial_load_seconds=elapsed,
            load_rows_done=done,
            load_rows_estimated=done,
            # By construction the load read every row at or below its cursor: nothing is
            # unaccounted for yet; the first count follows one --reconcile-interval later.
            rows_unaccounted=0 if self.cfg.reconcile_interval > 0 else None,
            **held_fields,
        )
        self._cursor = hi
        self._next_reconcile = time.monotonic() + self.cfg.reconcile_interval
        # Checkpoint right away: the next restart need not repeat this aggregation.
        self._next_checkpoint = 0.0
        snap = self.store.snapshot()
        log.info(
            "initial load done",
            extra={
                "table": self.cfg.table,
                "rows": snap.ingested,
                "invalid_rows": sum(snap.invalid.values()),
                "seconds": round(elapsed, 3),
            },
        )

    def _load_chunk_done(self, rows_done: int) -> None:
        """Called after each start-up chunk (tests slow the load down here)."""

    def poll_once(self) -> int:
        """Ingest every committed row the cursor may pass; returns the number of rows read."""
        assert self._conn is not None and self._cursor is not None
        conn = self._conn
        total = 0
        applied = False  # a batch stored the held-back fields of the cursor it moved to
        while not self._stop.is_set():
            with conn.transaction():
                end = conn.execute(
                    self._sql["batch_end" if self.cfg.batch_size else "tail_end"],
                    {
                        "lo_tx": str(self._cursor[0]),
                        "lo_id": self._cursor[1],
                        "limit": self.cfg.batch_size,
                    },
                ).fetchone()
                if end is None:
                    break
                hi: Cursor = (int(end["tx"]), int(end["id"]))
                batch, invalid, merged = self._tail_range(conn, self._cursor, hi)
            # The rows and the lag of the cursor they move to, in one step: a scrape in between
            # would show a row counted and still held back.
            held = self._held_fields(conn, hi)
            if isinstance(merged, Delta):
                self.store.apply(merged, cursor=hi, **held)
            else:
                loaded = self.store.snapshot().loaded  # still False while resuming
                self.store.publish_rows(merged, loaded=loaded, cursor=hi, **held)
            self._cursor, applied = hi, True
            if invalid:
                log.warning("skipped malformed audit rows", extra={"by_reason": invalid})
            total += batch
            if not self.cfg.batch_size or batch < self.cfg.batch_size:
                break
        self._after_poll(conn, held_stored=applied)
        return total

    def _tail_range(
        self, conn: psycopg.Connection[Any], lo: Cursor, hi: Cursor
    ) -> tuple[int, dict[str, int], Delta | AuditState]:
        """Aggregate the rows (lo, hi] of one poll's snapshot: (rows, malformed rows by reason,
        what to store: one Delta, or the merged state when the range took several chunks).

        A range longer than --initial-chunk-rows (a burst, a backlog after an outage, the
        catch-up after a restart) is cut into chunks as at start-up, in the same snapshot: each
        statement's temp space (the materialized rows of AGGREGATE_SQL) and the planner's row
        estimates stay those of one chunk, whatever the backlog. The chunks are merged into a
        private copy of the state and stored in one step, as one aggregate would be.
        """
        invalid: dict[str, int] = {}

        def count(delta: Delta) -> int:
            for g in delta.groups:
                if g["kind"] == "rows" and g["invalid"]:
                    invalid[g["invalid"]] = invalid.get(g["invalid"], 0) + int(g["n"])
            return delta_rows(delta)

        bounds = self._chunk_bounds(conn, lo, hi)
        if len(bounds) <= 1:  # the common case: one chunk, one Delta
            delta = self._aggregate(conn, lo, hi, self.store)
            return count(delta), invalid, delta
        private = AuditStateStore(self.store.snapshot())
        rows = 0
        results = self._helpers.run(conn, bounds, self._aggregate_rows)
        with contextlib.closing(results):
            for (start, upto), chunk in zip(bounds, results, strict=True):
                delta = self._delta(conn, start, upto, chunk, private)
                private.apply(delta)
                rows += count(delta)
        return rows, invalid, private.snapshot()

    def _after_poll(self, conn: psycopg.Connection[Any], *, held_stored: bool) -> None:
        """The held-back fields of the cursor (unless the last batch just stored them: one
        query per poll, not two), then reconciliation when it is due."""
        assert self._cursor is not None
        if not held_stored:
            self.store.update(**self._held_fields(conn, self._cursor))
        if self.cfg.reconcile_interval > 0 and time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + self.cfg.reconcile_interval
            self._reconcile(conn)

    def _held_fields(self, conn: psycopg.Connection[Any], cursor: Cursor) -> dict[str, Any]:
        """cursor_lag and foreign_tx_rows for the state (after a poll, or in the load snapshot).

        Cursor lag = now - when the oldest row still held back was first seen by a poll.

        Not "since xmin last moved": with overlapping long transactions xmin moves while the
        same rows stay held, and the lag must keep growing. Marks record, per poll that saw a
        newer held row, that row's (tx, id) and the time; rows up to a mark were all seen by
        then, so the first mark above the cursor dates the oldest row still held.
        """
        row = conn.execute(self._sql["held"]).fetchone()
        now = time.time()
        marks = [m for m in self._held_marks if m[0] > cursor]
        if row is not None and row["held_tx"] is not None:
            held: Cursor = (int(row["held_tx"]), int(row["held_id"]))
            if not marks or held > marks[-1][0]:
                if len(marks) >= _MAX_LAG_MARKS:
                    # Bounded memory: fold into the newest mark, which makes newer rows look
                    # older (over-reports the lag; never under-reports it).
                    marks[-1] = (held, marks[-1][1])
                else:
                    marks.append((held, now))
            lag = now - marks[0][1]
        else:
            marks, lag = [], 0.0
        self._held_marks = marks
        foreign = int(row["foreign_rows"]) if row is not None else 0
        if foreign != self._foreign_logged:
            self._foreign_logged = foreign
            if foreign:
                # The count only, never row contents (ids, users).
                log.warning(
                    "audit rows with a transaction id ahead of this cluster's are never "
                    "ingested (written by another cluster?); see docs/audit-log.md",
                    extra={"table": self.cfg.table, "foreign_tx_rows": foreign},
                )
        return {"cursor_lag": lag, "foreign_tx_rows": foreign}

    def _reconcile(self, conn: psycopg.Connection[Any]) -> None:
        """Count the rows at or below the cursor and compare with the rows ingested."""
        assert self._cursor is not None
        row = conn.execute(
            self._sql["behind"], {"tx": str(self._cursor[0]), "id": self._cursor[1]}
        ).fetchone()
        ingested = self.store.snapshot().ingested
        unaccounted = int(row["n"]) - ingested if row is not None else 0
        if unaccounted != self._unaccounted_logged:
            self._unaccounted_logged = unaccounted
            if unaccounted:
                log.warning(
                    "audit rows behind the cursor differ from the rows ingested: rows inserted "
                    "with an old tx (> 0) or deleted (< 0); see docs/audit-log.md",
                    extra={"table": self.cfg.table, "unaccounted_rows": unaccounted},
                )
        self.store.update(rows_unaccounted=unaccounted)


# hash_mem = work_mem (64 MB, see exporter.connect) x this, for the planner's choice. Where the
# audit table has statistics (start-up, a tail batch after autoanalyze) the planner estimates
# about one group per row for the computed label columns, finds that hashing every grouping set
# of AGGREGATE_SQL would exceed hash_mem, and sorts the input for some sets instead (an external
# merge of every row, measured at a third of a start-up chunk). There are a few hundred groups
# (bounded labels), so hashing them all is always the cheaper plan; the table still spills to
# disk once it really grows past the limit (hostile label values), at 512 MB instead of 128 MB.
HASH_MEM_MULTIPLIER = 8


def plan_hashed_grouping_sets(conn: psycopg.Connection[Any]) -> None:
    """Let the planner hash every grouping set of AGGREGATE_SQL (PostgreSQL 13+)."""
    with contextlib.suppress(psycopg.errors.UndefinedObject):
        conn.execute(f"SET hash_mem_multiplier = {HASH_MEM_MULTIPLIER}")


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds before retry number `failures`: base * 2**(failures - 1), at most `cap`.

    The exponent is capped: 2 ** 1024 overflows a float, which once ended the poller after about
    a thousand consecutive failures. 2 ** 60 times any allowed poll interval is still finite.
    """
    exponent = min(max(failures - 1, 0), 60)
    return min(cap, base * 2.0**exponent)
