"""grants.sql against a real PostgreSQL: the monitoring role can run both exporters and nothing
more.

Each test applies reference_app.sql + deletion_audit.sql (the app_dsn fixture) and the shipped
grants.sql, creates a LOGIN role in the group as an SRE would, and connects as that role. The
tables the default integrity checks read are derived from the checks file itself, read fresh:
the names after FROM/JOIN in every query, the relations PostgreSQL's own plan of each query
scans, and any table list a check declares; so a new check that reads a new table fails here
until grants.sql grants it.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from deletion_monitor.audit.exporter import scrape_values
from deletion_monitor.data import schema_path, schema_sql
from deletion_monitor.integrity.checks import DEFAULT_CHECKS_PATH, load_checks
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file, pg_bindir
from deletion_monitor_demo.services import ManagedProcess, free_port

GROUP = "deletion_monitoring"
CLI = [sys.executable, "-m", "deletion_monitor"]
WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
_login_counter = itertools.count()
# FROM x / JOIN x: candidate relation names; CTE names and functions (sample, unnest) drop out
# when intersected with the tables that really exist.
_FROM_JOIN = re.compile(r"(?i)\b(?:from|join)\s+([a-z_][a-z0-9_]*)")


def _tables_in_schema(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
        " AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    ).fetchall()
    return {r[0] for r in rows}


def _declared_tables(node: Any, under_table_key: bool = False) -> set[str]:
    """Strings under any key naming tables (`tables: [...]`, or nested as `applies_to: {tables}`):
    what a check declares it reads; `schema.table` counts as `table`."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found |= _declared_tables(value, under_table_key or "table" in str(key).lower())
    elif isinstance(node, list):
        for item in node:
            found |= _declared_tables(item, under_table_key)
    elif isinstance(node, str) and under_table_key:
        found.add(node.rsplit(".", 1)[-1].strip('"'))
    return found


def _planned_relations(conn: psycopg.Connection[Any], query: str, params: Any) -> set[str]:
    """Relations of the current schema that PostgreSQL's plan of `query` reads."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Relation Name" in node and node.get("Schema") != "pg_catalog":
                found.add(node["Relation Name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    with conn.cursor() as cur:
        rows = list(cur.stream("EXPLAIN (VERBOSE, FORMAT JSON) " + query.rstrip("; \n"), params))
    walk(rows[0][0] if not isinstance(rows[0][0], str) else json.loads(rows[0][0]))
    return found


def tables_the_checks_read(owner_dsn: str, checks_file: Path = DEFAULT_CHECKS_PATH) -> set[str]:
    """Every table of the database that a check of `checks_file` reads (as the owner sees it)."""
    raw = yaml.safe_load(checks_file.read_text())
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        existing = _tables_in_schema(conn)
        names: set[str] = set()
        for check in raw["checks"]:
            for key in ("sql", "sample_sql"):
                names |= {m.lower() for m in _FROM_JOIN.findall(check.get(key) or "")}
            names |= _declared_tables({k: v for k, v in check.items() if k != "params"})
        for check in load_checks(checks_file):
            for query in (check.sql, check.sample_sql):
                if query:
                    names |= _planned_relations(conn, query, check.query_params())
    return names & existing


def _login_role(
    owner_dsn: str, cluster: PgCluster, *, in_group: bool = True, read_only: bool = True
) -> tuple[str, str]:
    """Create a LOGIN role as the comments of grants.sql tell an SRE to; (name, its DSN)."""
    name = f"deletion_monitor_{next(_login_counter)}"
    membership = sql.SQL(" IN ROLE {}").format(sql.Identifier(GROUP)) if in_group else sql.SQL("")
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)) + membership)
        if read_only:
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(name)
                )
            )
    dbname = owner_dsn.rsplit("/", 1)[1]
    return name, cluster.dsn(dbname, user=name)


def _apply_with_psql(dsn: str) -> subprocess.CompletedProcess[str]:
    """`deletion-monitor schema grants | psql -v ON_ERROR_STOP=1`, as docs/security.md says."""
    printed = subprocess.run(
        [*CLI, "schema", "grants"], capture_output=True, text=True, timeout=60, check=True
    )
    return subprocess.run(
        [str(pg_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn],
        input=printed.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def granted(app_dsn: str) -> str:
    apply_sql_file(app_dsn, schema_path("grants.sql"))
    return app_dsn


@pytest.fixture
def monitor_dsn(granted: str, pg_cluster: PgCluster) -> str:
    return _login_role(granted, pg_cluster)[1]


def _run(*argv: str, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": dsn},
    )


def test_schema_command_prints_the_shipped_file() -> None:
    result = subprocess.run([*CLI, "schema"], capture_output=True, text=True, timeout=60)
    assert "grants" in result.stdout.split()
    assert schema_sql("grants").startswith("-- grants:")


def test_monitoring_login_runs_both_exporters(granted: str, monitor_dsn: str) -> None:
    # Rows for the audit checks and the completeness sample to read (valid ones: clean report).
    workload.insert_rows(granted, 300, seed=7)
    audit = _run("audit-exporter", "--check-only", dsn=monitor_dsn)
    assert (audit.returncode, audit.stderr) == (0, ""), audit
    integrity = _run("integrity-exporter", "--check-only", dsn=monitor_dsn)
    assert integrity.returncode == 0, integrity.stderr
    assert "the database accepted every one" in integrity.stdout
    # check-integrity runs every default check for real, not only its plan.
    report = _run("check-integrity", "--format", "json", dsn=monitor_dsn)
    assert report.returncode == 0, report.stdout + report.stderr
    body = json.loads(report.stdout)
    assert body["errors"] == [] and body["status"] == "PASSED", body


def test_monitoring_login_tails_the_audit_log(
    granted: str, monitor_dsn: str, tmp_path: Path
) -> None:
    workload.insert_rows(granted, 200, seed=5)
    port = free_port()
    proc = ManagedProcess(
        [*CLI, "audit-exporter", "--listen", f"127.0.0.1:{port}", "--poll-interval", "0.2"],
        tmp_path / "audit.log",
        env={"DATABASE_URL": monitor_dsn},
    )
    with proc:
        values: dict[Any, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.alive(), proc.log_tail()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    values = dict(scrape_values(r.read().decode()))
            except OSError:
                pass
            if values.get(("deletion_audit_rows_ingested_total", ())) == 200:
                break
            time.sleep(0.1)
        assert values.get(("deletion_audit_rows_ingested_total", ())) == 200, proc.log_tail()
        assert values[("deletion_audit_up", ())] == 1
    assert "permission denied" not in proc.log_tail(200)


def test_without_the_grants_the_same_login_is_refused(app_dsn: str, pg_cluster: PgCluster) -> None:
    """The negative control: a login outside the group cannot run the checks, so the success
    above is the grants' doing, not PUBLIC's defaults."""
    apply_sql_file(app_dsn, schema_path("grants.sql"))
    _, outsider = _login_role(app_dsn, pg_cluster, in_group=False)
    result = _run("integrity-exporter", "--check-only", dsn=outsider)
    assert result.returncode == 2 and "permission denied" in result.stderr, result
    # (audit-exporter --check-only reads only the catalog, which every role may: the tailing
    # query itself is what the outsider is refused.)
    with psycopg.connect(outsider, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT tx, id FROM deletion_audit LIMIT 1")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO deletion_audit (outcome, duration_seconds) VALUES ('success', 0.1)",
        "UPDATE deletion_audit SET outcome = 'failure'",
        "DELETE FROM deletion_audit",
        "TRUNCATE deletion_audit",
        "INSERT INTO profiles (email) VALUES ('x@example.com')",
        "UPDATE profiles SET status = 'X'",
        "DELETE FROM sessions",
        "CREATE TABLE mine (x int)",
        "SELECT count(*) FROM payment_methods",
    ],
)
def test_everything_else_is_denied(granted: str, monitor_dsn: str, statement: str) -> None:
    with psycopg.connect(granted, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS payment_methods (card text)")
    with psycopg.connect(monitor_dsn, autocommit=True) as conn:
        # Explicitly READ WRITE: the denial must come from the privileges, not from the role's
        # read-only default alone (that is asserted separately).
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_transactions_of_the_login_are_read_only(monitor_dsn: str) -> None:
    with psycopg.connect(monitor_dsn, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE scratch (x int)")


def test_granted_privileges_are_exactly_the_expected_set(
    granted: str, pg_cluster: PgCluster
) -> None:
    from_checks = tables_the_checks_read(granted)
    # The derivation found the reference application (it cannot silently come back empty).
    assert {"deletion_audit", "profiles", "sessions", "file_uploads"} <= from_checks
    expected = {(t, "SELECT") for t in from_checks | {"deletion_audit"}}
    login, _ = _login_role(granted, pg_cluster)
    with psycopg.connect(granted, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS payment_methods (card text)")
        grants = conn.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = %s",
            (GROUP,),
        ).fetchall()
        assert set(grants) == expected
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
            " rolbypassrls FROM pg_roles WHERE rolname = %s",
            (GROUP,),
        ).fetchone()
        assert role == (False, False, False, False, False, False)
        # What the login itself can do, through the group and PUBLIC together.
        for table in _tables_in_schema(conn):
            can_read = conn.execute(
                "SELECT has_table_privilege(%s, %s, 'SELECT')", (login, table)
            ).fetchone()
            assert can_read == ((table, "SELECT") in expected,), table
            for privilege in WRITE_PRIVILEGES:
                can = conn.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", (login, table, privilege)
                ).fetchone()
                assert can == (False,), f"{login} has {privilege} on {table}"
        db = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CONNECT'),"
            " has_database_privilege(%s, current_database(), 'CREATE'),"
            " has_schema_privilege(%s, current_schema(), 'USAGE'),"
            " has_schema_privilege(%s, current_schema(), 'CREATE')",
            (login, login, login, login),
        ).fetchone()
        assert db == (True, False, True, False)


def test_every_table_a_custom_check_reads_is_found(granted: str, tmp_path: Path) -> None:
    """The derivation itself can fail: a check reading a table outside the grants is caught
    (so test_granted_privileges_... would fail for a new default check like it)."""
    with psycopg.connect(granted, autocommit=True) as conn:
        conn.execute('CREATE TABLE IF NOT EXISTS payment_methods (card text, "userId" uuid)')
    raw = yaml.safe_load(DEFAULT_CHECKS_PATH.read_text())
    raw["checks"].append(
        {
            "name": "cards_of_deleted_users",
            "category": "manual_cleanup",
            "severity": "critical",
            "sql": 'SELECT count(*) FROM profiles p JOIN payment_methods m ON m."userId" = p.id',
            "tables": ["profiles", "payment_methods"],
            "interval": 300,
            "timeout": 30,
        }
    )
    path = tmp_path / "checks.yml"
    path.write_text(yaml.safe_dump(raw))
    assert "payment_methods" in tables_the_checks_read(granted, path)
    # and each way of finding it works on its own, declared list or not
    with psycopg.connect(granted, autocommit=True) as conn:
        query = raw["checks"][-1]["sql"]
        assert "payment_methods" in _planned_relations(conn, query, None)
    assert "payment_methods" in {m.lower() for m in _FROM_JOIN.findall(query)}


def test_grants_apply_twice_and_take_back_a_stray_write_grant(
    granted: str, pg_cluster: PgCluster
) -> None:
    # An SRE who created the login but skipped its ALTER ROLE ... SET step.
    _, login_dsn = _login_role(granted, pg_cluster, read_only=False)
    with psycopg.connect(granted, autocommit=True) as conn:
        conn.execute(f"GRANT INSERT, DELETE ON deletion_audit TO {GROUP}")
    applied = _apply_with_psql(granted)
    assert applied.returncode == 0, applied.stderr
    assert "ERROR" not in applied.stderr
    applied = _apply_with_psql(granted)  # and once more: nothing changes, nothing fails
    assert applied.returncode == 0, applied.stderr
    with psycopg.connect(granted, autocommit=True) as conn:
        writes = conn.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = %s AND privilege_type <> 'SELECT'",
            (GROUP,),
        ).fetchall()
        assert writes == []
    # Re-applying gave the login the read-only default back.
    with psycopg.connect(login_dsn) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_legacy_view_is_granted_when_present_and_its_table_is_not(
    granted: str, pg_cluster: PgCluster
) -> None:
    with psycopg.connect(granted, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE audit_logs (id text PRIMARY KEY, action text NOT NULL, success boolean"
            ' NOT NULL, error text, "timestamp" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,'
            ' "performedBy" text, "targetUserId" text, "performedByType" text,'
            ' "targetUserType" text)'
        )
        conn.execute(
            "INSERT INTO audit_logs (id, action, success) VALUES ('1', 'USER_DELETION', true)"
        )
    apply_sql_file(granted, schema_path("legacy_audit_logs_adapter.sql"))
    apply_sql_file(granted, schema_path("grants.sql"))
    _, login = _login_role(granted, pg_cluster)
    with psycopg.connect(login, autocommit=True) as conn:
        assert conn.execute("SELECT outcome FROM legacy_deletion_audit").fetchall() == [
            ("success",)
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM audit_logs")


def test_a_database_with_only_the_audit_log_gets_its_grants(
    audit_dsn: str, pg_cluster: PgCluster
) -> None:
    """The reference tables are optional (audit-exporter alone); deletion_audit is not."""
    applied = _apply_with_psql(audit_dsn)
    assert applied.returncode == 0, applied.stderr
    assert "profiles does not exist; not granted" in applied.stderr
    _, login = _login_role(audit_dsn, pg_cluster)
    ok = _run("audit-exporter", "--check-only", dsn=login)
    assert ok.returncode == 0, ok.stderr
    empty = pg_cluster.create_database(f"grants_empty_{next(_login_counter)}")
    refused = _apply_with_psql(empty)
    assert refused.returncode != 0 and "deletion_audit" in refused.stderr
