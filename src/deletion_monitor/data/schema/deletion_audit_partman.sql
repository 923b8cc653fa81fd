-- deletion_audit under pg_partman (Debian: postgresql-15-partman, pg_partman 4.7): apply AFTER
-- deletion_audit_partitioned.sql, once, as a superuser (CREATE EXTENSION), in one transaction:
--
--     psql -v ON_ERROR_STOP=1 -1 -f deletion_audit_partitioned.sql -f deletion_audit_partman.sql
--
-- From then on pg_partman creates the monthly partitions ahead and drops the ones past the
-- retention; the plain-SQL procedure deletion_audit_maintenance() is no longer scheduled (both
-- would work on the same partitions without harm, but one owner is simpler to reason about).
-- docs/partitioning.md has the cron line and the locks.
--
-- Idempotent: for a table already registered in partman.part_config it only sets the two flags
-- maintenance needs (below); the retention you configured stays.

CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;

DO $handover$
DECLARE
    parent text := (SELECT format('%s.%s', n.nspname, c.relname)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.oid = 'deletion_audit'::regclass AND c.relkind = 'p');
    ns name := split_part(parent, '.', 1);
    old_default regclass;
    moved bigint;
BEGIN
    -- pg_partman computes monthly bounds in the session's time zone. In UTC its partitions are
    -- the ones deletion_audit_partitioned.sql creates (deletion_audit_pYYYY_MM, UTC months), so
    -- it adopts those by name instead of creating overlapping ones. Maintenance runs in UTC too.
    PERFORM set_config('timezone', 'UTC', true);
    IF parent IS NULL THEN
        RAISE EXCEPTION 'deletion_audit is not a partitioned table: apply '
            'deletion_audit_partitioned.sql first';
    END IF;
    -- Set on every apply: without them maintenance fails or runs away (below).
    -- infinite_time_partitions: premake months ahead of now even when no row was written lately
    -- (partman's default creates them only ahead of the newest row).
    -- ignore_default_data: by default run_maintenance also reads max(occurred_at) of the default
    -- partition to decide which months to create; one 'infinity' row there (a row the contract
    -- must store, counted as bad_occurred_at) makes every run fail with "timestamp out of range"
    -- (pg_partman 4.7.2, tests/integration/test_audit_partitioned.py), and a year-9999 row would
    -- make it create partitions up to year 9999. The default partition holds only such stray
    -- rows here, so the months to create follow now() alone.
    UPDATE partman.part_config
    SET infinite_time_partitions = true, ignore_default_data = true
    WHERE parent_table = parent;
    IF FOUND THEN
        RETURN;  -- registered by an earlier apply
    END IF;
    -- create_parent creates <parent>_default itself (and fails if it exists): park the
    -- plain-SQL one, then put its rows back through the parent (they land in their month or in
    -- the new default partition). Rows keep id and tx (OVERRIDING SYSTEM VALUE), so the
    -- exporter neither loses nor re-reads any. The DETACH holds ACCESS EXCLUSIVE on
    -- deletion_audit until this transaction ends: inserts wait for the handover (one-off, as
    -- long as moving the default partition's stray rows takes).
    SELECT nullif(t.partdefid, 0)::regclass INTO old_default
    FROM pg_partitioned_table t WHERE t.partrelid = 'deletion_audit'::regclass;
    IF old_default IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I.deletion_audit DETACH PARTITION %s', ns, old_default);
        EXECUTE format('ALTER TABLE %s RENAME TO deletion_audit_default_handover', old_default);
    END IF;
    PERFORM partman.create_parent(
        p_parent_table := parent,
        p_control := 'occurred_at',
        p_type := 'native',
        p_interval := 'monthly',
        p_premake := 3,
        -- partman keeps no job log table here (pg_jobmon is not installed)
        p_jobmon := false
    );
    -- Retention: run_maintenance drops (DROP TABLE, not detach-and-keep) every partition whose
    -- whole month is older than 7 years; it never drops the default partition. Set here only
    -- when the table is registered: a later change (UPDATE partman.part_config SET retention =
    -- ...) survives re-applying this file.
    UPDATE partman.part_config
    SET retention = '7 years', retention_keep_table = false, retention_keep_index = false,
        infinite_time_partitions = true, ignore_default_data = true
    WHERE parent_table = parent;
    -- create_parent adds <parent>_default only when it created at least one partition (4.7.2:
    -- it returns early when every month it would premake exists already, e.g. all made by
    -- deletion_audit_partitioned.sql): without a default partition an 'infinity' row would fail
    -- its insert, so make sure there is one.
    IF (SELECT t.partdefid FROM pg_partitioned_table t
        WHERE t.partrelid = 'deletion_audit'::regclass) = 0 THEN
        EXECUTE format('CREATE TABLE %I.deletion_audit_default PARTITION OF %I.deletion_audit '
                       'DEFAULT', ns, ns);
    END IF;
    IF old_default IS NOT NULL THEN
        EXECUTE format('INSERT INTO %I.deletion_audit OVERRIDING SYSTEM VALUE '
                       'SELECT * FROM %I.deletion_audit_default_handover', ns, ns);
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXECUTE format('DROP TABLE %I.deletion_audit_default_handover', ns);
        RAISE NOTICE 'deletion_audit: % rows of the old default partition moved', moved;
    END IF;
END
$handover$;

-- Maintenance, daily from cron (autocommit; one transaction per partition set; UTC):
--     PGOPTIONS='-c timezone=UTC -c lock_timeout=5s' \
--         psql -v ON_ERROR_STOP=1 -c 'CALL partman.run_maintenance_proc()'
-- or, for this table only and in one transaction:
--     SELECT partman.run_maintenance('public.deletion_audit');
