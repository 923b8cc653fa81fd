"""Integrity reporting that says what it knows, on a real PostgreSQL: a check whose tables do not
exist is "not applicable" (neither a finding nor an error) in check-integrity, in
`integrity-exporter --check-only` and in the exporter's metrics; counts per category include the
checks that did not run; status, severity and exit code come from the same findings."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from support.checks import BASE, _check_integrity, _check_only
from test_integrity import EXPECTED, seed_clean
from test_integrity_exporter import ORPHAN_SQL, _checks, _scrape, _status, _wait

from deletion_monitor.data import schema_path
from deletion_monitor.integrity.checks import load_checks
from deletion_monitor.integrity.scheduler import Scheduler
from deletion_monitor_demo.pgcluster import apply_sql_file

# The default checks that read only the audit log: all that applies to an application that has
# none of the reference tables (the user's report: 12 "missing" keys, 16 checks "failing").
AUDIT_ONLY = {"successful_self_deletions", "successful_super_admin_deletions"}
AUDIT_ONLY |= {"audit_rows_missing_fields"}
# Tables dropped for "an application with some of the reference tables", and the default
# checks that then do not apply.
DROPPED = ("accounts", "dispatches", "file_uploads")
NOT_APPLICABLE_WITHOUT_DROPPED = {
    "orphaned_accounts",
    "accounts_of_soft_deleted_users",
    "dispatches_of_deleted_drivers",
    "dispatches_of_deleted_users",
    "file_uploads_of_deleted_users",
    "deletion_completeness_audit",
}


def _orphan_sessions(dsn: str, n: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for _ in range(n):
            conn.execute(
                'INSERT INTO sessions ("sessionToken", "userId", expires) '
                "VALUES (%s, %s, now() + interval '1 day')",
                (str(uuid.uuid4()), str(uuid.uuid4())),
            )


def _json(capsys: pytest.CaptureFixture[str], dsn: str, *argv: str) -> tuple[int, dict]:
    rc, out, _ = _check_integrity(capsys, "--dsn", dsn, "--format", "json", *argv)
    return rc, json.loads(out)


def _states(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


# --- check-integrity ---------------------------------------------------------------------------
def test_application_without_the_reference_tables_is_not_a_list_of_findings(
    audit_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, report = _json(capsys, audit_dsn)
    assert rc == 0
    assert (report["status"], report["severity"], report["total_issues"]) == ("PASSED", "OK", 0)
    assert _states(report) == {
        name: "ok" if name in AUDIT_ONLY else "not_applicable" for name in EXPECTED
    }
    assert report["counts"] == {"ok": 3, "violations": 0, "not_applicable": 17, "error": 0}
    assert report["errors"] == []
    by_name = {c["name"]: c for c in report["checks"]}
    # The missing-FK check is not applicable without the users table, not 12 missing keys.
    assert by_name["missing_foreign_keys"]["violations"] is None
    assert by_name["missing_foreign_keys"]["missing_tables"] == ["profiles"]
    assert by_name["orphaned_sessions"]["missing_tables"] == ["sessions", "profiles"]
    # A category where nothing ran has no issue count at all.
    assert report["summary"]["foreign_key"]["issues"] is None
    assert report["summary"]["audit_trail"]["issues"] == 0

    rc, out, _ = _check_integrity(capsys, "--dsn", audit_dsn)
    assert rc == 0
    assert "Status: PASSED  Severity: OK  Total issues: 0\n" in out
    assert "Checks: 20: 3 checks ok, 17 not applicable\n" in out
    assert "foreign_key: no check ran, 0 checks ok, 7 not applicable\n" in out
    assert "security: 0 issue(s), 2 checks ok, 1 not applicable\n" in out
    assert "  - orphaned_sessions [critical]: not applicable (no table sessions, profiles)" in out
    # "0 issue(s)" only where a check ran: audit_trail and security.
    zero = [line for line in out.splitlines() if "0 issue(s)" in line]
    assert [line.split(":")[0] for line in zero] == ["audit_trail", "security"]
    assert "17 check(s) do not apply here" in out


def test_empty_database_where_no_check_applies_is_exit_2(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, report = _json(capsys, pg_dsn)
    assert rc == 2
    assert (report["status"], report["severity"]) == ("INCOMPLETE", "UNKNOWN")
    assert report["counts"]["not_applicable"] == len(EXPECTED)
    assert any("No check applies to this database" in r for r in report["recommendations"])


def test_application_with_some_reference_tables(
    app_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_clean(app_dsn)
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        for table in DROPPED:
            conn.execute(f"DROP TABLE {table} CASCADE")
    rc, report = _json(capsys, app_dsn)
    assert rc == 0, report["errors"]
    assert report["status"] == "PASSED"
    assert {n for n, s in _states(report).items() if s == "not_applicable"} == (
        NOT_APPLICABLE_WITHOUT_DROPPED
    )
    assert report["counts"] == {"ok": 14, "violations": 0, "not_applicable": 6, "error": 0}
    # The keys on the dropped tables (4 of the 12 expected) are not applicable, not missing:
    # the check still runs for the keys between tables that exist, and finds them all.
    by_name = {c["name"]: c for c in report["checks"]}
    assert (
        by_name["missing_foreign_keys"]["status"],
        by_name["missing_foreign_keys"]["violations"],
    ) == ("ok", 0)

    _orphan_sessions(app_dsn, 2)
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        conn.execute('ALTER TABLE sessions DROP CONSTRAINT "sessions_userId_fkey"')
    rc, report = _json(capsys, app_dsn)
    assert rc == 1
    assert (report["status"], report["severity"], report["total_issues"]) == (
        "FAILED",
        "CRITICAL",
        3,  # 2 orphaned sessions and the one key now missing
    )
    assert report["summary"]["foreign_key"]["counts"] == {
        "ok": 5,
        "violations": 1,
        "not_applicable": 1,
        "error": 0,
    }
    fks = next(c for c in report["checks"] if c["name"] == "missing_foreign_keys")
    assert fks["samples"] == ["sessions.userId -> profiles (missing)"]


def test_three_orphans_on_the_reference_schema_fail_with_a_matching_severity(
    app_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's "Status: FAILED Severity: OK": 3 orphans are below the issue ladder's warning
    level (5), but they are critical findings, and the severity says so."""
    seed_clean(app_dsn)
    _orphan_sessions(app_dsn, 3)
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn)
    assert rc == 1
    assert "Status: FAILED  Severity: CRITICAL  Total issues: 3\n" in out
    assert "Checks: 20: 19 checks ok, 1 with violations\n" in out
    assert "foreign_key: 3 issue(s), 6 checks ok, 1 with violations\n" in out
    rc, report = _json(capsys, app_dsn)
    assert (rc, report["status"], report["severity"]) == (1, "FAILED", "CRITICAL")


def test_severity_of_warning_findings_below_the_ladder_is_warning(
    app_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_clean(app_dsn)
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        for i in range(2):  # invalid_user_types is a warning check; 2 is below the ladder
            conn.execute("INSERT INTO profiles (email, type) VALUES (%s, 'BOSS')", (f"b{i}@x",))
    rc, report = _json(capsys, app_dsn)
    assert (rc, report["status"], report["severity"], report["total_issues"]) == (
        1,
        "FAILED",
        "WARNING",
        2,
    )


def test_check_with_broken_sql_is_counted_as_failed_to_run(
    app_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [
        {
            **BASE,
            "name": "fine",
            "category": "foreign_key",
            "tables": ["sessions"],
            "sql": "SELECT count(*) FROM sessions",
        },
        {
            **BASE,
            "name": "broken",
            "category": "foreign_key",
            "tables": ["sessions"],
            "sql": "SELECT count(nope) FROM sessions",
        },
        {
            **BASE,
            "name": "elsewhere",
            "category": "foreign_key",
            "tables": ["no_such_table"],
            "sql": "SELECT count(*) FROM no_such_table",
        },
    ]
    path = tmp_path / "checks.yml"
    path.write_text(yaml.safe_dump({"checks": checks}))
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn, "--checks", str(path))
    assert rc == 2
    assert "Status: INCOMPLETE  Severity: UNKNOWN  Total issues: 0\n" in out
    assert "foreign_key: 0 issue(s), 1 checks ok, 1 not applicable, 1 failed to run\n" in out
    assert "  - broken [warning]: failed to run" in out
    assert "  - broken: UndefinedColumn [42703]" in out
    # A finding alongside it: exit 1 (a finding), and the report still names the broken check.
    _orphan_sessions(app_dsn, 1)
    rc, report = _json(capsys, app_dsn, "--checks", str(path))
    assert (rc, report["status"], report["severity"]) == (1, "FAILED", "WARNING")
    assert report["counts"] == {"ok": 0, "violations": 1, "not_applicable": 1, "error": 1}
    assert [e["check"] for e in report["errors"]] == ["broken"]


# --- integrity-exporter --check-only -----------------------------------------------------------
def test_check_only_lists_the_checks_that_do_not_apply(
    audit_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from deletion_monitor.cli import main

    rc = main(["integrity-exporter", "--check-only", "--dsn", audit_dsn])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "20 checks valid; 3 apply to this database and it accepted them" in out
    assert "17 not applicable (their tables do not exist):" in out
    listed = [line.strip().split(":")[0] for line in out.splitlines()[1:]]
    assert set(listed) == set(EXPECTED) - AUDIT_ONLY
    assert "  missing_foreign_keys: no table profiles" in out


def test_check_only_where_no_check_applies_is_exit_2(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from deletion_monitor.cli import main

    rc = main(["integrity-exporter", "--check-only", "--dsn", pg_dsn])
    out, err = capsys.readouterr()
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "no check applies to this database" in err
    assert "20 not applicable" in out


def test_check_only_refuses_a_tables_list_that_misses_a_table_the_plan_reads(
    app_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incomplete = {
        **BASE,
        "tables": ["sessions"],
        "sql": ORPHAN_SQL,
    }
    rc, out, err = _check_only(tmp_path, capsys, incomplete, argv=("--dsn", app_dsn))
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "checks[0] (ok_check).tables: sql reads profiles, which tables does not list" in err
    # A view counts for the tables it reads, a partitioned table for its partitions.
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        conn.execute(
            'CREATE VIEW live_profiles AS SELECT * FROM profiles WHERE "deletedAt" IS NULL'
        )
        conn.execute("CREATE TABLE parted (id int) PARTITION BY RANGE (id)")
        conn.execute("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)")
    covered = [
        {
            **BASE,
            "name": "view",
            "tables": ["live_profiles"],
            "sql": "SELECT count(*) FROM live_profiles",
        },
        {**BASE, "name": "parts", "tables": ["parted"], "sql": "SELECT count(*) FROM parted"},
        {**BASE, "name": "catalog", "tables": [], "sql": "SELECT count(*) FROM pg_class"},
    ]
    rc, out, err = _check_only(tmp_path, capsys, *covered, argv=("--dsn", app_dsn))
    assert rc == 0, err
    assert "the database accepted every one" in out


def test_every_default_check_lists_every_table_it_reads(app_dsn: str) -> None:
    """The plan of each default check (and sample) on the reference schema reads only its
    `tables` (verify_checks raises otherwise), so a missing table makes it not applicable,
    never a failed run."""
    from deletion_monitor.integrity.exporter import verify_checks

    assert verify_checks(app_dsn, load_checks(), "default") == {}


# --- the exporter's metrics --------------------------------------------------------------------
def test_exporter_exposes_not_applicable_checks_distinctly(
    audit_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    checks = _checks(
        {"name": "orphans", "sql": ORPHAN_SQL, "tables": ["sessions", "profiles"]},
        {
            "name": "audit",
            "sql": "SELECT count(*) FROM deletion_audit",
            "tables": ["deletion_audit"],
        },
    )
    caplog.set_level(logging.INFO, logger="deletion_monitor.integrity")
    scheduler = Scheduler(audit_dsn, checks, health_interval=0.2).start()
    try:
        _wait(lambda: _status(scheduler, "orphans").applicable is False, what="not applicable")
        _wait(lambda: _status(scheduler, "audit").up is True, what="audit check run")
        metrics = _scrape(scheduler)
        na = ("check", "orphans")
        assert metrics[("deletion_integrity_check_applicable", (na,))] == 0
        assert metrics[("deletion_integrity_check_applicable", (("check", "audit"),))] == 1
        # Neither failing (check_up 1, a fresh last success, no error) nor clean (no
        # violations series, not a 0).
        assert metrics[("deletion_integrity_check_up", (na,))] == 1
        assert metrics[("deletion_integrity_check_errors_total", (na,))] == 0
        assert ("deletion_integrity_check_last_success_timestamp_seconds", (na,)) in metrics
        violations = {k[1] for k in metrics if k[0] == "deletion_integrity_violations"}
        assert [dict(labels)["check"] for labels in violations] == ["audit"]

        # The application gains the tables: the check applies and reports a real count.
        apply_sql_file(audit_dsn, schema_path("reference_app.sql"))
        _orphan_sessions(audit_dsn, 2)  # the foreign key is there: replica role skips it
        _wait(lambda: _status(scheduler, "orphans").violations == 2, what="applies, 2 orphans")
        assert _scrape(scheduler)[("deletion_integrity_check_applicable", (na,))] == 1

        # A table goes away: not applicable again, its old count is not exported any more.
        with psycopg.connect(audit_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE sessions")
        _wait(lambda: _status(scheduler, "orphans").applicable is False, what="no longer")
        metrics = _scrape(scheduler)
    finally:
        scheduler.stop()
    assert metrics[("deletion_integrity_check_applicable", (na,))] == 0
    assert not [k for k in metrics if k[0] == "deletion_integrity_violations" and na in k[1]]
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if "orphans" in r.getMessage()]
    assert messages == [
        (
            logging.INFO,
            "integrity check orphans does not apply to this database (no table sessions, profiles)",
        ),
        (logging.INFO, "integrity check orphans applies again"),
        (
            logging.WARNING,
            "integrity check orphans no longer applies (no table sessions): its "
            "violations are no longer reported",
        ),
    ]
