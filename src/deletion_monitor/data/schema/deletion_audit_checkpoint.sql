-- deletion_audit_checkpoint: where `deletion-monitor audit-exporter --checkpoint-table` keeps its
-- state (the cursor and every aggregate), one row per exporter replica and audit table, so a
-- restart tails from the cursor instead of aggregating the whole audit table again
-- (docs/audit-log.md, "Checkpoints"). PostgreSQL 13+. Idempotent.
--
-- The monitoring role needs SELECT, INSERT and UPDATE on this table and nothing else writable
-- (grants.sql). A checkpoint is a few kilobytes of JSON written every --checkpoint-interval.
-- It is validated before use (same table oid, cluster, buckets and row classification; its cursor
-- not ahead of the database), so restoring this table with the database from a backup is
-- consistent, and a stale or foreign row is refused and replaced.

CREATE TABLE IF NOT EXISTS deletion_audit_checkpoint (
    exporter_id  text NOT NULL,         -- --exporter-id: one row per replica
    audit_table  text NOT NULL,         -- the --table it tails
    checkpoint   jsonb NOT NULL,        -- format, identity, cursor and aggregates
    written_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exporter_id, audit_table)
);

COMMENT ON TABLE deletion_audit_checkpoint IS
    'State of the deletion audit exporter replicas (cursor + aggregates); docs/audit-log.md';
