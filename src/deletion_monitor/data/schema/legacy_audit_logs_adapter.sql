-- Adapter: the old `audit_logs` table (Prisma app, polled by the old shell scripts) seen through
-- the deletion_audit contract's columns. PostgreSQL 13+. Idempotent.
--
-- What it is for (docs/audit-log.md, "Legacy audit_logs adapter"): historical reports and
-- query-exporter-style aggregates over the legacy log (counts by outcome, error class and user
-- type), and comparing old and new logs while the application migrates. It is NOT a source for
-- `deletion-monitor audit-exporter` and NOT a backfill into deletion_audit: the legacy table has
-- no duration (the old scripts guessed latency from gaps between rows), no writing-transaction id
-- (so no lossless tailing), no per-table cascade counts, no HTTP status and no app version. Those
-- columns are NULL here, never invented.
--
-- Assumes Prisma's defaults: "timestamp" is timestamp(3) WITHOUT time zone holding UTC, `error`
-- is free text (Prisma error codes such as P2025 appear in it), `success` is boolean.

-- Classify a legacy error text into the contract's error_type classes. Order matters: the first
-- matching class wins (a Prisma pool timeout P2024 is a timeout, not a generic database error).
CREATE OR REPLACE FUNCTION deletion_audit_classify_error(error text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN error IS NULL OR btrim(error) = '' THEN 'unknown'
        WHEN error ~* '(time[ds]? ?out|timed out|P1008|P2024|statement timeout|canceling statement)'
            THEN 'timeout'
        WHEN error ~* '(P2025|P2001|P2015|P2018|not found|does not exist|no such user)'
            THEN 'not_found'
        WHEN error ~* '(P2003|P2014|P2002|P2011|foreign key|constraint|violates)'
            THEN 'constraint'
        WHEN error ~* '(unauthori[sz]ed|forbidden|permission denied|not allowed|access denied|insufficient (role|privilege)|invalid token|\m401\M|\m403\M)'
            THEN 'authorization'
        WHEN error ~* '(cannot delete|can''t delete|self[- ]?deletion|yourself|super_?admin|business rule|validation|invalid (user|request|input)|has active)'
            THEN 'business_logic'
        WHEN error ~* '(P1\d{3}|P20\d{2}|prisma|database|connection|ECONNREFUSED|ECONNRESET|deadlock|could not serialize|too many clients)'
            THEN 'database'
        ELSE 'unknown'
    END
$$;

CREATE OR REPLACE VIEW legacy_deletion_audit AS
SELECT
    l.id::text                                   AS legacy_id,
    l."timestamp" AT TIME ZONE 'UTC'             AS occurred_at,
    CASE WHEN l.success THEN 'success' ELSE 'failure' END AS outcome,
    CASE WHEN l.success THEN NULL
         ELSE deletion_audit_classify_error(l.error) END AS error_type,
    l.error                                      AS error_text,
    NULL::double precision                       AS duration_seconds,   -- never recorded
    l."targetUserId"::text                       AS target_user_id,
    l."targetUserType"::text                     AS target_user_type,
    l."performedBy"::text                        AS performed_by,
    l."performedByType"::text                    AS performed_by_type,
    NULL::jsonb                                  AS rows_deleted,       -- never recorded
    NULL::integer                                AS http_status,        -- never recorded
    NULL::text                                   AS app_version         -- never recorded
FROM audit_logs l
WHERE l.action = 'USER_DELETION';

COMMENT ON VIEW legacy_deletion_audit IS
    'Legacy audit_logs (action USER_DELETION) in deletion_audit columns; no duration/tx: reports only';
