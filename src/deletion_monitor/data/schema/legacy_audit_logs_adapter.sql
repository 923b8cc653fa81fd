-- Adapter: the old `audit_logs` table (Prisma app, polled by the old shell scripts) seen through
-- the deletion_audit contract's columns. PostgreSQL 13+. Idempotent.
--
-- What it is for (docs/audit-log.md, "Legacy audit_logs adapter"): the source of
-- `deletion-monitor audit-exporter --table legacy_deletion_audit` once
-- legacy_audit_logs_migration.sql has added the writing-transaction id (apply the migration
-- first, then this file; applying this file again after the migration adds the columns `tx` and
-- `id` to the view); historical reports and query-exporter-style aggregates (counts by outcome,
-- error class and user type); comparing old and new logs while the application migrates.
-- It is NOT a backfill into deletion_audit: the legacy table has no duration (the old scripts
-- guessed latency from gaps between rows), no per-table cascade counts, no HTTP status and no app
-- version. Those columns are NULL here, never invented; the exporter counts these calls without
-- a latency (deletion_requests_without_duration_total).
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

-- The view's columns, in the order CREATE OR REPLACE VIEW needs (it may only append columns):
-- the reports' columns first, then the cursor's. Before the migration the view has no tx/id and
-- the exporter refuses it with a message that names the migration; after it, rows written before
-- the migration (tx NULL) appear as (tx 2, id 0): 2 is PostgreSQL's FrozenTransactionId, below
-- every real transaction id, so they are one finished "transaction" the start-up aggregate reads
-- once and the tail never reaches again. Their shared id is fine: the cursor compares (tx, id)
-- ranges, so equal keys only make a start-up chunk or a batch larger, never skip or repeat a row.
-- The expressions are exactly those of the migration's index, so the cursor's queries use it.
DO $adapter$
DECLARE
    migrated boolean :=
        EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = 'audit_logs'::regclass AND attname = 'tx' AND NOT attisdropped)
        AND EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = 'audit_logs'::regclass AND attname = 'audit_seq'
                      AND NOT attisdropped);
    -- The cursor's columns, appended once the migration gave audit_logs what they read.
    cursor_columns text := CASE WHEN migrated THEN $cols$,
            coalesce(l.tx, '2'::xid8)                    AS tx,
            coalesce(l.audit_seq, 0)                     AS id$cols$ ELSE '' END;
BEGIN
    EXECUTE $view$
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
        $view$ || cursor_columns || $view$
        FROM audit_logs l
        WHERE l.action = 'USER_DELETION'
    $view$;
    IF migrated THEN
        COMMENT ON VIEW legacy_deletion_audit IS
            'Legacy audit_logs (action USER_DELETION) in deletion_audit columns, tail-able by tx '
            '(rows before the migration: tx 2, id 0); no duration: calls without latency';
    ELSE
        COMMENT ON VIEW legacy_deletion_audit IS
            'Legacy audit_logs (action USER_DELETION) in deletion_audit columns; no tx yet: '
            'reports only until legacy_audit_logs_migration.sql is applied';
    END IF;
END
$adapter$;
