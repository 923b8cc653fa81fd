-- deletion_audit: the audit-log contract of DELETE /api/users/{id} (PostgreSQL 13+).
--
-- The application writes exactly one row per call: in the SAME transaction as the deletion when it
-- succeeds (so a committed deletion always has its audit row, and a rolled-back one never does),
-- and in its OWN transaction when it fails (the deletion transaction was rolled back).
-- docs/audit-log.md documents every column; `deletion-monitor audit-exporter` turns the table
-- into Prometheus metrics.
--
-- Idempotent: safe to apply on every deploy.
--
-- Deliberately no CHECK constraints on outcome / error_type / duration_seconds: a buggy writer
-- must never make the DELETE itself fail because its audit row is malformed. The exporter
-- validates every row and counts malformed ones in deletion_audit_invalid_rows_total{reason}.

CREATE TABLE IF NOT EXISTS deletion_audit (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    app_version       text                        -- deployed version that handled the call
);

-- The exporter's tailing cursor: WHERE (tx, id) > ($1, $2) AND tx < xmin ORDER BY tx, id.
CREATE INDEX IF NOT EXISTS deletion_audit_tx_id_idx ON deletion_audit (tx, id);
-- Time-range audits (integrity sampling of the last 24 h, compliance reports).
CREATE INDEX IF NOT EXISTS deletion_audit_occurred_at_idx ON deletion_audit (occurred_at);
-- Integrity checks look a deleted user's audit row up by id.
CREATE INDEX IF NOT EXISTS deletion_audit_target_user_id_idx ON deletion_audit (target_user_id);

COMMENT ON TABLE deletion_audit IS
    'One row per DELETE /api/users/{id} call; contract in docs/audit-log.md';
COMMENT ON COLUMN deletion_audit.tx IS
    'pg_current_xact_id() of the writing transaction: enables lossless (tx, id) tailing';
