-- deletion_audit, partitioned: the same audit-log contract as deletion_audit.sql (PostgreSQL 13+),
-- as a table partitioned by RANGE (occurred_at) in calendar months (UTC), so that retention drops
-- whole months instead of deleting rows. Apply ONE of the two files for the table
-- `deletion_audit`, never both; docs/partitioning.md says when and how.
--
-- The application writes exactly one row per call: in the SAME transaction as the deletion when it
-- succeeds (so a committed deletion always has its audit row, and a rolled-back one never does),
-- and in its OWN transaction when it fails (the deletion transaction was rolled back).
-- docs/audit-log.md documents every column; `deletion-monitor audit-exporter` reads this table
-- exactly like the plain one (it queries the parent; partitions are invisible to it).
--
-- Idempotent: safe to apply on every deploy. It creates the current month and the next
-- 3 months; after that `CALL deletion_audit_maintenance()` (daily, cron) keeps months ahead and
-- drops the months older than the retention. With pg_partman, apply
-- deletion_audit_partman.sql after this file instead of running the procedure.
--
-- Deliberately no CHECK constraints on outcome / error_type / duration_seconds: a buggy writer
-- must never make the DELETE itself fail because its audit row is malformed. The exporter
-- validates every row and counts malformed ones in deletion_audit_invalid_rows_total{reason}.
-- For the same reason there is a DEFAULT partition: a row whose month has no partition yet
-- (maintenance did not run), or whose occurred_at is 'infinity', '-infinity', BC or year 10000+,
-- is stored there instead of failing the insert.

-- One or the other: CREATE TABLE IF NOT EXISTS below would silently keep a plain table and the
-- partition functions would then fail on every call. Refuse, with the reason.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class
               WHERE oid = to_regclass('deletion_audit') AND relkind <> 'p') THEN
        RAISE EXCEPTION 'deletion_audit exists and is not partitioned (deletion_audit.sql was '
            'applied); deletion_audit_partitioned.sql is its alternative for a new table: '
            'migrate the rows first (docs/partitioning.md, "Migrating a plain table")';
    END IF;
END
$guard$;

CREATE TABLE IF NOT EXISTS deletion_audit (
    -- Identity on the parent: inserts through deletion_audit take their id from one sequence for
    -- all partitions. An insert straight into a partition gets no id (NOT NULL fails): always
    -- write to deletion_audit.
    id                bigint GENERATED ALWAYS AS IDENTITY,
    -- Transaction id of the writer. Ids and timestamps are assigned at insert but become visible
    -- at commit, so "id > last seen" skips rows of transactions that commit late. Reading in
    -- (tx, id) order below pg_snapshot_xmin(pg_current_snapshot()) never does (docs/audit-log.md).
    tx                xid8 NOT NULL DEFAULT pg_current_xact_id(),
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    outcome           text NOT NULL,              -- 'success' | 'failure'
    error_type        text,                       -- NULL on success, else one of the 7 classes
    duration_seconds  double precision NOT NULL,  -- wall time of the request, seconds
    target_user_id    text,                       -- ids: for integrity audits, never metric labels
    target_user_type  text,                       -- VENDOR CLIENT DRIVER ADMIN HELPDESK SUPER_ADMIN
    performed_by      text,
    performed_by_type text,
    rows_deleted      jsonb,                      -- {"sessions": 3, "accounts": 1, ...}
    http_status       integer,
    app_version       text,                       -- deployed version that handled the call
    -- A unique constraint on a partitioned table must contain the partition key, so the key is
    -- (id, occurred_at), not id alone. Consequences: PostgreSQL enforces id uniqueness only per
    -- partition (the identity sequence is what keeps ids unique; never insert with OVERRIDING
    -- SYSTEM VALUE except to copy rows that keep their own id); no foreign key can reference
    -- deletion_audit(id) alone (reference (id, occurred_at)); and a lookup by id alone probes
    -- the key index of every partition (no pruning without occurred_at).
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Rows outside every monthly partition: months not created yet, and the occurred_at values the
-- exporter counts as bad_occurred_at. Retention never touches it (docs/partitioning.md).
CREATE TABLE IF NOT EXISTS deletion_audit_default PARTITION OF deletion_audit DEFAULT;

-- Partitioned indexes: created on every partition, present and future (same names as in
-- deletion_audit.sql, so applying that file by mistake afterwards changes nothing).
-- The exporter's tailing cursor: WHERE (tx, id) > ($1, $2) AND tx < xmin ORDER BY tx, id. On a
-- partitioned table this is a merge of one index probe per partition.
CREATE INDEX IF NOT EXISTS deletion_audit_tx_id_idx ON deletion_audit (tx, id);
-- Time-range audits (integrity sampling of the last 24 h, compliance reports): pruned to the
-- months asked for, then this index inside each.
CREATE INDEX IF NOT EXISTS deletion_audit_occurred_at_idx ON deletion_audit (occurred_at);
-- Integrity checks look a deleted user's audit row up by id.
CREATE INDEX IF NOT EXISTS deletion_audit_target_user_id_idx ON deletion_audit (target_user_id);

COMMENT ON TABLE deletion_audit IS
    'One row per DELETE /api/users/{id} call; contract in docs/audit-log.md; '
    'partitioned by month of occurred_at (docs/partitioning.md)';
COMMENT ON COLUMN deletion_audit.tx IS
    'pg_current_xact_id() of the writing transaction: enables lossless (tx, id) tailing';
COMMENT ON TABLE deletion_audit_default IS
    'Rows outside every monthly partition (month not created yet, or occurred_at outside years '
    '1-9999); never dropped by retention';


-- ---------------------------------------------------------------------------------------------
-- Maintenance in plain SQL. Partitions are named deletion_audit_pYYYY_MM and cover one calendar
-- month in UTC, [YYYY-MM-01 00:00 UTC, next month): the names and bounds pg_partman gives monthly
-- partitions when it runs with timezone UTC, so either tool can take over the other's partitions.
-- Functions pin search_path to the schema this file was applied in.
-- ---------------------------------------------------------------------------------------------

-- The range of one partition of deletion_audit, NULL for the default partition (and for a
-- MINVALUE/MAXVALUE bound, which is never dropped either).
CREATE OR REPLACE FUNCTION deletion_audit_partition_range(
    p_partition regclass, OUT range_from timestamptz, OUT range_to timestamptz
) LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT m[1]::timestamptz, m[2]::timestamptz
    FROM pg_class c,
         regexp_match(pg_get_expr(c.relpartbound, c.oid),
                      '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS m
    WHERE c.oid = p_partition
$$;

-- Every partition of deletion_audit with its range (NULL for the default).
CREATE OR REPLACE FUNCTION deletion_audit_partitions()
RETURNS TABLE (partition_name regclass, range_from timestamptz, range_to timestamptz)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT i.inhrelid::regclass, r.range_from, r.range_to
    FROM pg_inherits i, deletion_audit_partition_range(i.inhrelid::regclass) r
    WHERE i.inhparent = 'deletion_audit'::regclass
    ORDER BY r.range_from NULLS FIRST
$$;

-- Create the partition of the UTC month holding p_month, if missing; returns it, or NULL when it
-- existed. Rows of that month already in the default partition are moved into it (same id, tx
-- and values: the exporter, which identifies rows by (tx, id), neither loses nor re-reads one).
--
-- Locks, all held to the end of the transaction: the new table is built and filled on its own,
-- then ATTACHed, which takes SHARE UPDATE EXCLUSIVE on deletion_audit (inserts and the exporter's
-- reads go on; CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE) and ACCESS EXCLUSIVE
-- on the default partition while it checks that no row of the month is left there (a scan of
-- the default partition, which holds only stray rows). The CHECK constraint spares the scan of
-- the new table.
CREATE OR REPLACE FUNCTION deletion_audit_create_partition(p_month timestamptz)
RETURNS regclass LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    month_start timestamp := date_trunc('month', p_month AT TIME ZONE 'UTC');
    lo timestamptz := month_start AT TIME ZONE 'UTC';
    hi timestamptz := (month_start + interval '1 month') AT TIME ZONE 'UTC';
    ns name := (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.oid = 'deletion_audit'::regclass);
    child name := 'deletion_audit_p' || to_char(month_start, 'YYYY_MM');
    dflt regclass;
    moved bigint := 0;
BEGIN
    IF month_start < '0001-01-01' OR month_start >= '9999-12-01' THEN
        -- Outside years 1-9999 (and December 9999, whose upper bound would be year 10000) the
        -- rows are invalid anyway: they stay in the default partition.
        RAISE EXCEPTION 'deletion_audit partitions cover years 1-9999 UTC; got %', p_month;
    END IF;
    IF to_regclass(format('%I.%I', ns, child)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.deletion_audit INCLUDING DEFAULTS '
                   'INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)', ns, child, ns);
    EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I '
                   'CHECK (occurred_at >= %L AND occurred_at < %L)',
                   ns, child, child || '_range', lo, hi);
    SELECT nullif(t.partdefid, 0)::regclass INTO dflt FROM pg_partitioned_table t
    WHERE t.partrelid = 'deletion_audit'::regclass;
    IF dflt IS NOT NULL THEN
        EXECUTE format('WITH m AS (DELETE FROM %s WHERE occurred_at >= %L AND occurred_at < %L '
                       'RETURNING *) INSERT INTO %I.%I SELECT * FROM m', dflt, lo, hi, ns, child);
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;
    EXECUTE format('ALTER TABLE %I.deletion_audit ATTACH PARTITION %I.%I '
                   'FOR VALUES FROM (%L) TO (%L)', ns, ns, child, lo, hi);
    -- Redundant with the partition bound once attached.
    EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I', ns, child, child || '_range');
    IF moved > 0 THEN
        RAISE NOTICE 'deletion_audit: % rows of % moved from the default partition to %',
            moved, to_char(month_start, 'YYYY-MM'), child;
    END IF;
    RETURN format('%I.%I', ns, child)::regclass;
END
$$;

-- Create the partitions from the current UTC month (of p_now) through p_premake months ahead, in
-- the caller's transaction; returns how many were created. The procedure below does the same with
-- one transaction per partition.
CREATE OR REPLACE FUNCTION deletion_audit_create_partitions(
    p_premake integer DEFAULT 3, p_now timestamptz DEFAULT now()
) RETURNS integer LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT count(deletion_audit_create_partition(
        (date_trunc('month', p_now AT TIME ZONE 'UTC') + make_interval(months => i))
            AT TIME ZONE 'UTC'))::integer
    FROM generate_series(0, p_premake) AS i
$$;

-- The partitions whose whole range is older than p_retention: upper bound <= p_now - p_retention,
-- so every row they can hold has occurred_at < p_now - p_retention. Never the default partition.
CREATE OR REPLACE FUNCTION deletion_audit_expired_partitions(
    p_retention interval DEFAULT '7 years', p_now timestamptz DEFAULT now()
) RETURNS TABLE (partition_name regclass, range_from timestamptz, range_to timestamptz)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT p.partition_name, p.range_from, p.range_to FROM deletion_audit_partitions() p
    WHERE p.range_to IS NOT NULL AND p.range_to <= p_now - p_retention
    ORDER BY p.range_from
$$;

-- Detach one monthly partition from deletion_audit, then drop it (or keep it as a plain table
-- for an archive, p_keep_table). DETACH takes ACCESS EXCLUSIVE on deletion_audit until the end
-- of the transaction: it waits for running queries on the table (an exporter's start-up
-- aggregate among them) and blocks inserts meanwhile, so run it under a short lock_timeout
-- (the procedure does). DETACH ... CONCURRENTLY, which would not, is refused by PostgreSQL on a
-- table with a default partition. The drop itself locks only the detached table.
CREATE OR REPLACE FUNCTION deletion_audit_drop_partition(
    p_partition regclass, p_keep_table boolean DEFAULT false
) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM deletion_audit_partitions() p
                   WHERE p.partition_name = p_partition AND p.range_to IS NOT NULL) THEN
        RAISE EXCEPTION '% is not a monthly partition of deletion_audit (the default partition '
            'is never dropped)', p_partition;
    END IF;
    EXECUTE format('ALTER TABLE deletion_audit DETACH PARTITION %s', p_partition);
    IF NOT p_keep_table THEN
        EXECUTE format('DROP TABLE %s', p_partition);
    END IF;
END
$$;

-- The daily job: CALL deletion_audit_maintenance(); from cron, outside any transaction block
-- (psql -c, autocommit), e.g. `psql -v ON_ERROR_STOP=1 -c 'CALL deletion_audit_maintenance()'`.
-- Creates the months from now through p_premake ahead, then drops the partitions older than
-- p_retention, ONE TRANSACTION PER PARTITION, each under lock_timeout = p_lock_timeout. A step
-- that cannot get its lock in time (a long query holds deletion_audit) is skipped with a WARNING
-- and retried by the next run; the call then ends with an error so that cron reports it, after
-- every other step was committed. Idempotent: a second run the same day does nothing.
CREATE OR REPLACE PROCEDURE deletion_audit_maintenance(
    p_premake integer DEFAULT 3,
    p_retention interval DEFAULT '7 years',
    p_keep_table boolean DEFAULT false,
    p_lock_timeout text DEFAULT '5s',
    p_now timestamptz DEFAULT now()
) LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamp := date_trunc('month', p_now AT TIME ZONE 'UTC');
    expired record;
    name text;
    skipped integer := 0;
BEGIN
    IF p_retention <= interval '0' THEN
        RAISE EXCEPTION 'p_retention must be positive, got %', p_retention;
    END IF;
    FOR i IN 0..p_premake LOOP
        BEGIN
            PERFORM set_config('lock_timeout', p_lock_timeout, true);
            PERFORM deletion_audit_create_partition(
                (month_start + make_interval(months => i)) AT TIME ZONE 'UTC');
        EXCEPTION WHEN lock_not_available THEN
            skipped := skipped + 1;
            RAISE WARNING 'deletion_audit: partition of % not created: %',
                to_char(month_start + make_interval(months => i), 'YYYY-MM'), SQLERRM;
        END;
        COMMIT;
    END LOOP;
    FOR expired IN SELECT * FROM deletion_audit_expired_partitions(p_retention, p_now) LOOP
        name := expired.partition_name::text;  -- a dropped table's regclass prints as an oid
        BEGIN
            PERFORM set_config('lock_timeout', p_lock_timeout, true);
            PERFORM deletion_audit_drop_partition(expired.partition_name, p_keep_table);
            RAISE NOTICE 'deletion_audit: % [%, %) %', name, expired.range_from,
                expired.range_to, CASE WHEN p_keep_table THEN 'detached' ELSE 'dropped' END;
        EXCEPTION WHEN lock_not_available THEN
            skipped := skipped + 1;
            RAISE WARNING 'deletion_audit: % not dropped: %', name, SQLERRM;
        END;
        COMMIT;
    END LOOP;
    IF skipped > 0 THEN
        RAISE EXCEPTION 'deletion_audit_maintenance: % step(s) skipped on lock_timeout %, '
            'retried by the next run', skipped, p_lock_timeout;
    END IF;
END
$$;

-- A usable table right away: this month and the next 3 (idempotent).
SELECT deletion_audit_create_partitions(3);
