"""The SQL the audit poller reads the audit table with, and the builders that bind it.

statements() binds every statement to the table, query_params() gives the classification its
parameters (label values, bucket bounds, validity limits). Nothing here opens a connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from deletion_monitor.audit.state import (
    CASCADE_BUCKETS,
    ERROR_TYPES,
    MAX_DURATION_SECONDS,
    MAX_OCCURRED_AT,
    MIN_OCCURRED_AT,
    USER_TYPES,
)

# One row classification for start-up and tail. `src` normalises one audit row; the outer query
# groups the range (lo, hi] with GROUPING SETS so one scan yields every metric family.
# A fence (subquery with OFFSET 0 cannot be flattened): compute `bad` (a regex) once per row,
# not once per reference after the planner inlines the CTE.
_FENCE = "OFFSET 0"
_SRC = """
WITH src AS (
    SELECT a.outcome::text AS outcome,
           a.error_type::text AS error_type,
           a.target_user_type::text AS target_user_type,
           a.duration_seconds::float8 AS d,
           -- occurred_at only where the epoch math and Python's datetime work (years 1-9999
           -- UTC); 'infinity', BC dates, year 10000+ and NULL become NULL: bad_occurred_at.
           CASE WHEN a.occurred_at >= %(min_at)s::timestamptz
                 AND a.occurred_at < %(max_at)s::timestamptz
                THEN a.occurred_at END AS occurred_at,
           a.app_version::text AS app_version,
           (a.performed_by IS NOT NULL AND a.performed_by::text = a.target_user_id::text)
               AS self_del,
           a.rows_deleted,
           jsonb_typeof(a.rows_deleted) AS rdt,
           -- A per-table count must be a non-negative integer literal of at most 15 digits.
           -- jsonb prints an object as {{"k": v, ...}} and a number without exponent: a value
           -- that does not start with a digit (string, negative, null, true, array, object),
           -- has a fraction, or has 16+ digits is caught by one regex per row, which is several
           -- times cheaper than expanding the object with jsonb_each. The regex can also match
           -- inside a key (`{{"a\": x": 1}}`), so the CASE below checks the (rare) rows that
           -- match value by value, and tells the two reasons apart.
           coalesce(jsonb_typeof(a.rows_deleted) = 'object'
                    AND a.rows_deleted::text ~ '": ([^0-9]|[0-9]+[^0-9,}}]|[0-9]{{16}})', false)
               AS bad
    FROM {table} a
    WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
      AND (a.tx, a.id) <= (%(hi_tx)s::text::xid8, %(hi_id)s)
    {fence}
), v AS (
    SELECT src.*,
           CASE WHEN outcome IS NULL OR outcome NOT IN ('success', 'failure')
                    THEN 'unknown_outcome'
                -- A NULL duration is not malformed: the call happened, its latency was never
                -- recorded (the legacy audit_logs). The row counts everywhere but in the
                -- duration histograms: its bucket is NULL (width_bucket of NULL).
                WHEN d IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
                    THEN 'non_finite_duration'
                WHEN d < 0 THEN 'negative_duration'
                WHEN d > %(max_duration)s::float8 THEN 'duration_too_large'
                WHEN occurred_at IS NULL THEN 'bad_occurred_at'
                WHEN rdt IS NOT NULL AND rdt NOT IN ('object', 'null') THEN 'bad_rows_deleted'
                WHEN bad THEN
                    CASE WHEN EXISTS (SELECT 1 FROM jsonb_each(rows_deleted) e
                                      WHERE jsonb_typeof(e.value) <> 'number'
                                         OR e.value::text !~ '^[0-9]+$')
                             THEN 'bad_rows_deleted'
                         WHEN EXISTS (SELECT 1 FROM jsonb_each_text(rows_deleted) e
                                      WHERE length(e.value) > 15)
                             THEN 'rows_deleted_too_large'
                    END  -- NULL: the regex matched inside a key only; the row is valid
           END AS invalid,
           CASE WHEN target_user_type = ANY(%(user_types)s::text[]) THEN target_user_type
                ELSE 'other' END AS user_type,
           CASE WHEN outcome = 'failure' THEN
                CASE WHEN error_type = ANY(%(error_types)s::text[]) THEN error_type
                     ELSE 'unknown' END
           END AS et,
           -- index of the first bucket whose upper bound is >= d (Prometheus `le`), via
           -- width_bucket over the negated bounds (width_bucket counts bounds <= operand).
           %(n_dur)s - width_bucket(-d, %(neg_dur)s::float8[]) AS bucket
    FROM src
)
"""

# One statement, one scan and one classification per row for every family, the per-table sums
# included. `w` is MATERIALIZED: both branches below read its rows, and the UNION ALL reads them
# twice from the CTE's tuplestore (about a tenth of what classifying each row a second time cost
# when the per-table sums were a statement of their own; temp-file bytes are bounded by the
# chunks the poller cuts a large range into). The fence also keeps the per-row sum, referenced
# three times below, from being inlined and computed three times.
# Per-row and per-table sums cast each value to bigint, not numeric: a counted value is a
# non-negative integer of at most 15 digits (else the row is invalid and `counted` is NULL), so
# the cast is exact and cheaper, and sum(bigint) is still an exact numeric.
AGGREGATE_SQL = (
    _SRC.replace("{fence}", _FENCE)
    + """
, w AS MATERIALIZED (
    SELECT v.invalid, v.outcome, v.user_type, v.et, v.bucket, v.self_del, v.app_version, v.d,
           v.occurred_at,
           CASE WHEN outcome = 'success' AND rdt = 'object' AND invalid IS NULL
                THEN v.rows_deleted END AS counted,
           CASE WHEN outcome = 'success' AND rdt = 'object' AND invalid IS NULL
                THEN (SELECT coalesce(sum(e.value::bigint), 0)
                      FROM jsonb_each_text(v.rows_deleted) e) END AS cascade_total
    FROM v
)
SELECT CASE WHEN GROUPING(outcome) = 0 THEN 'main'
            WHEN GROUPING(hour) = 0 THEN 'hour'
            WHEN GROUPING(weekday) = 0 THEN 'weekday'
            WHEN GROUPING(cbucket) = 0 THEN 'cascade'
            WHEN GROUPING(app_version) = 0 THEN 'app_version'
            ELSE 'rows' END AS kind,
       invalid, outcome, user_type, error_type, bucket, large, self_del,
       hour, weekday, cbucket, app_version, NULL::text AS table_name,
       count(*) AS n,
       -- The duration sum in whole nanoseconds, summed exactly (numeric): a float sum depends
       -- on how the rows were split into batches, so a restart (one start-up aggregate) could
       -- serve a _sum a few ulps below the tailed one, which rate() reads as a counter reset.
       sum(round(d::numeric * 1000000000)) AS dsum_ns, sum(cascade_total) AS tsum,
       extract(epoch FROM min(occurred_at))::float8 AS min_at,
       extract(epoch FROM max(occurred_at))::float8 AS max_at
FROM (
    -- d only for valid rows: the invalid groups sum nothing (two durations of 1e308 in one
    -- group would overflow sum() and fail the poll on every retry).
    SELECT invalid, outcome, user_type, et AS error_type, bucket, self_del, app_version,
           CASE WHEN invalid IS NULL THEN d END AS d,
           occurred_at, cascade_total,
           coalesce(outcome = 'success' AND cascade_total >= %(large)s, false) AS large,
           extract(hour FROM occurred_at AT TIME ZONE 'UTC')::int AS hour,
           extract(isodow FROM occurred_at AT TIME ZONE 'UTC')::int AS weekday,
           %(n_cas)s - width_bucket(-cascade_total::float8, %(neg_cas)s::float8[]) AS cbucket
    FROM w
) r
GROUP BY GROUPING SETS (
    (invalid, outcome, user_type, error_type, bucket, large, self_del),
    (invalid, hour),
    (invalid, weekday),
    (invalid, cbucket),
    (app_version),
    (invalid)
)
UNION ALL
-- Rows removed per table (deletion_rows_deleted_total): kind 'table', the sum in tsum.
SELECT 'table', NULL::text, NULL::text, NULL::text, NULL::text, NULL::int, NULL::bool,
       NULL::bool, NULL::int, NULL::int, NULL::int, NULL::text, e.key,
       count(*), NULL::numeric, sum(e.value::bigint), NULL::float8, NULL::float8
FROM w CROSS JOIN LATERAL jsonb_each_text(w.counted) e
WHERE w.counted IS NOT NULL
GROUP BY e.key
"""
)

# Only needed when new tables would overflow --max-tables: the (tx, id) of each table's first
# row, so that the same tables keep their own label after a restart whatever the batches were.
# The first appearance is one row's (tx, id) (DISTINCT ON), not min(tx) and min(id) taken from two
# different rows; tables first seen in the same row are ordered by name.
FIRST_APPEARANCE_SQL = (
    _SRC.replace("{fence}", "").replace(
        "SELECT a.outcome::text", "SELECT a.tx, a.id, a.outcome::text"
    )
    + """
SELECT f.table_name FROM (
    SELECT DISTINCT ON (e.key) e.key AS table_name, v.tx, v.id
    FROM v CROSS JOIN LATERAL jsonb_object_keys(v.rows_deleted) e(key)
    WHERE v.invalid IS NULL AND v.outcome = 'success' AND v.rdt = 'object'
    ORDER BY e.key, v.tx, v.id
) f
ORDER BY f.tx, f.id, f.table_name
"""
)

# Every ORDER BY below names the table's columns (a.tx, s.tx), never the output alias `tx`: the
# alias is tx::text, and ordering by it sorts '999' after '1000', which stopped the start-up
# aggregate early whenever the tx values spanned a power of ten.
# Cursor end of the next batch: largest (tx, id) among the next `limit` rows below xmin.
BATCH_END_SQL = """
SELECT s.tx::text AS tx, s.id FROM (
    SELECT a.tx, a.id FROM {table} a
    WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
      AND a.tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY a.tx, a.id LIMIT %(limit)s
) s ORDER BY s.tx DESC, s.id DESC LIMIT 1
"""
# Without a batch limit: the largest (tx, id) below xmin, one backward index probe.
TAIL_END_SQL = """
SELECT a.tx::text AS tx, a.id FROM {table} a
WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
  AND a.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY a.tx DESC, a.id DESC LIMIT 1
"""
START_END_SQL = """
SELECT a.tx::text AS tx, a.id FROM {table} a
WHERE a.tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY a.tx DESC, a.id DESC LIMIT 1
"""
# End of one start-up chunk: the (tx, id) `skip` rows after lo (None: the rest fits in one chunk).
CHUNK_END_SQL = """
SELECT a.tx::text AS tx, a.id FROM {table} a
WHERE (a.tx, a.id) > (%(lo_tx)s::text::xid8, %(lo_id)s)
  AND (a.tx, a.id) <= (%(hi_tx)s::text::xid8, %(hi_id)s)
ORDER BY a.tx, a.id OFFSET %(skip)s LIMIT 1
"""
# Rows the start-up load will read, for the progress gauge: the planner's estimate (free), or,
# for a table never analysed (reltuples -1, or 0 before PostgreSQL 14), the id range (two probes
# of the primary key).
ESTIMATE_SQL = """
SELECT coalesce(
    (SELECT c.reltuples::float8 FROM pg_class c
     WHERE c.oid = to_regclass(%(table)s) AND c.reltuples > 0),
    (SELECT (max(a.id) - min(a.id) + 1)::float8 FROM {table} a),
    0) AS estimate
"""
# After a poll, in one statement: xmin; the newest committed row the cursor may not pass yet
# (tx >= xmin: an older transaction is still open); and the committed rows whose tx is at or
# beyond xmax, the first transaction id this cluster has not handed out yet: they were written by
# another cluster (dump/restore, logical replication) and will never fall below xmin.
HELD_BACK_SQL = """
SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
       h.tx::text AS held_tx, h.id AS held_id,
       (SELECT count(*) FROM {table} f
        WHERE f.tx >= pg_snapshot_xmax(pg_current_snapshot())) AS foreign_rows
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT a.tx, a.id FROM {table} a
    WHERE a.tx >= pg_snapshot_xmin(pg_current_snapshot())
      AND a.tx < pg_snapshot_xmax(pg_current_snapshot())
    ORDER BY a.tx DESC, a.id DESC LIMIT 1
) h ON true
"""
# Reconciliation: rows at or below the cursor now, against the rows ingested. A row inserted with
# an explicit tx below the cursor after the cursor passed it is never read; retention deletes
# lower the count.
BEHIND_CURSOR_SQL = """
SELECT count(*) AS n FROM {table} a
WHERE (a.tx, a.id) <= (%(tx)s::text::xid8, %(id)s)
"""


def statements(table: sql.Composable) -> dict[str, sql.Composed]:
    """Every statement above by the poller's name for it, with {table} bound to `table`."""
    return {
        name: sql.SQL(text).format(table=table)
        for name, text in {
            "agg": AGGREGATE_SQL,
            "first": FIRST_APPEARANCE_SQL,
            "batch_end": BATCH_END_SQL,
            "tail_end": TAIL_END_SQL,
            "start_end": START_END_SQL,
            "held": HELD_BACK_SQL,
            "chunk_end": CHUNK_END_SQL,
            "estimate": ESTIMATE_SQL,
            "behind": BEHIND_CURSOR_SQL,
        }.items()
    }


def query_params(duration_buckets: Sequence[float], large_cascade_rows: int) -> dict[str, Any]:
    """The parameters of the row classification (_SRC) other than the (tx, id) range."""
    return {
        "user_types": list(USER_TYPES),
        "error_types": [e for e in ERROR_TYPES if e != "unknown"],
        "n_dur": len(duration_buckets),
        "neg_dur": sorted(-float(b) for b in duration_buckets),
        "n_cas": len(CASCADE_BUCKETS),
        "neg_cas": sorted(-float(b) for b in CASCADE_BUCKETS),
        "large": large_cascade_rows,
        "max_duration": MAX_DURATION_SECONDS,
        "min_at": MIN_OCCURRED_AT,
        "max_at": MAX_OCCURRED_AT,
    }
