"""Checkpoints of the audit exporter: its cursor and every row-derived aggregate, persisted so a
restart tails from the cursor instead of aggregating the whole table again.

A checkpoint is trusted only when it provably describes this table in this database, read with
this classification (validate()); otherwise the exporter falls back to the full aggregation and
says why in one log line and in deletion_audit_startup_info{reason}. Two stores:

- TableCheckpointStore: one row per exporter replica in a small table of the monitored database
  (deletion_audit_checkpoint.sql; the monitoring role may write that table and nothing else). A
  database restored from a backup brings its checkpoints back with it, consistent with its rows.
- FileCheckpointStore: a local JSON file (--state-file), for deployments whose role may not write
  at all; written atomically (temporary file, fsync, rename).

The checkpoint is taken from one snapshot of the state store, in which the cursor and the
aggregates always describe the same rows (AuditStateStore.apply sets both in one step): a kill -9
between two checkpoints loses nothing and counts nothing twice, the tail re-reads every row after
the checkpoint's cursor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from deletion_monitor.audit.state import NANOSECONDS, AuditState, Hist

log = logging.getLogger("deletion_monitor.audit.exporter")

# Bump when the serialized layout changes: an older or newer layout is refused, never guessed.
FORMAT = 1
DEFAULT_CHECKPOINT_TABLE = "deletion_audit_checkpoint"

# Why a start-up did or did not use a checkpoint (deletion_audit_startup_info{reason}); bounded.
REASON_RESTORED = "restored"
REASON_NOT_CONFIGURED = "not_configured"
REASON_NONE_YET = "no_checkpoint"
REASON_UNREADABLE = "unreadable"
REASON_FORMAT = "format_changed"
REASON_CONFIG = "config_changed"
REASON_TABLE = "other_table"
REASON_CLUSTER = "other_cluster"
REASON_AHEAD = "cursor_ahead"
REASON_REWRITTEN = "cursor_row_rewritten"
STARTUP_REASONS: tuple[str, ...] = (
    REASON_RESTORED,
    REASON_NOT_CONFIGURED,
    REASON_NONE_YET,
    REASON_UNREADABLE,
    REASON_FORMAT,
    REASON_CONFIG,
    REASON_TABLE,
    REASON_CLUSTER,
    REASON_AHEAD,
    REASON_REWRITTEN,
)

Cursor = tuple[int, int]


class CheckpointError(Exception):
    """A checkpoint could not be read or written (the exporter keeps running without it)."""


@dataclass(frozen=True)
class Refusal:
    """Why a checkpoint is not used: a bounded reason and one human line."""

    reason: str
    detail: str


def classification_fingerprint(params: Mapping[str, Any], sql_texts: Mapping[str, str]) -> str:
    """Hash of everything that decides how a row is counted: the aggregate SQL and its parameters
    (buckets, large-cascade threshold, label sets). Another exporter version that counts rows
    differently, or other buckets, gives another hash and the checkpoint is refused."""
    blob = json.dumps(
        {"params": params, "sql": dict(sorted(sql_texts.items()))}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


# --- serialization of the row-derived state --------------------------------------------------


def _hist_out(h: Hist) -> dict[str, Any]:
    return {"counts": list(h.counts), "total": h.total, "scale": h.scale}


def _hist_in(raw: Mapping[str, Any]) -> Hist:
    counts = [int(c) for c in raw["counts"]]
    if any(c < 0 for c in counts):
        raise ValueError("negative bucket count")
    return Hist(counts, raw["total"], float(raw["scale"]))


def state_to_dict(s: AuditState) -> dict[str, Any]:
    """The row-derived fields of `s` (state.ROW_FIELDS) plus its cursor, as JSON-able values.

    Floats survive JSON exactly (repr round-trips); the nanosecond duration sums are ints.
    """
    assert s.large is not None
    return {
        "cursor": None if s.cursor is None else [str(s.cursor[0]), s.cursor[1]],
        "requests": dict(s.requests),
        "failures": [[ut, et, n] for (ut, et), n in sorted(s.failures.items())],
        "duration": [[o, ut, _hist_out(h)] for (o, ut), h in sorted(s.duration.items())],
        "large": _hist_out(s.large),
        "cascade": _hist_out(s.cascade),
        "rows_deleted": dict(s.rows_deleted),
        "by_hour": dict(s.by_hour),
        "by_weekday": dict(s.by_weekday),
        "forbidden": dict(s.forbidden),
        "app_versions": dict(s.app_versions),
        "invalid": dict(s.invalid),
        "ingested": s.ingested,
        "first_row_ts": s.first_row_ts,
        "first_any_row_ts": s.first_any_row_ts,
        "last_row_ts": s.last_row_ts,
    }


def _counts(raw: Any) -> dict[str, int]:
    out = {str(k): int(v) for k, v in dict(raw).items()}
    if any(v < 0 for v in out.values()):
        raise ValueError("negative count")
    return out


def _opt_float(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def state_from_dict(raw: Mapping[str, Any], into: AuditState) -> AuditState:
    """Fill the row-derived fields of `into` (a fresh state with this process's buckets) from a
    state_to_dict() value; raises ValueError/KeyError/TypeError on a malformed value."""
    n_bounds = len(into.duration_bounds) + 1
    into.cursor = (int(raw["cursor"][0]), int(raw["cursor"][1]))
    into.requests = _counts(raw["requests"])
    into.failures = {}
    for ut, et, n in raw["failures"]:
        if int(n) < 0:
            raise ValueError("negative count")
        into.failures[(str(ut), str(et))] = int(n)
    into.duration = {}
    for outcome, ut, h in raw["duration"]:
        hist = _hist_in(h)
        if len(hist.counts) != n_bounds or hist.scale != NANOSECONDS:
            raise ValueError("duration histogram does not match the buckets")
        into.duration[(str(outcome), str(ut))] = hist
    into.large = _hist_in(raw["large"])
    into.cascade = _hist_in(raw["cascade"])
    if len(into.large.counts) != n_bounds or len(into.cascade.counts) != len(
        AuditState().cascade.counts
    ):
        raise ValueError("histogram does not match the buckets")
    into.rows_deleted = _counts(raw["rows_deleted"])
    into.by_hour = _counts(raw["by_hour"])
    into.by_weekday = _counts(raw["by_weekday"])
    into.forbidden = _counts(raw["forbidden"])
    into.app_versions = {str(k): float(v) for k, v in dict(raw["app_versions"]).items()}
    into.invalid = _counts(raw["invalid"])
    into.ingested = int(raw["ingested"])
    if into.ingested < 0:
        raise ValueError("negative count")
    into.first_row_ts = _opt_float(raw["first_row_ts"])
    into.first_any_row_ts = _opt_float(raw["first_any_row_ts"])
    into.last_row_ts = _opt_float(raw["last_row_ts"])
    return into


# --- the identity a checkpoint must match ----------------------------------------------------

IDENTITY_SQL = """
SELECT c.oid::bigint AS table_oid,
       format('%%I.%%I', n.nspname, c.relname) AS table_name,
       current_database() AS database,
       pg_snapshot_xmax(pg_current_snapshot())::text AS next_tx
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(table)s)
"""
# The cluster's identity (initdb time + pid; kept by physical backups and replicas, new for a
# dump restored elsewhere). Superuser-only unless granted (grants.sql grants it); None if refused.
SYSTEM_ID_SQL = "SELECT system_identifier::text AS system_id FROM pg_control_system()"
CURSOR_ROW_SQL = "SELECT a.tx::text AS tx FROM {table} a WHERE a.id = %(id)s"


@dataclass(frozen=True)
class Identity:
    """Where and how the rows of a checkpoint were counted."""

    table_oid: int
    table_name: str
    database: str
    system_id: str | None
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "table_oid": self.table_oid,
            "table_name": self.table_name,
            "database": self.database,
            "system_id": self.system_id,
            "fingerprint": self.fingerprint,
        }


def read_identity(
    conn: psycopg.Connection[Any], table: sql.Composable, fingerprint: str
) -> tuple[Identity, int]:
    """This table's identity and the cluster's next transaction id, in the caller's snapshot."""
    row = conn.execute(IDENTITY_SQL, {"table": table.as_string(conn)}).fetchone()
    if row is None:
        raise CheckpointError("the audit table does not exist")
    system_id: str | None = None
    try:
        with conn.transaction():  # a savepoint: a refused call must not abort the snapshot
            got = conn.execute(SYSTEM_ID_SQL).fetchone()
            system_id = None if got is None else str(got["system_id"])
    except psycopg.errors.InsufficientPrivilege:
        system_id = None
    identity = Identity(
        table_oid=int(row["table_oid"]),
        table_name=str(row["table_name"]),
        database=str(row["database"]),
        system_id=system_id,
        fingerprint=fingerprint,
    )
    return identity, int(row["next_tx"])


def validate(
    checkpoint: Mapping[str, Any],
    here: Identity,
    next_tx: int,
    cursor_row_tx: int | None,
) -> Refusal | None:
    """None when `checkpoint` may be resumed from here, else why not.

    - format: written by a layout this exporter does not read;
    - config_changed: other buckets, thresholds or classification SQL (the fingerprint);
    - other_table / other_cluster: another table (or the same name recreated: a new oid), another
      database, or another cluster (system identifier, when both sides could read it);
    - cursor_ahead: the cursor's transaction id was never handed out here: the database was
      restored from a backup older than the checkpoint (or is another cluster);
    - cursor_row_rewritten: the row at the cursor's id exists with another tx: the table was
      rewritten or reloaded since (ids reused).
    A missing cursor row is fine: retention deletes old rows, and the cursor stays valid.
    """
    if checkpoint.get("format") != FORMAT:
        return Refusal(REASON_FORMAT, f"checkpoint format {checkpoint.get('format')!r}")
    ident = checkpoint.get("identity") or {}
    if ident.get("fingerprint") != here.fingerprint:
        return Refusal(
            REASON_CONFIG,
            "the buckets, thresholds or row classification differ from the checkpoint's",
        )
    if ident.get("database") != here.database or ident.get("table_name") != here.table_name:
        return Refusal(
            REASON_TABLE,
            f"checkpoint is for {ident.get('database')}/{ident.get('table_name')}, "
            f"not {here.database}/{here.table_name}",
        )
    if ident.get("table_oid") != here.table_oid:
        return Refusal(
            REASON_TABLE, "the table was recreated since the checkpoint (another table oid)"
        )
    theirs = ident.get("system_id")
    if theirs is not None and here.system_id is not None and theirs != here.system_id:
        return Refusal(REASON_CLUSTER, "checkpoint was written on another cluster")
    cursor = checkpoint["state"]["cursor"]
    tx = int(cursor[0])
    if tx >= next_tx:
        return Refusal(
            REASON_AHEAD,
            f"checkpoint cursor tx {tx} is ahead of this database's next transaction id "
            f"{next_tx}: restored from an older backup?",
        )
    if cursor_row_tx is not None and cursor_row_tx != tx:
        return Refusal(
            REASON_REWRITTEN,
            f"the row at the cursor's id now has tx {cursor_row_tx}, not {tx}: the table was "
            "rewritten or reloaded",
        )
    return None


def build_checkpoint(state: AuditState, identity: Identity) -> dict[str, Any]:
    """The document a store persists (state must have a cursor)."""
    return {
        "format": FORMAT,
        "identity": identity.to_dict(),
        "written_at": time.time(),
        "state": state_to_dict(state),
    }


def encode(checkpoint: Mapping[str, Any]) -> bytes:
    return json.dumps(checkpoint, sort_keys=True, separators=(",", ":")).encode()


# --- stores ----------------------------------------------------------------------------------


class CheckpointStore(Protocol):
    """Where checkpoints live. load() runs inside the start-up snapshot (`conn`)."""

    description: str

    def load(self, conn: psycopg.Connection[Any]) -> dict[str, Any] | None: ...

    def save(self, checkpoint: Mapping[str, Any]) -> int: ...

    def close(self) -> None: ...


class FileCheckpointStore:
    """A JSON file, replaced atomically: a crash mid-write leaves the previous checkpoint."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.description = f"file {self.path}"

    def check_writable(self) -> None:
        """Raise CheckpointError unless the file's directory exists and can be written."""
        directory = self.path.parent
        if not directory.is_dir():
            raise CheckpointError(f"directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise CheckpointError(f"directory {directory} is not writable")
        if self.path.exists() and not self.path.is_file():
            raise CheckpointError(f"{self.path} is not a regular file")

    def load(self, conn: psycopg.Connection[Any] | None = None) -> dict[str, Any] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            value = json.loads(data)
        except ValueError:
            raise CheckpointError(f"{self.path} is not valid JSON") from None
        if not isinstance(value, dict):
            raise CheckpointError(f"{self.path} does not hold a checkpoint object")
        return value

    def save(self, checkpoint: Mapping[str, Any]) -> int:
        data = encode(checkpoint)
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # The rename itself is durable only once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return len(data)

    def close(self) -> None:
        pass


UPSERT_SQL = """
INSERT INTO {table} (exporter_id, audit_table, checkpoint, written_at)
VALUES (%(exporter_id)s, %(audit_table)s, %(checkpoint)s::jsonb, now())
ON CONFLICT (exporter_id, audit_table)
DO UPDATE SET checkpoint = EXCLUDED.checkpoint, written_at = EXCLUDED.written_at
"""
LOAD_SQL = """
SELECT checkpoint FROM {table} WHERE exporter_id = %(exporter_id)s AND audit_table = %(audit_table)s
"""


class TableCheckpointStore:
    """One row per (exporter id, audit table) in the checkpoint table of the monitored database.

    Loads through the exporter's read-only start-up snapshot; writes through its own short
    autocommit connection (the exporter's connection stays read-only, and a slow checkpoint write
    never holds the poller's snapshot open).
    """

    def __init__(
        self,
        connect: Any,
        exporter_id: str,
        audit_table: str,
        table: str = DEFAULT_CHECKPOINT_TABLE,
    ) -> None:
        self._connect = connect  # () -> a new psycopg connection (read-write)
        self.exporter_id = exporter_id
        self.audit_table = audit_table
        self.ident = sql.Identifier(*table.split("."))
        self.description = f"table {table} (exporter id {exporter_id!r})"
        self._conn: psycopg.Connection[Any] | None = None

    def _params(self) -> dict[str, Any]:
        return {"exporter_id": self.exporter_id, "audit_table": self.audit_table}

    def load(self, conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
        try:
            with conn.transaction():  # savepoint: a missing table must not abort the snapshot
                row = conn.execute(
                    sql.SQL(LOAD_SQL).format(table=self.ident), self._params()
                ).fetchone()
        except psycopg.errors.UndefinedTable:
            raise CheckpointError(
                "the checkpoint table does not exist (apply deletion_audit_checkpoint.sql)"
            ) from None
        except psycopg.errors.InsufficientPrivilege:
            raise CheckpointError("no SELECT privilege on the checkpoint table") from None
        if row is None:
            return None
        value = row["checkpoint"] if isinstance(row, Mapping) else row[0]
        if not isinstance(value, dict):
            raise CheckpointError("the stored checkpoint is not an object")
        return value

    def save(self, checkpoint: Mapping[str, Any]) -> int:
        data = encode(checkpoint)
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            self._conn.execute(
                sql.SQL(UPSERT_SQL).format(table=self.ident),
                {**self._params(), "checkpoint": data.decode()},
            )
        except psycopg.Error:
            self.close()
            raise
        return len(data)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
