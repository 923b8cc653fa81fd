#!/bin/sh
# Run once by the postgres image (/docker-entrypoint-initdb.d, after grants.sql) when the data
# volume is empty: creates the exporters' LOGIN role `deletion_monitor` in the least-privilege
# group `deletion_monitoring`, with the password of the monitoring_db_password Docker secret.
#
# The password never reaches a command line or the environment: psql reads the file itself
# (its backquote \set) and sends it as a quoted literal (:'password'). The server does not log it
# unless log_statement is raised for this one-off init. secrets/monitoring_database_url must
# hold the same password (postgresql://deletion_monitor:PASSWORD@postgres:5432/app).
#
# The image sources this file when it is not executable: no `exit`, no `set -u` (both would
# leak into its own entrypoint).
set -e
MONITORING_DB_PASSWORD_FILE="${MONITORING_DB_PASSWORD_FILE:-/run/secrets/monitoring_db_password}"
export MONITORING_DB_PASSWORD_FILE
if [ ! -r "$MONITORING_DB_PASSWORD_FILE" ]; then
    echo "monitoring-login: $MONITORING_DB_PASSWORD_FILE is not readable" >&2
    false
fi
psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\set password `cat "$MONITORING_DB_PASSWORD_FILE"`
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deletion_monitor') AS missing \gset
\if :missing
CREATE ROLE deletion_monitor LOGIN IN ROLE deletion_monitoring;
\endif
ALTER ROLE deletion_monitor LOGIN PASSWORD :'password';
ALTER ROLE deletion_monitor SET default_transaction_read_only = on;
\unset password
SQL
echo "monitoring-login: role deletion_monitor (member of deletion_monitoring) is ready"
