"""The deletion itself: authorization, cascade, manual clean-up and the audit row.

One call = one audit row (deletion_audit.sql): on success it is written in the same
transaction as the deletion, so a rolled-back deletion never leaves a "success" behind; on
failure it is written in its own transaction after the rollback.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
import psycopg_pool
from psycopg import errors, sql

from deletion_monitor_demo.app.auth import (
    DELETER_TYPES,
    UNDELETABLE_TYPES,
    bearer_token,
    token_subject,
)
from deletion_monitor_demo.app.faults import Faults
from deletion_monitor_demo.app.runtime import QueryTimer, TimedConnection

log = logging.getLogger("deletion_monitor_demo.app")

# The reserved id the blackbox probe deletes with a bogus token (prometheus/prometheus.yml):
# a version-4 uuid that no user can have, so no real deletion is ever hidden by excluding it.
PROBE_USER_ID = "00000000-0000-4000-8000-000000000000"

# Tables the endpoint must clean up by hand (no cascade in the reference schema).
MANUAL_CLEANUP = ("dispatches", "file_uploads", "addresses")


class DeletionFailed(Exception):
    """A handled failure: HTTP status, audit error_type and a message for the client."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


@dataclass
class Outcome:
    """What the HTTP layer answers and what the audit row says."""

    status: int
    body: dict[str, Any]
    error_type: str | None = None
    duration_seconds: float = 0.0
    rows_deleted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    on_delete: str  # pg_constraint.confdeltype: a no action, r restrict, c cascade, n set null


def _foreign_keys(conn: psycopg.Connection, target: str) -> list[ForeignKey]:
    """Single-column foreign keys that reference `target`(id) in the public schema."""
    rows = conn.execute(
        """
        SELECT c.conrelid::regclass::text, a.attname, c.confdeltype
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.confrelid = %s::regclass AND cardinality(c.conkey) = 1
        ORDER BY 1, 2
        """,
        (target,),
    ).fetchall()
    return [ForeignKey(t.strip('"'), col, kind) for t, col, kind in rows]


def classify_db_error(exc: BaseException) -> tuple[int, str]:
    """HTTP status and audit error_type for a database exception."""
    if isinstance(exc, errors.QueryCanceled):  # statement_timeout
        return 504, "timeout"
    if isinstance(exc, psycopg.IntegrityError):
        return 409, "constraint"
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return 503, "timeout"
    if isinstance(exc, psycopg.Error):
        return (503 if isinstance(exc, psycopg.OperationalError) else 500), "database"
    return 500, "unknown"


class DeletionService:
    """DELETE /api/users/{id} over a psycopg connection pool."""

    def __init__(
        self,
        dsn: str,
        token_secret: str,
        faults: Faults,
        *,
        app_version: str = "demo-1.0.0",
        statement_timeout: float = 10.0,
        pool_min: int = 2,
        pool_max: int = 10,
        pool_timeout: float = 5.0,
        probe_user_id: str = PROBE_USER_ID,
    ) -> None:
        self.token_secret = token_secret
        self.probe_user_id = probe_user_id
        self.probe_calls: dict[str, int] = {}  # HTTP status -> failed calls on probe_user_id
        self.faults = faults
        self.app_version = app_version
        self.statement_timeout = statement_timeout
        # deletion_app_db_query_duration_seconds: every statement of a pooled connection.
        self.query_timer = QueryTimer()
        timer = self.query_timer

        class Connection(TimedConnection):
            query_timer = timer

        self.pool = psycopg_pool.ConnectionPool(
            dsn,
            connection_class=Connection,
            min_size=pool_min,
            max_size=pool_max,
            timeout=pool_timeout,
            open=False,
            name="deletion-api",
            reconnect_timeout=3600,
            # A connection broken by a database restart is replaced at checkout instead of
            # failing the request that drew it (one SELECT 1 per checkout; fine for a demo).
            check=psycopg_pool.ConnectionPool.check_connection,
        )
        self._in_use = 0
        self._in_use_lock = threading.Lock()
        self._rng = random.Random()
        self.cascade_fks: list[ForeignKey] = []
        self.address_fks: list[ForeignKey] = []

    def open(self, wait_timeout: float = 30.0) -> None:
        """Open the pool and read which foreign keys cascade (fails if the schema is missing)."""
        self.pool.open(wait=True, timeout=wait_timeout)
        with self.connection() as conn:
            missing = []
            for t in ("profiles", "deletion_audit", *MANUAL_CLEANUP):
                # A SELECT without FROM returns exactly one row.
                row = cast(tuple[Any, ...], conn.execute("SELECT to_regclass(%s)", (t,)).fetchone())
                if row[0] is None:
                    missing.append(t)
            if missing:
                raise RuntimeError(
                    "demo-app: table(s) missing: "
                    + ", ".join(missing)
                    + " (apply reference_app.sql and deletion_audit.sql)"
                )
            profile_fks = _foreign_keys(conn, "profiles")
            self.cascade_fks = [fk for fk in profile_fks if fk.on_delete == "c"]
            self.address_fks = _foreign_keys(conn, "addresses")

    def close(self) -> None:
        self.pool.close()

    @property
    def pool_in_use(self) -> int:
        return self._in_use

    @property
    def pool_max(self) -> int:
        return self.pool.max_size

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection, counted in the in-use gauge while held."""
        with self.pool.connection() as conn:
            with self._in_use_lock:
                self._in_use += 1
            try:
                yield conn
            finally:
                with self._in_use_lock:
                    self._in_use -= 1

    def healthy(self) -> bool:
        try:
            with self.connection() as conn:
                conn.execute("SELECT 1")
            return True
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return False

    # --- the endpoint -------------------------------------------------------------------------

    def delete_user(self, authorization: str | None, target: str) -> Outcome:
        """Handle one call end to end, audit row included."""
        start = time.monotonic()
        performer: tuple[str, str | None] | None = None
        target_type: str | None = None
        known: dict[str, str] = {}  # what the transaction learnt before it failed
        try:
            if not self.faults.state.auth_bypass:
                performer = self._authenticate(authorization, known)
                if performer[1] not in DELETER_TYPES:
                    raise DeletionFailed(403, "authorization", "only administrators delete users")
            try:
                target = str(uuid.UUID(target))
            except ValueError:
                raise DeletionFailed(404, "not_found", "user not found") from None
            if performer is not None and target == performer[0]:
                raise DeletionFailed(400, "business_logic", "you cannot delete your own account")
            with self.connection() as conn, conn.transaction():
                target_type, rows = self._delete_in_tx(conn, target, known)
                duration = time.monotonic() - start
                audit = self._audit_row(
                    "success", None, duration, target, target_type, performer, rows, 200
                )
                self._insert_audit(conn, audit)
            self.faults.leak(_rss_bytes())
            return Outcome(200, {"deleted": target, "rowsDeleted": rows}, None, duration, rows)
        except DeletionFailed as exc:
            status, error_type, message = exc.status, exc.error_type, str(exc)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            status, error_type = classify_db_error(exc)
            message = "deletion timed out" if error_type == "timeout" else "database error"
            log.warning(
                "deletion failed", extra={"error_type": error_type, "error": type(exc).__name__}
            )
        except Exception:  # a bug in the endpoint: still one audit row, still a 500
            log.exception("deletion failed unexpectedly")
            status, error_type, message = 500, "unknown", "internal error"
        duration = time.monotonic() - start
        target_type = target_type or known.get("target_type")
        if performer is None and "performed_by" in known:
            performer = (known["performed_by"], None)  # the type lookup itself failed
        if self.probe_user_id and target == self.probe_user_id:
            # Synthetic monitoring (the blackbox probe's bogus-token call on a reserved id that
            # can never be a user) is not a deletion attempt: auditing it would count one
            # authorization failure per probe, trip the security and error-rate alerts by
            # itself and bury real attempts. It is counted apart (probe_calls).
            with self._in_use_lock:
                self.probe_calls[str(status)] = self.probe_calls.get(str(status), 0) + 1
        else:
            self._audit_failure(
                self._audit_row(
                    "failure", error_type, duration, target, target_type, performer, None, status
                )
            )
        return Outcome(status, {"error": message, "errorType": error_type}, error_type, duration)

    def _authenticate(self, authorization: str | None, known: dict[str, str]) -> tuple[str, str]:
        token = bearer_token(authorization)
        if token is None:
            raise DeletionFailed(401, "authorization", "missing bearer token")
        subject = token_subject(self.token_secret, token)
        if subject is None:
            raise DeletionFailed(401, "authorization", "invalid token")
        try:
            subject = str(uuid.UUID(subject))
        except ValueError:
            raise DeletionFailed(401, "authorization", "invalid token") from None
        # Who is calling is known from the signed token; only the type needs the database. A
        # failed lookup (outage) still leaves the caller's id for the audit row.
        known["performed_by"] = subject
        with self.connection() as conn:
            row = conn.execute(
                'SELECT type::text FROM profiles WHERE id = %s AND "deletedAt" IS NULL',
                (subject,),
            ).fetchone()
        if row is None:
            raise DeletionFailed(401, "authorization", "token of an unknown or deleted user")
        return subject, row[0]

    def _delete_in_tx(
        self, conn: psycopg.Connection, target: str, known: dict[str, str]
    ) -> tuple[str, dict[str, int]]:
        faults = self.faults.state
        # SET LOCAL: the timeout ends with the transaction, the pooled connection stays clean.
        conn.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(f"{int(self.statement_timeout * 1000)}ms")
            )
        )
        row = conn.execute(
            "SELECT type::text FROM profiles WHERE id = %s FOR UPDATE", (target,)
        ).fetchone()
        if row is None:
            raise DeletionFailed(404, "not_found", "user not found")
        target_type = known["target_type"] = row[0]
        if target_type in UNDELETABLE_TYPES:
            raise DeletionFailed(403, "business_logic", "a SUPER_ADMIN cannot be deleted")
        work = self.faults.work_seconds(self._rng)
        if faults.timeout_rate and self._rng.random() < faults.timeout_rate:
            work = self.statement_timeout + 1  # outlives statement_timeout: QueryCanceled
        if work > 0:
            conn.execute("SELECT pg_sleep(%s)", (work,))
        if faults.error_rate and self._rng.random() < faults.error_rate:
            conn.execute("SELECT 1 / 0")  # a real database error inside the transaction

        rows: dict[str, int] = {}
        # Count what the ON DELETE CASCADE foreign keys will remove (they do not report it).
        for fk in self.cascade_fks:
            # An aggregate without GROUP BY returns exactly one row.
            (count,) = cast(
                tuple[Any, ...],
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                        sql.Identifier(fk.table), sql.Identifier(fk.column)
                    ),
                    (target,),
                ).fetchone(),
            )
            if count:
                rows[fk.table] = rows.get(fk.table, 0) + count
        if faults.skip_cleanup:
            # The bug being simulated: the clean-up is skipped and the constraints that would
            # have refused the delete are bypassed (replica mode disables FK triggers, the
            # cascades included, so those are done explicitly).
            conn.execute("SET LOCAL session_replication_role = replica")
            for fk in self.cascade_fks:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                        sql.Identifier(fk.table), sql.Identifier(fk.column)
                    ),
                    (target,),
                )
        else:
            rows.update({k: v for k, v in self._manual_cleanup(conn, target).items() if v})
        conn.execute("DELETE FROM profiles WHERE id = %s", (target,))
        rows["profiles"] = 1
        return target_type, dict(sorted(rows.items()))

    def _manual_cleanup(self, conn: psycopg.Connection, target: str) -> dict[str, int]:
        """What the schema does not cascade: dispatches, file_uploads, addresses."""
        done: dict[str, int] = {}
        done["dispatches"] = conn.execute(
            'DELETE FROM dispatches WHERE "driverId" = %s OR "userId" = %s', (target, target)
        ).rowcount
        # Uploads are kept (invoices, proofs of delivery) but no longer point at the user.
        done["file_uploads"] = conn.execute(
            'UPDATE file_uploads SET "userId" = NULL WHERE "userId" = %s', (target,)
        ).rowcount
        # Addresses the user created and nothing else uses are removed; shared ones are kept
        # and merely lose their creator. "Uses" = any foreign key to addresses, once this
        # user's own user_addresses rows (which the cascade would remove anyway) are gone.
        if any(fk.table == "user_addresses" for fk in self.address_fks):
            conn.execute('DELETE FROM user_addresses WHERE "userId" = %s', (target,))
        unused = [
            sql.SQL("NOT EXISTS (SELECT 1 FROM {} r WHERE r.{} = a.id)").format(
                sql.Identifier(fk.table), sql.Identifier(fk.column)
            )
            for fk in self.address_fks
        ]
        done["addresses"] = conn.execute(
            sql.SQL('DELETE FROM addresses a WHERE a."createdBy" = %s AND {}').format(
                sql.SQL(" AND ").join(unused) if unused else sql.SQL("TRUE")
            ),
            (target,),
        ).rowcount
        conn.execute('UPDATE addresses SET "createdBy" = NULL WHERE "createdBy" = %s', (target,))
        return done

    # --- the audit row ------------------------------------------------------------------------

    def _audit_row(
        self,
        outcome: str,
        error_type: str | None,
        duration: float,
        target: str | None,
        target_type: str | None,
        performer: tuple[str, str | None] | None,
        rows: dict[str, int] | None,
        status: int,
    ) -> dict[str, Any]:
        return {
            "outcome": outcome,
            "error_type": error_type,
            "duration_seconds": round(duration, 6),
            "target_user_id": (target or "")[:64] or None,
            "target_user_type": target_type,
            "performed_by": performer[0] if performer else None,
            "performed_by_type": performer[1] if performer else None,
            "rows_deleted": json.dumps(rows) if rows is not None else None,
            "http_status": status,
            "app_version": self.app_version,
        }

    @staticmethod
    def _insert_audit(conn: psycopg.Connection, row: dict[str, Any]) -> None:
        conn.execute(
            """
            INSERT INTO deletion_audit (outcome, error_type, duration_seconds, target_user_id,
                target_user_type, performed_by, performed_by_type, rows_deleted, http_status,
                app_version)
            VALUES (%(outcome)s, %(error_type)s, %(duration_seconds)s, %(target_user_id)s,
                %(target_user_type)s, %(performed_by)s, %(performed_by_type)s,
                %(rows_deleted)s::jsonb, %(http_status)s, %(app_version)s)
            """,
            row,
        )

    def _audit_failure(self, row: dict[str, Any]) -> None:
        """The failure row, in its own transaction; a DB outage loses it (and says so)."""
        try:
            with self.connection() as conn, conn.transaction():
                self._insert_audit(conn, row)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.error("could not write the audit row", extra={"error": type(exc).__name__})


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc), 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except (OSError, ValueError, IndexError):
        return 0
