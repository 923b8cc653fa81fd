-- grants: the monitoring role, least privilege (PostgreSQL 13+). Idempotent: apply it on every
-- deploy, after reference_app.sql / your application's schema and deletion_audit.sql, as the
-- owner of the database and those tables, with CREATEROLE (or a superuser), connected to the
-- application's database:
--
--   deletion-monitor schema grants | psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1
--
-- It creates the NOLOGIN group role `deletion_monitoring` and grants it exactly what the two
-- exporters need, and nothing else:
--   CONNECT on this database, USAGE on the schema the tables live in (the current schema),
--   SELECT on deletion_audit (audit-exporter),
--   SELECT on the tables the default integrity checks read (integrity-exporter,
--     check-integrity; src/deletion_monitor/integrity/default_checks.yml),
--   SELECT on the legacy view legacy_deletion_audit, only if it exists (reports over the old
--     audit_logs table; the view reads audit_logs with its owner's rights, so audit_logs itself
--     is NOT granted),
--   SELECT, INSERT and UPDATE on deletion_audit_checkpoint, only if it exists (the audit
--     exporter's checkpoints, --checkpoint-table), and EXECUTE on pg_control_system(),
--   default_transaction_read_only = on for the role and for every LOGIN member of it.
-- Apart from that one checkpoint table: no INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES or
-- TRIGGER on anything; no CREATE on the database or the schema. Everything the exporters read besides these tables is in pg_catalog,
-- which every role may read. docs/security.md explains each choice.
--
-- The exporters log in as a LOGIN role that is a member of this group. An SRE creates one per
-- environment in psql, the password typed at the \password prompt (so it is never in this file,
-- a shell history, a command line or the server log; psql sends it already hashed):
--
--   CREATE ROLE deletion_monitor LOGIN IN ROLE deletion_monitoring;
--   ALTER ROLE deletion_monitor SET default_transaction_read_only = on;
--   \password deletion_monitor
--
-- (A role's settings are not inherited from its groups, hence the second line. Forgotten, it is
-- done by the next apply of this file, which sets it for every LOGIN member of the group.)
--
-- The DSN with that password goes into the exporters' DATABASE_URL from a secret file
-- (DATABASE_URL_FILE, docker/entrypoint.sh), never into a flag or the compose file.
--
-- Your application has other tables, or custom checks read others: add one SELECT grant per
-- table a check reads (and nothing broader such as ALL TABLES IN SCHEMA: a table added later
-- would be readable without anyone deciding it). `integrity-exporter --check-only`, run as the
-- monitoring login, names every check the grants do not cover.

-- The group role. NOLOGIN: nobody connects as the group itself; privileges reach the members
-- by inheritance (the LOGIN members above INHERIT, the default).
DO $grants$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deletion_monitoring') THEN
        CREATE ROLE deletion_monitoring NOLOGIN;
    END IF;
END
$grants$;
-- Re-asserted on every apply: a role found with more attributes is brought back to none.
-- (Not NOSUPERUSER / NOREPLICATION: naming those at all needs a superuser, and the owner that
-- applies this file on a managed database often is not one. CREATE ROLE leaves both off.)
ALTER ROLE deletion_monitoring NOLOGIN NOCREATEDB NOCREATEROLE;

-- Defence in depth: even a grant added by mistake later cannot be used to write, because every
-- transaction of the role starts READ ONLY (the integrity runner also opens READ ONLY
-- transactions itself). A role's settings apply to the role that logs in, not to the groups it
-- belongs to, so the setting is also applied to every LOGIN member of the group.
ALTER ROLE deletion_monitoring SET default_transaction_read_only = on;
DO $grants$
DECLARE
    member name;
BEGIN
    FOR member IN
        SELECT r.rolname FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid
        JOIN pg_roles r ON r.oid = m.member
        WHERE g.rolname = 'deletion_monitoring' AND r.rolcanlogin AND NOT r.rolsuper
    LOOP
        EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', member);
    END LOOP;
END
$grants$;

-- CONNECT on this database and USAGE on the schema the tables are in: dynamic, so the file works
-- whatever the database and schema are called.
DO $grants$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO deletion_monitoring', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO deletion_monitoring', current_schema());
END
$grants$;

-- Nothing writable, re-asserted on every apply: a write privilege or CREATE granted to the role
-- by hand is taken back. Only write privileges are revoked, so SELECT grants you added for your
-- own checks survive a re-apply.
DO $grants$
BEGIN
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER '
                   'ON ALL TABLES IN SCHEMA %I FROM deletion_monitoring', current_schema());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM deletion_monitoring', current_schema());
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM deletion_monitoring',
                   current_database());
END
$grants$;

-- The audit log: the audit-exporter tails it, the audit_trail, security and completeness checks
-- read it. Not conditional: without the table there is nothing to monitor, so fail loudly.
GRANT SELECT ON TABLE deletion_audit TO deletion_monitoring;

-- The tables the default integrity checks read (the reference application's user graph).
-- Granted where they exist, so that the file also applies to a database holding only the audit
-- log (audit-exporter alone); a missing one is reported as a NOTICE, and a check that needs it
-- fails in `integrity-exporter --check-only`.
DO $grants$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'profiles', 'accounts', 'sessions', 'addresses', 'user_addresses',
        'catering_requests', 'on_demand_requests', 'user_audits', 'dispatches', 'file_uploads'
    ] LOOP
        IF to_regclass(format('%I.%I', current_schema(), tbl)) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON TABLE %I.%I TO deletion_monitoring',
                           current_schema(), tbl);
        ELSE
            RAISE NOTICE 'grants: table %.% does not exist; not granted', current_schema(), tbl;
        END IF;
    END LOOP;
END
$grants$;

-- Legacy adapter (legacy_audit_logs_adapter.sql): only where the view was created. Apply this
-- file again after the adapter if the adapter comes later.
DO $grants$
BEGIN
    IF to_regclass(format('%I.legacy_deletion_audit', current_schema())) IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON TABLE %I.legacy_deletion_audit TO deletion_monitoring',
                       current_schema());
    END IF;
END
$grants$;

-- The audit exporter's checkpoint table (deletion_audit_checkpoint.sql, for
-- `audit-exporter --checkpoint-table`): the ONE table the role may write, SELECT, INSERT and
-- UPDATE, never DELETE or TRUNCATE; only where the table exists (apply this file again after
-- creating it). The login's transactions stay read-only by default: the checkpoint writer opens
-- its own connection with default_transaction_read_only off, and writes nothing else.
-- pg_control_system() gives the cluster's system identifier, which a checkpoint must match
-- (superuser-only by default; it reveals only initdb-time constants).
DO $grants$
BEGIN
    IF to_regclass(format('%I.deletion_audit_checkpoint', current_schema())) IS NOT NULL THEN
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON TABLE %I.deletion_audit_checkpoint '
                       'TO deletion_monitoring', current_schema());
        BEGIN
            GRANT EXECUTE ON FUNCTION pg_control_system() TO deletion_monitoring;
        EXCEPTION WHEN insufficient_privilege THEN
            -- A managed database's owner may not grant it: the checkpoint then skips only its
            -- cluster check (the table oid, names and transaction ids are still compared).
            RAISE NOTICE 'grants: cannot grant pg_control_system(); checkpoints skip the cluster check';
        END;
    END IF;
END
$grants$;
