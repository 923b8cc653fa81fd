-- Migration: make the old Prisma `audit_logs` table tail-able by `deletion-monitor audit-exporter`
-- without changing the application's code and without rewriting the table. PostgreSQL 13+.
-- Idempotent: applying it again changes nothing. Apply it, then (re-)apply
-- legacy_audit_logs_adapter.sql, which exposes the new columns in the view legacy_deletion_audit
-- (docs/audit-log.md, "Adopting an existing audit_logs table").
--
-- What it adds, all of it filled in by the database, so the unchanged application (which never
-- names these columns in its INSERTs) gets them on every new row:
--   tx         xid8,   default pg_current_xact_id(): the writing transaction, the exporter's
--                      lossless cursor (docs/audit-log.md, "Why tx exists");
--   audit_seq  bigint, default nextval(audit_logs_audit_seq): an integer row order inside one
--                      transaction (the Prisma id is text, and the cursor is (tx, integer id)).
-- Rows written before this migration keep both NULL: the view presents them as one transaction
-- older than every real one, so the exporter counts them once, in its start-up aggregate.
--
-- Why no table rewrite: each column is added WITHOUT a default and the default is set by a
-- separate subcommand, which only records it in the catalog; existing rows read the new columns as
-- NULL. `ADD COLUMN audit_seq bigint DEFAULT nextval(...)` (a volatile default) would rewrite the
-- whole table under an ACCESS EXCLUSIVE lock, and a stable default such as
-- `ADD COLUMN tx xid8 DEFAULT pg_current_xact_id()` would stamp every old row with this
-- migration's transaction id, hiding which rows predate the monitoring.
--
-- Locks: the ALTER TABLE takes ACCESS EXCLUSIVE for a catalog change only (milliseconds), but it
-- queues behind every open transaction on audit_logs and new queries queue behind it: the
-- lock_timeout makes it give up (rerun it) instead of stalling the application. The CREATE INDEX
-- below blocks writes to audit_logs while it reads the table; on a large or busy table create it
-- CONCURRENTLY first, outside any transaction (docs/audit-log.md shows the statement); this file
-- then finds it and skips it. Everything here runs inside a transaction too (migration tools that
-- wrap each file in one are fine).

SET lock_timeout = '5s';

CREATE SEQUENCE IF NOT EXISTS audit_logs_audit_seq AS bigint;

-- One statement: the columns and their defaults appear together, so no row can be inserted with
-- the columns present and the defaults missing.
ALTER TABLE audit_logs
    ADD COLUMN IF NOT EXISTS tx xid8,
    ADD COLUMN IF NOT EXISTS audit_seq bigint,
    ALTER COLUMN tx SET DEFAULT pg_current_xact_id(),
    ALTER COLUMN audit_seq SET DEFAULT nextval('audit_logs_audit_seq');

-- Dropping the column (rolling the migration back) drops the sequence with it.
ALTER SEQUENCE audit_logs_audit_seq OWNED BY audit_logs.audit_seq;

-- The exporter's cursor through the view: WHERE (tx, id) > ($1, $2) AND tx < xmin ORDER BY tx, id,
-- where the view's tx and id are these two expressions. Partial: only the rows the view shows.
CREATE INDEX IF NOT EXISTS audit_logs_deletion_tx_seq_idx
    ON audit_logs ((coalesce(tx, '2'::xid8)), (coalesce(audit_seq, 0)))
    WHERE action = 'USER_DELETION';

COMMENT ON COLUMN audit_logs.tx IS
    'pg_current_xact_id() of the writing transaction (NULL: written before the monitoring '
    'migration); the deletion audit exporter tails by it';
COMMENT ON COLUMN audit_logs.audit_seq IS
    'Row order for the deletion audit exporter''s (tx, id) cursor (NULL before the migration)';

RESET lock_timeout;
